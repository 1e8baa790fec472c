"""Live progress while a run goes on: one status table on stderr, redrawn per interval.

Owns when progress shows and what it says: phase, elapsed and remaining time, intended
vs answered rate, in flight, the last interval's p99 of admitted requests and its
refusals. On a terminal it is a rich live display (redrawn in place, removed at the
end so the report follows cleanly). When stderr is not a terminal (CI logs, pipes) it
is off, so logs hold the report only; ``force`` prints one plain line per interval
instead. ``quiet`` always wins. ``progress_line`` is pure and holds every figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from zg_load.hdr import Histogram
from zg_load.recorder import IntervalStats
from zg_load.scenario import Scenario
from zg_load.schedule import Constant, Poisson, Ramp

NS_PER_S = 1_000_000_000


class EngineView(Protocol):
    @property
    def in_flight(self) -> int: ...


@dataclass(frozen=True)
class ProgressLine:
    phase: str
    elapsed_s: float
    remaining_s: float
    intended_per_s: float | None
    answered_per_s: float
    in_flight: int
    p99_ms: float | None
    refused: int
    answered: int
    failed: int


def intended_rate(scenario: Scenario, offset_s: float) -> float | None:
    """The schedule's rate at ``offset_s`` (all streams of the phase); None if not open-loop."""
    for phase, (start_s, end_s) in zip(scenario.phases, scenario.phase_bounds(), strict=True):
        if not start_s <= offset_s < end_s:
            continue
        total = 0.0
        for stream in phase.streams:
            a = stream.arrival
            if isinstance(a, Constant | Poisson):
                total += a.rate_per_s
            elif isinstance(a, Ramp):
                f = (offset_s - start_s) / a.duration_s if a.duration_s else 1.0
                total += a.start_rate_per_s + (a.end_rate_per_s - a.start_rate_per_s) * f
            else:
                return None
        return total
    return None


def progress_line(scenario: Scenario, stats: IntervalStats, in_flight: int) -> ProgressLine:
    """Every figure of one progress update, from the interval that just closed."""
    start_s, end_s = stats.start_ns / NS_PER_S, stats.end_ns / NS_PER_S
    length_s = max(end_s - start_s, 1e-9)
    phase = scenario.phase_at(max(0.0, start_s))
    merged = Histogram()
    refused = failed = answered = 0
    for (_, _, outcome), hist in stats.latency.items():
        answered += hist.count
        if outcome == "ok":
            merged.merge(hist)
        elif outcome == "refused":
            refused += hist.count
        else:
            failed += hist.count
    p99 = merged.percentile(99.0)
    return ProgressLine(
        phase=phase.name if phase else "drain",
        elapsed_s=end_s,
        remaining_s=max(0.0, scenario.duration_s - end_s),
        intended_per_s=intended_rate(scenario, (start_s + end_s) / 2),
        answered_per_s=answered / length_s,
        in_flight=in_flight,
        p99_ms=None if p99 is None else p99 / 1000.0,
        refused=refused,
        answered=answered,
        failed=failed,
    )


def _num(value: float | None, unit: str, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def plain(line: ProgressLine) -> str:
    share = 100.0 * line.refused / line.answered if line.answered else 0.0
    return (
        f"[{line.elapsed_s:6.1f}s, {line.remaining_s:5.1f}s left] {line.phase:<10} "
        f"intended {_num(line.intended_per_s, '/s')}  answered {_num(line.answered_per_s, '/s')}  "
        f"in flight {line.in_flight:,}  p99 ok {_num(line.p99_ms, ' ms')}  "
        f"refused {line.refused:,} ({share:.1f}%)  failed {line.failed:,}"
    )


def table(line: ProgressLine) -> Table:
    t = Table(title="zg-load", title_justify="left", expand=False, box=None, padding=(0, 2))
    heads = ("phase", "elapsed", "left", "intended", "answered", "in flight", "p99 ok", "refused")
    for h in heads:
        t.add_column(h, justify="left" if h == "phase" else "right")
    share = 100.0 * line.refused / line.answered if line.answered else 0.0
    t.add_row(
        f"[bold]{line.phase}[/bold]",
        f"{line.elapsed_s:.1f} s",
        f"{line.remaining_s:.1f} s",
        _num(line.intended_per_s, "/s"),
        _num(line.answered_per_s, "/s"),
        f"{line.in_flight:,}",
        _num(line.p99_ms, " ms"),
        f"{line.refused:,} ({share:.1f}%)",
    )
    return t


class Progress:
    """Shows each closed interval; call ``close`` when the run ends (also on errors)."""

    def __init__(
        self,
        scenario: Scenario,
        quiet: bool = False,
        force: bool = False,
        console: Console | None = None,
    ) -> None:
        self._scenario = scenario
        self._console = console or Console(stderr=True)
        terminal = self._console.is_terminal
        self.mode = "off" if quiet else "live" if terminal else "lines" if force else "off"
        self._live: Live | None = None

    def show(self, stats: IntervalStats, engine: EngineView) -> None:
        if self.mode == "off":
            return
        line = progress_line(self._scenario, stats, engine.in_flight)
        if self.mode == "lines":
            self._console.print(plain(line), highlight=False, markup=False, soft_wrap=True)
            return
        if self._live is None:
            self._live = Live(console=self._console, transient=True, auto_refresh=False)
            self._live.start()
        self._live.update(table(line), refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
