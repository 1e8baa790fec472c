"""Priority adherence and recovery time, on hand-made interval views."""

from __future__ import annotations

import pytest

from zg_load.analysis import IntervalView, priority_adherence, recovery_time

S = 1_000_000_000


def iv(
    i: int,
    counts: dict[tuple[int, str], int],
    p99_ms: dict[int, float] | None = None,
    all_p99_ms: float | None = None,
) -> IntervalView:
    p99 = {("approval", p): round(v * 1000) for p, v in (p99_ms or {}).items()}
    return IntervalView(
        index=i,
        start_ns=i * S,
        end_ns=(i + 1) * S,
        counts={("approval", p, o): n for (p, o), n in counts.items()},
        p99_ok_us=p99,
        p99_ok_all_us=None if all_p99_ms is None else round(all_p99_ms * 1000),
        lag_p99_us=0,
    )


@pytest.mark.parametrize(
    ("views", "expected", "comparisons", "held"),
    [
        # no traffic: nothing to compare
        ([], None, 0, 0),
        # one priority only: nothing to compare
        ([iv(0, {(3, "ok"): 10}, {3: 5.0})], None, 0, 0),
        # two priorities, both admitted, higher is faster: 2 comparisons, both hold
        ([iv(0, {(1, "ok"): 100, (5, "ok"): 100}, {1: 9.0, 5: 4.0})], 1.0, 2, 2),
        # higher priority refused more often: refusal comparison fails (weight 400 of 800)
        (
            [iv(0, {(1, "ok"): 200, (5, "ok"): 100, (5, "refused"): 100}, {1: 4.0, 5: 4.0})],
            0.5,
            2,
            1,
        ),
        # higher slower beyond tolerance (10 % + 1 ms): 9 ms vs 12 ms fails
        ([iv(0, {(4, "ok"): 100, (5, "ok"): 100}, {4: 9.0, 5: 12.0})], 0.5, 2, 1),
        # higher slower but within tolerance: 9 * 1.1 + 1 = 10.9 >= 10.5
        ([iv(0, {(4, "ok"): 100, (5, "ok"): 100}, {4: 9.0, 5: 10.5})], 1.0, 2, 2),
        # neither priority served (a storm's lowest two, both shed): nothing to compare
        ([iv(0, {(3, "refused"): 50, (4, "refused"): 40})], None, 0, 0),
        # a service that is down: every request failed, so no adherence at all (not 1.0)
        ([iv(0, {(1, "transport"): 30, (5, "transport"): 30})], None, 0, 0),
        # failures turn requests away too: priority 5 timed out half the time, 4 never
        ([iv(0, {(4, "ok"): 100, (5, "ok"): 50, (5, "timeout"): 50}, {4: 5.0, 5: 5.0})], 0.0, 1, 0),
        # lower priority all refused (no latency to compare): only the refusal comparison
        ([iv(0, {(1, "refused"): 30, (2, "ok"): 10}, {2: 4.0})], 1.0, 1, 1),
        # one lower-priority request admitted before the queue built up (storm start): its
        # "p99" is one value, so only the refusal comparison is made (held: p5 refused less)
        (
            [
                iv(
                    0,
                    {(4, "ok"): 1, (4, "refused"): 18, (5, "ok"): 734, (5, "refused"): 675},
                    {4: 8.0, 5: 140.0},
                )
            ],
            1.0,
            1,
            1,
        ),
        # a calm interval, 99 admitted on one side: its p99 is its maximum, one slow answer
        # (13.6 ms against 8.6 ms), so only the refusal comparison is made
        ([iv(0, {(3, "ok"): 99, (4, "ok"): 99}, {3: 8.6, 4: 13.6})], 1.0, 1, 1),
        ([iv(0, {(4, "ok"): 99, (5, "ok"): 700}, {4: 8.0, 5: 140.0})], 1.0, 1, 1),
        # 100 admitted on each side are enough for the p99 comparison (here it fails)
        ([iv(0, {(4, "ok"): 100, (5, "ok"): 700}, {4: 8.0, 5: 140.0})], 0.5, 2, 1),
        # weighting: interval 0 holds with 200 requests, interval 1 fails with 20
        (
            [
                iv(0, {(1, "ok"): 100, (2, "ok"): 100}, {1: 5.0, 2: 5.0}),
                iv(1, {(1, "ok"): 10, (2, "refused"): 10}, {1: 5.0}),
            ],
            (400 + 0) / (400 + 20),
            3,
            2,
        ),
    ],
)
def test_priority_adherence(
    views: list[IntervalView], expected: float | None, comparisons: int, held: int
) -> None:
    a = priority_adherence(views, tolerance=0.10, tolerance_ms=1.0)
    assert a.value == (None if expected is None else pytest.approx(expected))
    assert (a.comparisons, a.held) == (comparisons, held)


def test_adjacent_pairs_skip_priorities_without_traffic() -> None:
    # priorities 1, 3, 5 have traffic: pairs (1,3) and (3,5), not (1,5)
    v = iv(0, {(1, "ok"): 100, (3, "ok"): 100, (5, "ok"): 100}, {1: 3.0, 3: 2.0, 5: 1.0})
    a = priority_adherence([v])
    assert (a.comparisons, a.held, a.weight) == (4, 4, 800)


def storm_views(after: list[tuple[float, int, int]]) -> list[IntervalView]:
    """3 baseline intervals (p99 10 ms, no refusals), 2 storm intervals, then `after`."""
    views = [iv(i, {(3, "ok"): 100}, all_p99_ms=10.0) for i in range(3)]
    views += [iv(3 + i, {(3, "ok"): 50, (3, "refused"): 50}, all_p99_ms=900.0) for i in range(2)]
    for j, (p99, ok, refused) in enumerate(after):
        views.append(iv(5 + j, {(3, "ok"): ok, (3, "refused"): refused}, all_p99_ms=p99))
    return views


@pytest.mark.parametrize(
    ("after", "expected_s"),
    [
        # back at once and stays: recovery 0 s
        ([(10.0, 100, 0)] * 3, 0.0),
        # two slow intervals, then three good ones: recovered at the start of the third
        ([(800.0, 100, 0), (50.0, 100, 0), (12.0, 100, 0), (11.0, 100, 0), (10.0, 100, 0)], 2.0),
        # limit is 10 * 1.5 + 5 = 20 ms: 20 ms counts as recovered, 20.001 does not
        ([(20.0, 100, 0)] * 3, 0.0),
        ([(20.001, 100, 0)] * 3, None),
        # refusals above baseline + 2 % keep it from recovering
        ([(10.0, 97, 3)] * 3, None),
        ([(10.0, 98, 2)] * 3, 0.0),
        # a good streak broken before it reaches 3 intervals starts over
        (
            [
                (10.0, 100, 0),
                (10.0, 100, 0),
                (90.0, 100, 0),
                (10.0, 100, 0),
                (10.0, 100, 0),
                (10.0, 100, 0),
            ],
            3.0,
        ),
        # never within the run
        ([(500.0, 100, 0)] * 5, None),
        ([], None),
    ],
)
def test_recovery_time(after: list[tuple[float, int, int]], expected_s: float | None) -> None:
    rec = recovery_time(storm_views(after), (0, 3 * S), 5 * S)
    assert rec.time_s == expected_s
    assert rec.baseline_p99_us == 10_000
    assert rec.baseline_refusal_rate == 0.0


def test_recovery_skips_idle_intervals() -> None:
    views = storm_views([(10.0, 100, 0)])
    views.append(iv(6, {}, all_p99_ms=None))
    views += [iv(7, {(3, "ok"): 100}, all_p99_ms=10.0), iv(8, {(3, "ok"): 100}, all_p99_ms=10.0)]
    assert recovery_time(views, (0, 3 * S), 5 * S).time_s == 0.0


def test_no_baseline_traffic_means_no_recovery_figure() -> None:
    views = [iv(0, {}), iv(1, {(3, "ok"): 10}, all_p99_ms=5.0)]
    rec = recovery_time(views, (0, 1 * S), 1 * S)
    assert rec.time_s is None and rec.baseline_p99_us is None


def test_adherence_counts_its_latency_comparisons() -> None:
    views = [
        iv(0, {(4, "ok"): 100, (5, "ok"): 100}, {4: 9.0, 5: 4.0}),  # refusals and p99s
        iv(1, {(4, "ok"): 60, (5, "ok"): 60}, {4: 9.0, 5: 400.0}),  # refusals only
    ]
    a = priority_adherence(views)
    assert (a.comparisons, a.p99_comparisons, a.held) == (3, 1, 3)
    # a service that inverts latency where samples are few still scores 1.0: the count of
    # latency comparisons is what tells the two apart (the report says when it is 0)
    assert priority_adherence(views[1:]).p99_comparisons == 0
