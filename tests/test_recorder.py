from __future__ import annotations

import random

import pytest

from zg_load.hdr import Histogram
from zg_load.recorder import IntervalStats, Key, Recorder

OK: Key = ("approval", 5, "ok")
REFUSED: Key = ("approval", 1, "refused")
SECOND_NS = 1_000_000_000


def _recorder(interval_ns: int = 1000) -> tuple[Recorder, int, int]:
    recorder = Recorder(interval_ns)
    return recorder, recorder.key(*OK), recorder.key(*REFUSED)


def _interval_counts(stats: list[IntervalStats], key: Key) -> list[int]:
    return [interval.counts.get(key, 0) for interval in stats]


def test_key_ids_are_small_and_stable() -> None:
    recorder, ok, refused = _recorder()
    assert (ok, refused, recorder.key(*OK)) == (0, 1, 0)
    assert recorder.keys() == [OK, REFUSED]
    with pytest.raises(ValueError, match="unknown outcome"):
        recorder.key("approval", 5, "fine")


@pytest.mark.parametrize(
    ("done_ns", "index"),
    [(0, 0), (1, 0), (999, 0), (1000, 1), (1001, 1), (1999, 1), (2000, 2), (2999, 2)],
)
def test_values_go_to_the_interval_of_their_completion(done_ns: int, index: int) -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, done_ns, 500, 400)
    stats = recorder.close_until(3000)
    assert [s.index for s in stats] == [0, 1, 2]
    assert _interval_counts(stats, OK) == [1 if i == index else 0 for i in range(3)]


@pytest.mark.parametrize(
    ("now_ns", "closed"),
    [(0, []), (999, []), (1000, [0]), (1999, [0]), (2000, [0, 1]), (5500, [0, 1, 2, 3, 4])],
)
def test_close_until_closes_intervals_that_ended(now_ns: int, closed: list[int]) -> None:
    recorder, _, _ = _recorder()
    stats = recorder.close_until(now_ns)
    assert [(s.index, s.start_ns, s.end_ns) for s in stats] == [
        (i, i * 1000, (i + 1) * 1000) for i in closed
    ]


def test_each_interval_is_returned_once_and_idle_ones_are_empty() -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, 100, 10, 5)
    first = recorder.close_until(1000)
    assert recorder.close_until(1000) == []
    assert recorder.close_until(500) == []
    recorder.record(ok, 3500, 20, 5)
    later = recorder.close_until(4000)
    assert [s.index for s in first + later] == [0, 1, 2, 3]
    idle = later[0]
    assert (idle.latency, idle.counts, idle.lag.count) == ({}, {}, 0)
    assert later[-1].latency[OK].max_us == 20


def test_values_not_yet_due_stay_buffered() -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, 500, 10, 5)
    recorder.record(ok, 1500, 20, 5)
    assert _interval_counts(recorder.close_until(1200), OK) == [1]
    assert recorder.counts()[OK] == 1
    assert _interval_counts(recorder.close_until(2000), OK) == [1]
    assert recorder.counts()[OK] == 2


def test_late_values_go_to_the_earliest_open_interval() -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, 100, 10, 5)
    recorder.close_until(2000)
    recorder.record(ok, 100, 30, 5)  # its interval (0) is closed already
    recorder.record(ok, 2100, 40, 5)
    stats = recorder.close_until(4000)
    assert _interval_counts(stats, OK) == [2, 0]
    assert stats[0].latency[OK].max_us == 40
    assert recorder.latency(OK).count == 3


@pytest.mark.parametrize(
    ("end_ns", "spans"),
    [
        (2600, [(0, 1000), (1000, 2000), (2000, 2600)]),
        (3000, [(0, 1000), (1000, 2000), (2000, 3000)]),
        (1, [(0, 1)]),
    ],
)
def test_close_all_ends_the_last_interval_at_end(end_ns: int, spans: list[tuple[int, int]]) -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, 0, 10, 5)
    recorder.record(ok, end_ns + 5000, 20, 5)  # after the end: folded into the last interval
    stats = recorder.close_all(end_ns)
    assert [(s.start_ns, s.end_ns) for s in stats] == spans
    assert sum(_interval_counts(stats, OK)) == 2
    assert stats[-1].counts[OK] == (2 if len(stats) == 1 else 1)


def test_close_all_after_everything_closed_keeps_pending_values() -> None:
    recorder, ok, _ = _recorder()
    recorder.close_until(3000)
    recorder.record(ok, 2500, 10, 5)
    stats = recorder.close_all(3000)
    assert [(s.index, s.start_ns, s.end_ns, s.counts) for s in stats] == [(3, 3000, 3000, {OK: 1})]
    assert recorder.close_all(3000) == []


def test_intervals_sum_and_merge_to_the_totals() -> None:
    recorder, ok, refused = _recorder(interval_ns=SECOND_NS)
    rng = random.Random(11)
    stats: list[IntervalStats] = []
    expected: dict[Key, list[int]] = {OK: [], REFUSED: []}
    for second in range(6):
        for _ in range(3000):
            key_id = rng.choice((ok, refused))
            done_ns = second * SECOND_NS + rng.randrange(SECOND_NS + SECOND_NS // 2)
            latency_us = int(rng.lognormvariate(8, 1.5))
            recorder.record(key_id, done_ns, latency_us, latency_us // 2)
            expected[(OK, REFUSED)[key_id]].append(latency_us)
        stats += recorder.close_until((second + 1) * SECOND_NS + 1000)
    stats += recorder.close_all(7 * SECOND_NS)
    for key, values in expected.items():
        merged = Histogram()
        for interval in stats:
            if key in interval.latency:
                merged.merge(interval.latency[key])
        total = recorder.latency(key)
        assert sum(_interval_counts(stats, key)) == total.count == len(values)
        assert merged.encode() == total.encode()
        assert (total.min_us, total.max_us) == (min(values), max(values))
        assert recorder.service(key).max_us == max(values) // 2


def test_lag_is_bucketed_by_send_time() -> None:
    recorder, _, _ = _recorder()
    for sent_ns, lag_us in [(0, 5), (999, 7), (1000, 600), (2500, 3)]:
        recorder.record_lag(sent_ns, lag_us)
    stats = recorder.close_all(2600)
    assert [(s.lag.count, s.lag.max_us) for s in stats] == [(2, 7), (1, 600), (1, 3)]
    assert (recorder.lag().count, recorder.lag().max_us) == (4, 600)


def test_totals_are_copies_and_unknown_keys_are_empty() -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, 10, 10, 5)
    recorder.close_until(1000)
    recorder.latency(OK).record(99_999)
    assert recorder.latency(OK).count == 1
    assert recorder.latency(("other", 1, "ok")).count == 0
    assert recorder.service(("other", 1, "ok")).min_us is None
    assert recorder.counts() == {OK: 1, REFUSED: 0}


def test_overflow_values_are_counted_not_dropped() -> None:
    recorder = Recorder(1000, highest_us=1000)
    ok = recorder.key(*OK)
    recorder.record(ok, 10, 5000, 5000)
    stats = recorder.close_until(1000)
    assert (stats[0].latency[OK].overflow, recorder.latency(OK).overflow) == (1, 1)


@pytest.mark.parametrize(
    ("key_id", "latency_us", "message"),
    [(7, 10, "key id"), (-1, 10, "key id"), (0, -3, "negative")],
)
def test_bad_rows_fail_the_close_and_lose_nothing(
    key_id: int, latency_us: int, message: str
) -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, 10, 10, 5)
    recorder.record(key_id, 20, latency_us, 5)
    with pytest.raises(ValueError, match=message):
        recorder.close_until(1000)
    assert recorder.counts()[OK] == 0
    with pytest.raises(ValueError, match=message):
        recorder.close_until(1000)


def test_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        Recorder(0)
