"""Merging worker results: exact counts and percentiles, partial runs, uneven intervals.

The last tests run the engine on virtual time for each worker's share and for the whole
plan, and check that the merged run and the single run give the same summary.
"""

from __future__ import annotations

import pickle
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import anyio
import pytest

from zg_load.cohort import CohortStats
from zg_load.engine import Engine
from zg_load.hdr import Histogram
from zg_load.merge import (
    CohortWire,
    IntervalWire,
    Totals,
    WorkerReport,
    build_report,
    from_wire,
    merge_reports,
    salvage_report,
    to_wire,
    wire_cohort,
    wire_interval,
)
from zg_load.plan import plan
from zg_load.recorder import IntervalStats, Key, Recorder
from zg_load.result import RunResult, Tally
from zg_load.scenario import Scenario, parse_scenario
from zg_load.summary import accounting, build_summary
from zg_load.testing import ManualClock, ScriptedClient
from zg_load.workers import engine_config

S = 1_000_000_000
OK: Key = ("approval", 3, "ok")
REFUSED: Key = ("approval", 1, "refused")

# 4 s in two phases, 500 ms intervals: 300/s then 500/s, all priorities.
SCENARIO = """\
name = "merge"
seed = 11
interval = "500ms"
drain = "3s"

[[mixes.mixed]]
op = "approval"
priority = { 1 = 1, 2 = 1, 3 = 1, 4 = 1, 5 = 1 }
cost_usd = [0.01, 0.05]
task = "t"

[[phases]]
name = "baseline"
role = "baseline"
duration = "2s"
[[phases.streams]]
rate = "300/s"
mix = "mixed"

[[phases]]
name = "storm"
role = "storm"
duration = "2s"
[[phases.streams]]
arrival = "poisson"
rate = "500/s"
mix = "mixed"
"""


def hist_of(values: Sequence[int], highest_us: int = 3_600_000_000) -> Histogram:
    h = Histogram(highest_us)
    h.record_many(values)
    return h


def same(a: Histogram, b: Histogram) -> None:
    assert a.count == b.count and a.overflow == b.overflow
    assert (a.min_us, a.max_us, a.mean_us) == (b.min_us, b.max_us, b.mean_us)
    for p in (0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0):
        assert a.percentile(p) == b.percentile(p), p
    assert a.digest() == b.digest()


def close(a: Histogram, b: Histogram) -> None:
    """Service time runs from the actual send, whose virtual nanosecond the loop's float
    timers may round either way; so a value may differ by 1 µs from the other run's."""
    assert a.count == b.count
    for p in (0.0, 50.0, 90.0, 99.0, 100.0):
        pa, pb = a.percentile(p), b.percentile(p)
        assert pa is not None and pb is not None
        assert abs(pa - pb) <= 1 + max(pa, pb) // 1000, p


# -- the wire form -------------------------------------------------------------------------


def test_wire_round_trip_is_exact_including_overflow_and_huge_counts() -> None:
    values = [1, 7, 2047, 2049, 123_456, 9_999_999, 25_000_001, 25_000_001]
    h = hist_of(values, highest_us=20_000_000)  # the last two are overflow
    assert h.overflow == 2
    for _ in range(33):  # 8 * 2^33 values: counts far above 2^31
        h.merge(h)
    wire = to_wire(h)
    assert wire is not None
    back = from_wire(pickle.loads(pickle.dumps(wire)))
    assert back.count == 8 << 33
    assert (back.min_us, back.max_us, back.mean_us) == (h.min_us, h.max_us, h.mean_us)
    for p in (0.0, 50.0, 62.5, 99.0, 100.0):
        assert back.percentile(p) == h.percentile(p)


def test_an_empty_histogram_travels_as_nothing() -> None:
    assert to_wire(Histogram()) is None
    assert from_wire(None).count == 0 and from_wire(None).percentile(99) is None


# -- synthetic reports ---------------------------------------------------------------------


def report(index: int, intervals: dict[int, list[int]], interval_ns: int = S) -> WorkerReport:
    """A worker that completed ``intervals[i]`` (latencies, µs) as OK in interval ``i``."""
    wires = []
    for i, values in sorted(intervals.items()):
        stats = IntervalStats(
            i, i * interval_ns, (i + 1) * interval_ns, {OK: hist_of(values)}, hist_of([5] * 3)
        )
        wires.append(wire_interval(stats))
    n = sum(len(v) for v in intervals.values())
    service = to_wire(hist_of([v // 2 for vs in intervals.values() for v in vs]))
    assert service is not None
    return WorkerReport(
        index=index,
        start_epoch_s=1_700_000_000.0,
        tally=Tally(intended=n, sent=n, ok=n),
        phase_intended=[n, 0],
        phase_sent=[n, 0],
        refusals=Counter(),
        errors=Counter(),
        probes_total=0,
        probes_ok=0,
        first_send_ns=index,
        last_done_ns=len(intervals) * interval_ns - index,
        end_ns=len(intervals) * interval_ns,
        intended_at={i: len(v) for i, v in intervals.items()},
        sent_at={i: len(v) for i, v in intervals.items()},
        status=[],
        keys=[OK],
        service={OK: service},
        intervals=wires,
    )


def scenario() -> Scenario:
    return parse_scenario(SCENARIO.replace('interval = "500ms"', 'interval = "1s"'))


def test_merged_percentiles_equal_one_histogram_of_every_value() -> None:
    rng = random.Random(7)
    parts = [
        {i: [rng.randint(1, 5_000_000) for _ in range(rng.randint(0, 400))] for i in range(n)}
        for n in (4, 2, 5)  # uneven interval sets: a worker may close more intervals
    ]
    merged = merge_reports([report(i, p) for i, p in enumerate(parts)], 3, scenario())
    everything = [v for p in parts for vs in p.values() for v in vs]
    same(merged.recorder.latency(OK), hist_of(everything))
    same(merged.recorder.service(OK), hist_of([v // 2 for v in everything]))
    assert merged.recorder.counts() == {OK: len(everything)}
    assert merged.recorder.lag().count == 3 * (4 + 2 + 5)
    assert merged.tally.ok == merged.tally.sent == merged.tally.intended == len(everything)
    assert [v.index for v in merged.intervals] == [0, 1, 2, 3, 4]
    for v in merged.intervals:
        assert v.counts.get(OK, 0) == sum(len(p.get(v.index, [])) for p in parts)
    assert (merged.first_send_ns, merged.last_done_ns, merged.end_ns) == (0, 5 * S - 2, 5 * S)
    assert not merged.partial and merged.stop_reason == "completed"
    assert accounting(merged)["identity_holds"]


def test_a_missing_worker_makes_the_run_partial_and_counts_its_share_as_not_sent() -> None:
    sc = scenario()
    parts = [{0: [1000] * 50, 1: [2000] * 50}, {0: [3000] * 40}]
    merged = merge_reports([report(i, p) for i, p in enumerate(parts)], 3, sc)
    assert merged.partial and merged.stop_reason == "worker 2 died: no report"
    share = [r for r in plan(sc, 2, 3) if r.intended_ns < 2 * S]  # up to the run's end
    t = merged.tally
    assert t.intended == 100 + 40 + len(share) and t.sent == t.ok == 140
    assert t.not_sent == len(share) > 0
    assert sum(merged.phase_intended) == t.intended
    assert accounting(merged)["identity_holds"]
    assert merged.recorder.latency(OK).count == 140


def test_a_dead_workers_streamed_completions_stay_merged_and_count_as_sent() -> None:
    sc = scenario()
    live = report(0, {0: [1000] * 30, 1: [1000] * 30, 2: [1000] * 30})
    streamed = report(1, {0: [9000] * 20}).intervals
    dead = salvage_report(1, 1_700_000_000.0, streamed, "killed by signal 9", 2)
    merged = merge_reports([live, dead], 2, sc)
    assert merged.stop_reason == "worker 1 died: killed by signal 9"
    assert merged.recorder.latency(OK).count == 110
    assert merged.recorder.latency(OK).max_us == 9000
    t = merged.tally
    assert (t.sent, t.ok) == (110, 110)
    share = sum(1 for r in plan(sc, 1, 2) if r.intended_ns < 3 * S)
    assert t.intended == 90 + share and t.not_sent == share - 20
    assert merged.phase_sent == [90 + 20, 0]
    assert accounting(merged)["identity_holds"]


def test_totals_protocol_is_what_a_recorder_offers() -> None:
    totals: Totals = Recorder(S)  # the engine's own recorder satisfies it
    assert totals.keys() == []


# -- the same schedule: one process, or shares merged --------------------------------------


async def run_share(
    sc: Scenario, index: int, workers: int
) -> tuple[RunResult, list[IntervalWire], list[CohortWire]]:
    clock = ManualClock()
    # Every send exactly on schedule (no 1 ms wake batching), so a share's sends and the
    # whole run's sends happen at the same virtual times and the merge can be compared exactly.
    config = replace(engine_config(sc, index, workers), min_sleep_ns=0)
    wires: list[IntervalWire] = []
    cohorts: list[CohortWire] = []

    def refuse(priority: int, _now_s: float) -> str | None:
        return "overloaded" if priority == 1 else None

    with clock.installed():
        client = ScriptedClient(clock, service_time_s=0.002, stalls=[(1.2, 1.9)], refuse=refuse)

        def keep(stats: IntervalStats) -> None:
            wires.append(wire_interval(stats, engine.in_flight))

        def seal(cohort: CohortStats) -> None:
            cohorts.append(wire_cohort(cohort))

        engine = Engine(client, clock, Recorder(config.interval_ns), config, keep, on_cohort=seal)
        with anyio.fail_after(3600):  # virtual seconds
            result = await engine.run(plan(sc, index, workers), start_at_ns=0)
    return result, wires, cohorts


def summary_of(result: RunResult, sc: Scenario) -> dict[str, Any]:
    """The run's summary without service times (see ``close``), which are compared apart."""
    summary = build_summary(result, sc, target="scripted", embedded=False, started_at="t0")
    for hists in summary.get("histograms", {}).values():
        hists.pop("service")
    for prios in summary["latency"].values():
        for outcomes in prios.values():
            for kinds in outcomes.values():
                kinds.pop("service")
    return summary


@pytest.mark.anyio
@pytest.mark.parametrize("workers", [2, 3])
async def test_merged_shares_give_the_same_run_as_one_process(workers: int) -> None:
    sc = parse_scenario(SCENARIO)
    single, single_intervals, _ = await run_share(sc, 0, 1)
    reports = []
    for i in range(workers):
        result, wires, cohorts = await run_share(sc, i, workers)
        reports.append(build_report(i, result, wires, result.start_epoch_s, cohorts))
    merged = merge_reports(pickle.loads(pickle.dumps(reports)), workers, sc)  # as sent

    assert single.tally == merged.tally
    assert single.tally.intended > 1500 and single.tally.refused > 0
    for key in single.recorder.keys():
        same(merged.recorder.latency(key), single.recorder.latency(key))
        close(merged.recorder.service(key), single.recorder.service(key))
    same(merged.recorder.lag(), single.recorder.lag())
    assert merged.recorder.counts() == single.recorder.counts()
    # The last interval ends when each process's drain last woke: the same instant, up to
    # the nanosecond that virtual time's float timers may add.
    assert abs(merged.intervals[-1].end_ns - single.intervals[-1].end_ns) <= 1_000
    assert abs(merged.end_ns - single.end_ns) <= 1_000
    last = merged.intervals[-1]
    merged.intervals[-1] = replace(last, end_ns=single.intervals[-1].end_ns)
    merged.end_ns = single.end_ns
    assert merged.intervals == single.intervals
    # cohorts: the requests intended in each 500 ms, whenever they completed (the stall
    # from 1.2 s to 1.9 s pushes cohort 2's into later intervals)
    assert merged.cohorts == single.cohorts
    assert [v.index for v in single.cohorts] == list(range(8))
    assert sum(sum(v.counts.values()) for v in single.cohorts) == single.tally.completed
    assert {i: sum(v.counts.values()) for i, v in enumerate(single.cohorts)} == {
        i: n for i, n in single.intended_at.items()
    }
    assert [sum(v.counts.values()) for v in single.intervals] != [
        sum(v.counts.values()) for v in single.cohorts
    ]
    for mine, theirs in zip(merged.phase_latency, single.phase_latency, strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:
            same(mine[key], theirs[key])
    assert (merged.intended_at, merged.sent_at) == (single.intended_at, single.sent_at)
    assert [(round(t, 6), b) for t, b in merged.status] == [
        (round(t, 6), b) for t, b in single.status
    ]
    assert merged.probes_total == single.probes_total > 0
    assert summary_of(merged, sc) == summary_of(single, sc)
    assert len(single_intervals) == len(merged.intervals)
