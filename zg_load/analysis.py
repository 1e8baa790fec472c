"""Analysis of a run's intervals: priority adherence and recovery time.

Pure: interval views in, figures out. An ``IntervalView`` is the compact digest of
one closed interval or one cohort (counts per key and p99 of admitted requests), so a
long run keeps kilobytes per interval, not histograms.

Priority adherence is computed on cohorts: the requests whose intended start fell in the
same interval, which competed for the service at the same time (``zg_load.cohort``). Per
cohort, for each operation and each pair of adjacent priorities that both had traffic and
not both went unserved, two comparisons: the higher priority is turned away (refused, or
failed: error, timeout, transport) no more often than the lower, and (when both had at
least ``min_admitted`` admitted requests) its p99 latency is not above the lower one's
p99 × (1 + tolerance) + tolerance_ms. Each comparison weighs as many requests as the two
priorities had in that cohort; adherence is the weighted share of comparisons that hold.

Two priorities of which nothing was admitted say nothing about priority (a storm's lowest,
all shed; a service that is down): a run in which nothing was served has no adherence
(None), not a perfect one. The nearest-rank p99 of fewer than 100 requests is their
maximum, not a percentile: comparing two maxima compares two single outliers (one request
admitted before a storm's queue built up, or one slow answer in a calm interval of 30
requests), which would otherwise count as an inversion weighing every request of both
priorities.

Recovery time: the baseline is the median per-interval p99 of admitted requests and
the refusal rate over the baseline phase. After the storm phase ends, the service
has recovered at the start of the first run of ``stable`` consecutive intervals
whose p99 ≤ baseline × (1 + rel) + abs_ms and whose refusal rate ≤ baseline rate +
refusal tolerance. Recovery time is that start minus the storm's end; None when it
never happens within the run. Intervals without traffic neither count nor break a run.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from zg_load.cohort import CohortStats
from zg_load.hdr import Histogram
from zg_load.recorder import IntervalStats, Key

NS_PER_S = 1_000_000_000
MIN_ADMITTED = 100  # admitted requests each side needs in an interval for a p99 comparison


@dataclass(frozen=True)
class IntervalView:
    index: int
    start_ns: int
    end_ns: int
    counts: dict[Key, int]
    p99_ok_us: dict[tuple[str, int], int | None]
    p99_ok_all_us: int | None
    lag_p99_us: int | None

    def total(self, op: str | None = None, priority: int | None = None) -> int:
        return sum(
            n
            for (o, p, _), n in self.counts.items()
            if (op is None or o == op) and (priority is None or p == priority)
        )

    def admitted(self, op: str, priority: int) -> int:
        return self.counts.get((op, priority, "ok"), 0)

    def refused(self, op: str | None = None, priority: int | None = None) -> int:
        return sum(
            n
            for (o, p, out), n in self.counts.items()
            if out == "refused" and (op is None or o == op) and (priority is None or p == priority)
        )


def view_interval(stats: IntervalStats) -> IntervalView:
    """Digest a closed interval: counts per key and p99 of admitted requests."""
    ok = {(op, p): hist for (op, p, outcome), hist in stats.latency.items() if outcome == "ok"}
    return _view(stats.index, stats.start_ns, stats.end_ns, stats.counts, ok, stats.lag)


def view_cohort(cohort: CohortStats) -> IntervalView:
    """Digest a sealed cohort (requests intended in one interval) as an interval view."""
    return _view(cohort.index, cohort.start_ns, cohort.end_ns, cohort.counts, cohort.ok, None)


def _view(
    index: int,
    start_ns: int,
    end_ns: int,
    counts: dict[Key, int],
    ok: dict[tuple[str, int], Histogram],
    lag: Histogram | None,
) -> IntervalView:
    p99: dict[tuple[str, int], int | None] = {}
    merged = Histogram()
    for op_priority, hist in ok.items():
        p99[op_priority] = hist.percentile(99.0)
        merged.merge(hist)
    return IntervalView(
        index=index,
        start_ns=start_ns,
        end_ns=end_ns,
        counts=dict(counts),
        p99_ok_us=p99,
        p99_ok_all_us=merged.percentile(99.0),
        lag_p99_us=None if lag is None else lag.percentile(99.0),
    )


@dataclass(frozen=True)
class Adherence:
    value: float | None
    comparisons: int
    held: int
    weight: int
    weight_held: int
    p99_comparisons: int = 0  # of ``comparisons``, those of latency (the rest: turned away)


def _pair_comparisons(
    v: IntervalView, op: str, lo: int, hi: int, tol_rel: float, tol_us: float, min_admitted: int
) -> list[tuple[int, bool, bool]]:
    """(weight, held, is a p99 comparison) of each comparison made for the pair."""
    ok_lo, ok_hi = v.admitted(op, lo), v.admitted(op, hi)
    if ok_lo == 0 and ok_hi == 0:
        return []  # neither was served: nothing about priority to compare
    n_lo, n_hi = v.total(op, lo), v.total(op, hi)
    weight = n_lo + n_hi
    # turned away: refused, or failed (error, timeout, transport)
    out = [(weight, (n_hi - ok_hi) * n_lo <= (n_lo - ok_lo) * n_hi, False)]
    p_lo, p_hi = v.p99_ok_us.get((op, lo)), v.p99_ok_us.get((op, hi))
    if p_lo is not None and p_hi is not None and min(ok_lo, ok_hi) >= min_admitted:
        out.append((weight, p_hi <= p_lo * (1.0 + tol_rel) + tol_us, True))
    return out


def priority_adherence(
    views: Sequence[IntervalView],
    tolerance: float = 0.10,
    tolerance_ms: float = 1.0,
    min_admitted: int = MIN_ADMITTED,
) -> Adherence:
    """Request-weighted share of adjacent-priority comparisons that hold (module doc)."""
    results: list[tuple[int, bool, bool]] = []
    tol_us = tolerance_ms * 1000.0
    for v in views:
        for op in sorted({o for (o, _, _) in v.counts}):
            prios = sorted({p for (o, p, _), n in v.counts.items() if o == op and n > 0})
            for lo, hi in zip(prios, prios[1:], strict=False):
                results += _pair_comparisons(v, op, lo, hi, tolerance, tol_us, min_admitted)
    weight = sum(w for w, _, _ in results)
    weight_held = sum(w for w, ok, _ in results if ok)
    return Adherence(
        value=weight_held / weight if weight else None,
        comparisons=len(results),
        held=sum(1 for _, ok, _ in results if ok),
        weight=weight,
        weight_held=weight_held,
        p99_comparisons=sum(1 for _, _, latency in results if latency),
    )


@dataclass(frozen=True)
class Recovery:
    time_s: float | None
    baseline_p99_us: float | None
    baseline_refusal_rate: float | None
    limit_p99_us: float | None
    storm_end_s: float | None


def _in(v: IntervalView, start_ns: int, end_ns: int) -> bool:
    return v.start_ns >= start_ns and v.end_ns <= end_ns


def baseline_of(
    views: Sequence[IntervalView], start_ns: int, end_ns: int
) -> tuple[float | None, float | None]:
    """(median interval p99 of admitted requests, refusal rate) over a phase."""
    inside = [v for v in views if _in(v, start_ns, end_ns)]
    p99s = [v.p99_ok_all_us for v in inside if v.p99_ok_all_us is not None]
    total = sum(v.total() for v in inside)
    rate = sum(v.refused() for v in inside) / total if total else None
    return (statistics.median(p99s) if p99s else None), rate


def recovery_time(
    views: Sequence[IntervalView],
    baseline_ns: tuple[int, int],
    storm_end_ns: int,
    *,
    p99_tolerance: float = 0.5,
    p99_tolerance_ms: float = 5.0,
    refusal_tolerance: float = 0.02,
    stable_intervals: int = 3,
) -> Recovery:
    """Seconds from the storm's end until the service is back near its baseline (module doc)."""
    base_p99, base_rate = baseline_of(views, *baseline_ns)
    storm_end_s = storm_end_ns / NS_PER_S
    if base_p99 is None or base_rate is None:
        return Recovery(None, base_p99, base_rate, None, storm_end_s)
    limit = base_p99 * (1.0 + p99_tolerance) + p99_tolerance_ms * 1000.0
    streak_start: IntervalView | None = None
    streak = 0
    for v in views:
        total = v.total()
        if v.start_ns < storm_end_ns or total == 0:
            continue
        p99 = v.p99_ok_all_us
        good = (
            p99 is not None
            and p99 <= limit
            and v.refused() / total <= base_rate + refusal_tolerance
        )
        if not good:
            streak_start, streak = None, 0
            continue
        streak_start = streak_start or v
        streak += 1
        if streak >= stable_intervals:
            return Recovery(
                (streak_start.start_ns - storm_end_ns) / NS_PER_S,
                base_p99,
                base_rate,
                limit,
                storm_end_s,
            )
    return Recovery(None, base_p99, base_rate, limit, storm_end_s)


class PhaseAccumulator:
    """Merges each closed interval's histograms into the phase it started in.

    Intervals after the last phase (the drain) belong to the last phase: their
    requests were intended in it.
    """

    def __init__(self, phase_ends_ns: Sequence[int]) -> None:
        self._ends = list(phase_ends_ns)
        self.latency: list[dict[Key, Histogram]] = [{} for _ in self._ends]

    def add(self, stats: IntervalStats) -> None:
        i = min(bisect_right(self._ends, stats.start_ns), len(self._ends) - 1)
        for key, hist in stats.latency.items():
            self.latency[i].setdefault(key, Histogram()).merge(hist)
