"""Live progress: what it says, and when it shows (terminal, forced lines, quiet)."""

from __future__ import annotations

import io

from rich.console import Console

from zg_load.hdr import Histogram
from zg_load.progress import Progress, intended_rate, plain, progress_line
from zg_load.recorder import IntervalStats
from zg_load.scenario import parse_scenario

SCENARIO = parse_scenario(
    """
name = "t"
interval = "1s"
[[mixes.m]]
op = "approval"
task = "t"
priority = 5
cost_usd = 0.01
[[phases]]
name = "base"
duration = "10s"
[[phases.streams]]
rate = "100/s"
mix = "m"
[[phases]]
name = "ramp"
duration = "10s"
[[phases.streams]]
arrival = "ramp"
rate = "100/s"
to_rate = "300/s"
mix = "m"
""",
    source="t.toml",
)


class FakeEngine:
    in_flight = 42


def stats(index: int) -> IntervalStats:
    ok, refused = Histogram(), Histogram()
    ok.record_many([1000] * 98 + [9000, 20000])
    refused.record_many([500] * 25)
    latency = {("approval", 5, "ok"): ok, ("approval", 1, "refused"): refused}
    return IntervalStats(index, index * 10**9, (index + 1) * 10**9, latency, Histogram())


def test_progress_line_figures() -> None:
    line = progress_line(SCENARIO, stats(12), FakeEngine.in_flight)
    assert (line.phase, line.elapsed_s, line.remaining_s) == ("ramp", 13.0, 7.0)
    assert line.intended_per_s == 150.0  # 12.5 s: a quarter up the 100 -> 300 ramp
    assert (line.answered_per_s, line.refused, line.in_flight) == (125.0, 25, 42)
    assert line.p99_ms == 9.007  # the HDR bucket holding 9,000 µs
    assert plain(line) == (
        "[  13.0s,   7.0s left] ramp       intended 150.0/s  answered 125.0/s  in flight 42"
        "  p99 ok 9.0 ms  refused 25 (20.0%)  failed 0"
    )
    assert intended_rate(SCENARIO, 3.0) == 100.0 and intended_rate(SCENARIO, 25.0) is None


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=120), buf


def test_not_a_terminal_prints_nothing_unless_forced() -> None:
    con, buf = console(False)
    p = Progress(SCENARIO, console=con)
    p.show(stats(0), FakeEngine())
    p.close()
    assert p.mode == "off" and buf.getvalue() == ""
    con, buf = console(False)
    p = Progress(SCENARIO, force=True, console=con)
    p.show(stats(0), FakeEngine())
    p.show(stats(1), FakeEngine())
    p.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("[   2.0s,  18.0s left] base")


def test_quiet_wins_and_a_terminal_gets_a_live_table() -> None:
    con, buf = console(True)
    quiet = Progress(SCENARIO, quiet=True, force=True, console=con)
    quiet.show(stats(0), FakeEngine())
    assert quiet.mode == "off" and buf.getvalue() == ""
    live = Progress(SCENARIO, console=con)
    live.show(stats(3), FakeEngine())
    live.close()
    out = buf.getvalue()
    assert live.mode == "live"
    for text in ("phase", "intended", "in flight", "p99 ok", "100.0/s", "9.0 ms", "25 (20.0%)"):
        assert text in out, text
