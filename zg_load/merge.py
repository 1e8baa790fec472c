"""Merging the results of several workers into one run result, exactly.

Pure: worker reports in, a ``RunResult`` out. A ``WorkerReport`` is what one worker
measured, in a compact picklable form: exact counters, and every histogram as its V2
encoding plus its exact min, max and sum (``WireHist``). Guarantees:
- counts are never lost or rounded: tallies and counters are summed, histograms of the
  same key and interval are merged bucket by bucket, so merged percentiles, min, max and
  mean equal those of one histogram that recorded every worker's values;
- intervals are aligned on the shared start, so interval ``i`` of every worker covers the
  same span of run time; latency and lag totals are the merge of the intervals (exact by
  the recorder's guarantee), service-time totals come from each worker's totals;
- a worker without a final report makes the run partial, with stop reason
  ``worker N died: ...``. Its share of the plan (up to the run's end) counts as intended;
  the completions it streamed before it died count as sent and stay merged; the rest of its
  share counts as not sent, since its fate is unknown. So the accounting identity holds
  and the report says a worker died. Its service times and its cohorts are lost (cohorts
  come with the final report), so priority adherence covers the other workers' requests;
- cohorts (requests by the interval of their intended start) of the same index are merged
  the same way: counts summed, histograms merged.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from zg_load.analysis import IntervalView, PhaseAccumulator, view_cohort, view_interval
from zg_load.cohort import CohortStats, merge_cohorts
from zg_load.hdr import Histogram
from zg_load.plan import plan
from zg_load.recorder import IntervalStats, Key
from zg_load.result import RunResult, Tally, Totals
from zg_load.scenario import Scenario

NS_PER_S = 1_000_000_000


# -- the wire form -------------------------------------------------------------------------


@dataclass(frozen=True)
class WireHist:
    """A histogram as it crosses a process boundary: every count, and its exact edges."""

    encoded: str  # Histogram.encode(): every bucket count, overflow included
    min_us: int
    max_us: int
    sum_us: int


def to_wire(hist: Histogram) -> WireHist | None:
    """The wire form of ``hist``; None when it is empty."""
    if hist.count == 0 or hist.min_us is None or hist.max_us is None:
        return None
    return WireHist(hist.encode(), hist.min_us, hist.max_us, hist.sum_us)


def from_wire(wire: WireHist | None) -> Histogram:
    """The histogram that ``to_wire`` was given: same counts, min, max and mean."""
    if wire is None:
        return Histogram()
    hist = Histogram.decode(wire.encoded, exact_max_us=wire.max_us)
    hist.restore_exact(wire.min_us, wire.max_us, wire.sum_us)
    return hist


@dataclass(frozen=True)
class IntervalWire:
    """One closed interval of one worker; times are offsets from the shared start."""

    index: int
    start_ns: int
    end_ns: int
    latency: dict[Key, WireHist]
    lag: WireHist | None
    in_flight: int = 0  # the worker's requests in flight when it closed the interval


def wire_interval(stats: IntervalStats, in_flight: int = 0) -> IntervalWire:
    latency = {k: w for k, h in stats.latency.items() if (w := to_wire(h)) is not None}
    return IntervalWire(
        stats.index, stats.start_ns, stats.end_ns, latency, to_wire(stats.lag), in_flight
    )


@dataclass(frozen=True)
class CohortWire:
    """One sealed cohort of one worker (requests intended in one interval)."""

    index: int
    start_ns: int
    end_ns: int
    counts: dict[Key, int]
    ok: dict[tuple[str, int], WireHist]


def wire_cohort(cohort: CohortStats) -> CohortWire:
    ok = {k: w for k, h in cohort.ok.items() if (w := to_wire(h)) is not None}
    return CohortWire(cohort.index, cohort.start_ns, cohort.end_ns, dict(cohort.counts), ok)


def merged_cohort_views(reports: Sequence[WorkerReport]) -> list[IntervalView]:
    """Every cohort that some worker sealed, merged over the workers and digested, in
    order; one cohort's histograms at a time."""
    parts: dict[int, list[CohortWire]] = {}
    for report in reports:
        for wire in report.cohorts:
            parts.setdefault(wire.index, []).append(wire)
    return [view_cohort(merge_cohorts([_from_wire(w) for w in parts[i]])) for i in sorted(parts)]


def _from_wire(wire: CohortWire) -> CohortStats:
    ok = {k: from_wire(w) for k, w in wire.ok.items()}
    return CohortStats(wire.index, wire.start_ns, wire.end_ns, dict(wire.counts), ok)


def merge_interval(parts: Sequence[IntervalWire]) -> IntervalStats:
    """Interval ``i`` of several workers as one; it ends when the last worker's did."""
    latency: dict[Key, Histogram] = {}
    lag = Histogram()
    for part in parts:
        for key, wire in part.latency.items():
            latency.setdefault(key, Histogram()).merge(from_wire(wire))
        lag.merge(from_wire(part.lag))
    first = parts[0]
    end_ns = max(part.end_ns for part in parts)
    return IntervalStats(first.index, first.start_ns, end_ns, dict(sorted(latency.items())), lag)


# -- one worker's report -------------------------------------------------------------------


@dataclass
class WorkerReport:
    """What one worker measured; ``died`` is set when it gave no final report."""

    index: int
    start_epoch_s: float
    tally: Tally
    phase_intended: list[int]
    phase_sent: list[int]
    refusals: Counter[tuple[str, int, str]]
    errors: Counter[str]
    probes_total: int
    probes_ok: int
    first_send_ns: int | None
    last_done_ns: int | None
    end_ns: int
    intended_at: dict[int, int]
    sent_at: dict[int, int]
    status: list[tuple[float, Any]]
    keys: list[Key]
    service: dict[Key, WireHist]
    intervals: list[IntervalWire] = field(default_factory=list)
    cohorts: list[CohortWire] = field(default_factory=list)  # none from a worker that died
    partial: bool = False
    stop_reason: str = "completed"
    died: str | None = None


def build_report(
    index: int,
    result: RunResult,
    intervals: Sequence[IntervalWire],
    start_epoch_s: float,
    cohorts: Sequence[CohortWire] = (),
) -> WorkerReport:
    """The report of a worker whose engine returned ``result``."""
    rec = result.recorder
    service = {k: w for k in rec.keys() if (w := to_wire(rec.service(k))) is not None}
    return WorkerReport(
        index=index,
        start_epoch_s=start_epoch_s,
        tally=replace(result.tally),
        phase_intended=list(result.phase_intended),
        phase_sent=list(result.phase_sent),
        refusals=Counter(result.refusals),
        errors=Counter(result.errors),
        probes_total=result.probes_total,
        probes_ok=result.probes_ok,
        first_send_ns=result.first_send_ns,
        last_done_ns=result.last_done_ns,
        end_ns=result.end_ns,
        intended_at=dict(result.intended_at),
        sent_at=dict(result.sent_at),
        status=list(result.status),
        keys=list(rec.keys()),
        service=service,
        intervals=list(intervals),
        cohorts=list(cohorts),
        partial=result.partial,
        stop_reason=result.stop_reason,
    )


def salvage_report(
    index: int, start_epoch_s: float, intervals: Sequence[IntervalWire], reason: str, phases: int
) -> WorkerReport:
    """The report of a worker that died after streaming ``intervals`` (module doc).

    Sent and completed counts come from the completions it streamed; ``merge_reports``
    adds its planned share as intended.
    """
    tally, sent_at = Tally(), Counter[int]()
    for part in intervals:
        for (_, _, outcome), wire in part.latency.items():
            n = _count(wire)
            setattr(tally, outcome, getattr(tally, outcome) + n)
            tally.sent += n
            sent_at[part.index] += n
    return WorkerReport(
        index=index,
        start_epoch_s=start_epoch_s,
        tally=tally,
        phase_intended=[0] * phases,
        phase_sent=[0] * phases,  # filled from the intervals by merge_reports
        refusals=Counter(),
        errors=Counter(),
        probes_total=0,
        probes_ok=0,
        first_send_ns=None,
        last_done_ns=None,
        end_ns=max((part.end_ns for part in intervals), default=0),
        intended_at={},
        sent_at=dict(sent_at),
        status=[],
        keys=sorted({key for part in intervals for key in part.latency}),
        service={},
        intervals=list(intervals),
        partial=True,
        stop_reason=reason,
        died=reason,
    )


def _count(wire: WireHist) -> int:
    return from_wire(wire).count


# -- the merged run ------------------------------------------------------------------------


class MergedTotals:
    """Whole-run histograms of several workers, read like a ``Recorder``'s totals."""

    def __init__(
        self, latency: dict[Key, Histogram], service: dict[Key, Histogram], lag: Histogram
    ) -> None:
        self._latency = latency
        self._service = service
        self._lag = lag
        self._keys = sorted(set(latency) | set(service))

    def latency(self, key: Key) -> Histogram:
        hist = self._latency.get(key)
        return Histogram() if hist is None else hist.copy()

    def service(self, key: Key) -> Histogram:
        hist = self._service.get(key)
        return Histogram() if hist is None else hist.copy()

    def lag(self) -> Histogram:
        return self._lag.copy()

    def counts(self) -> dict[Key, int]:
        return {key: self._latency[key].count if key in self._latency else 0 for key in self._keys}

    def keys(self) -> list[Key]:
        return list(self._keys)


def merge_reports(
    reports: Sequence[WorkerReport], expected_workers: int, scenario: Scenario
) -> RunResult:
    """One run result from the reports of workers ``0 .. expected_workers - 1`` (module doc).

    A worker with no report at all counts as one that died before streaming anything.
    """
    phase_ends = tuple(round(end * NS_PER_S) for _, end in scenario.phase_bounds())
    by_index = {r.index: r for r in reports}
    until_ns = min(phase_ends[-1], max((r.end_ns for r in reports), default=phase_ends[-1]))
    start_s = next((r.start_epoch_s for r in reports), 0.0)
    full = [
        _with_share(by_index.get(i), i, expected_workers, scenario, (start_s, until_ns))
        for i in range(expected_workers)
    ]
    stats = merged_intervals(full)
    by_phase = PhaseAccumulator(phase_ends)
    for one in stats:
        by_phase.add(one)
    return RunResult(
        tally=_sum_tallies(r.tally for r in full),
        recorder=_totals(full, stats),
        intervals=[view_interval(one) for one in stats],
        cohorts=merged_cohort_views(full),
        phase_latency=by_phase.latency,
        intended_at=_sum_maps(r.intended_at for r in full),
        sent_at=_sum_maps(r.sent_at for r in full),
        status=sorted((s for r in full for s in r.status), key=lambda s: s[0]),
        phase_intended=[sum(col) for col in zip(*(r.phase_intended for r in full), strict=True)],
        phase_sent=[sum(col) for col in zip(*(r.phase_sent for r in full), strict=True)],
        refusals=sum((r.refusals for r in full), Counter()),
        errors=sum((r.errors for r in full), Counter()),
        probes_total=sum(r.probes_total for r in full),
        probes_ok=sum(r.probes_ok for r in full),
        start_epoch_s=full[0].start_epoch_s,
        end_ns=max(r.end_ns for r in full),
        first_send_ns=min(
            (r.first_send_ns for r in full if r.first_send_ns is not None), default=None
        ),
        last_done_ns=max(
            (r.last_done_ns for r in full if r.last_done_ns is not None), default=None
        ),
        partial=any(r.partial for r in full),
        stop_reason=_stop_reason(full),
    )


def _with_share(
    report: WorkerReport | None,
    index: int,
    workers: int,
    scenario: Scenario,
    start_until: tuple[float, int],
) -> WorkerReport:
    """A dead worker's report with its planned share up to ``until_ns`` as intended and
    its streamed completions as sent in the phase their interval began in."""
    start_s, until_ns = start_until
    if report is None:
        report = salvage_report(index, start_s, (), "no report", len(scenario.phases))
    if report.died is None:
        return report
    interval_ns = round(scenario.interval_s * NS_PER_S)
    phase_ends = [round(end * NS_PER_S) for _, end in scenario.phase_bounds()]
    phase_intended = [0] * len(phase_ends)
    intended_at: Counter[int] = Counter()
    for req in plan(scenario, index, workers):
        if req.intended_ns >= until_ns:
            break
        phase_intended[req.phase] += 1
        intended_at[req.intended_ns // interval_ns] += 1
    phase_sent = [0] * len(phase_ends)
    for part in report.intervals:
        phase = min(bisect_right(phase_ends, part.start_ns), len(phase_ends) - 1)
        phase_sent[phase] += sum(_count(w) for w in part.latency.values())
    tally = replace(report.tally)
    # Closed-loop users are not in the plan: what it completed was at least intended.
    tally.intended = max(sum(phase_intended), tally.sent)
    stop = f"worker {index} died: {report.died}"
    return replace(
        report,
        tally=tally,
        phase_intended=phase_intended,
        phase_sent=phase_sent,
        intended_at=dict(intended_at),
        stop_reason=stop,
        partial=True,
    )


def merged_intervals(reports: Sequence[WorkerReport]) -> list[IntervalStats]:
    """Every interval that some worker closed, merged over the workers, in order."""
    parts: dict[int, list[IntervalWire]] = {}
    for report in reports:
        for part in report.intervals:
            parts.setdefault(part.index, []).append(part)
    return [merge_interval(parts[i]) for i in sorted(parts)]


def _totals(reports: Sequence[WorkerReport], stats: Sequence[IntervalStats]) -> Totals:
    latency: dict[Key, Histogram] = {}
    lag = Histogram()
    for one in stats:
        for key, hist in one.latency.items():
            latency.setdefault(key, Histogram()).merge(hist)
        lag.merge(one.lag)
    service: dict[Key, Histogram] = {}
    for report in reports:
        for key in report.keys:
            latency.setdefault(key, Histogram())
        for key, wire in report.service.items():
            service.setdefault(key, Histogram()).merge(from_wire(wire))
    return MergedTotals(latency, service, lag)


def _sum_tallies(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for one in tallies:
        for f in fields(Tally):
            setattr(total, f.name, getattr(total, f.name) + getattr(one, f.name))
    return total


def _sum_maps(maps: Iterable[dict[int, int]]) -> dict[int, int]:
    total: Counter[int] = Counter()
    for one in maps:
        total.update(one)
    return dict(sorted(total.items()))


def _stop_reason(reports: Sequence[WorkerReport]) -> str:
    dead = [r.stop_reason for r in reports if r.died is not None]
    if dead:
        return "; ".join(dead)
    return next((r.stop_reason for r in reports if r.partial), "completed")
