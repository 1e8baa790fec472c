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


# -- folding ahead of the close: fold_pending ----------------------------------------------

_Op = tuple[object, ...]


def _hist_state(hist: Histogram) -> tuple[object, ...]:
    """Everything a histogram shows: counts, exact edges and sum, percentiles, encoding."""
    return (
        hist.count,
        hist.overflow,
        hist.min_us,
        hist.max_us,
        hist.sum_us,
        hist.highest_us,
        hist.digest(),
        list(hist.buckets()),
        hist.encode(),
    )


def _stats_state(stats: list[IntervalStats]) -> list[tuple[object, ...]]:
    return [
        (
            s.index,
            s.start_ns,
            s.end_ns,
            [(key, _hist_state(hist)) for key, hist in s.latency.items()],  # in order
            _hist_state(s.lag),
        )
        for s in stats
    ]


def _totals_state(recorder: Recorder | _OneByOne) -> tuple[object, ...]:
    keys = recorder.keys()
    return (
        keys,
        recorder.counts(),
        [_hist_state(recorder.latency(key)) for key in keys],
        [_hist_state(recorder.service(key)) for key in keys],
        _hist_state(recorder.lag()),
    )


class _OneByOne:
    """The rules of a close, applied one value at a time with ``Histogram.record`` and
    nothing folded ahead: what the recorder must give, whenever it folds."""

    def __init__(self, interval_ns: int, highest_us: int) -> None:
        self._interval_ns, self._highest_us = interval_ns, highest_us
        self._keys: list[Key] = []
        self._rows: list[tuple[int, int, int, int]] = []  # key_id, done_ns, latency, service
        self._lags: list[tuple[int, int]] = []  # sent_ns, lag_us
        self._next_index = 0
        self._latency: list[Histogram] = []
        self._service: list[Histogram] = []
        self._lag = Histogram(highest_us)

    def key(self, operation: str, priority: int, outcome: str) -> int:
        self._keys.append((operation, priority, outcome))
        self._latency.append(Histogram(self._highest_us))
        self._service.append(Histogram(self._highest_us))
        return len(self._keys) - 1

    def record(self, key_id: int, done_ns: int, latency_us: int, service_us: int) -> None:
        self._rows.append((key_id, done_ns, latency_us, service_us))

    def record_lag(self, sent_ns: int, lag_us: int) -> None:
        self._lags.append((sent_ns, lag_us))

    def close_until(self, now_ns: int) -> list[IntervalStats]:
        return self._close(now_ns // self._interval_ns, None)

    def close_all(self, end_ns: int) -> list[IntervalStats]:
        limit = -(-end_ns // self._interval_ns)
        if limit <= self._next_index and (self._rows or self._lags):
            limit = self._next_index + 1  # one more, zero-length, interval for them
        return self._close(limit, end_ns)

    def _index(self, time_ns: int, limit: int, final: bool) -> int:
        """Its own interval, else the earliest open one; the last one on the final close."""
        index = max(time_ns // self._interval_ns, self._next_index)
        return min(index, limit - 1) if final else index

    def _close(self, limit: int, final_end_ns: int | None) -> list[IntervalStats]:
        if limit <= self._next_index:
            return []
        final = final_end_ns is not None
        latency: dict[int, dict[int, Histogram]] = {}
        lags: dict[int, Histogram] = {}
        rows, self._rows = self._rows, []
        for row in rows:
            key_id, done_ns, latency_us, service_us = row
            index = self._index(done_ns, limit, final)
            if index >= limit:
                self._rows.append(row)
                continue
            by_key = latency.setdefault(index, {})
            by_key.setdefault(key_id, Histogram(self._highest_us)).record(latency_us)
            self._latency[key_id].record(latency_us)
            self._service[key_id].record(service_us)
        lag_rows, self._lags = self._lags, []
        for sent_ns, lag_us in lag_rows:
            index = self._index(sent_ns, limit, final)
            if index >= limit:
                self._lags.append((sent_ns, lag_us))
                continue
            lags.setdefault(index, Histogram(self._highest_us)).record(lag_us)
            self._lag.record(lag_us)
        stats = []
        for index in range(self._next_index, limit):
            start_ns, end_ns = index * self._interval_ns, (index + 1) * self._interval_ns
            if final_end_ns is not None and index == limit - 1:
                end_ns = max(start_ns, final_end_ns)
            by_key = latency.get(index, {})
            hists = {self._keys[key_id]: by_key[key_id] for key_id in sorted(by_key)}
            lag = lags.get(index, Histogram(self._highest_us))
            stats.append(IntervalStats(index, start_ns, end_ns, hists, lag))
        self._next_index = limit
        return stats

    def latency(self, key: Key) -> Histogram:
        return self._latency[self._keys.index(key)].copy()

    def service(self, key: Key) -> Histogram:
        return self._service[self._keys.index(key)].copy()

    def lag(self) -> Histogram:
        return self._lag.copy()

    def counts(self) -> dict[Key, int]:
        return {key: hist.count for key, hist in zip(self._keys, self._latency, strict=True)}

    def keys(self) -> list[Key]:
        return list(self._keys)


_KEYS: list[Key] = [OK, REFUSED, ("approval", 3, "timeout"), ("escalate", 1, "ok")]


def _script(rng: random.Random) -> list[_Op]:
    """Random records, lag rows, new keys, folds and closes, then a final close_all.

    Values reach across interval boundaries both ways (late ones included, negative times
    too), some above ``highest_us`` (overflow), and the final close may come before values
    recorded after it, or after every interval is already closed.
    """
    fold_chance = rng.choice((0.05, 0.3, 1.0))
    now_ns, n_keys = 0, 1
    ops: list[_Op] = [("key", 0)]
    for _ in range(rng.randrange(10, 120)):
        roll = rng.random()
        if roll < fold_chance / 3:
            ops.append(("fold",))
        elif roll < 0.4:
            done_ns = now_ns + rng.randrange(-2500, 3500)
            latency_us = rng.choice((0, rng.randrange(1, 300), rng.randrange(300, 9000)))
            ops.append(("record", rng.randrange(n_keys), done_ns, latency_us, latency_us // 2))
        elif roll < 0.6:
            ops.append(("lag", now_ns + rng.randrange(-1500, 2500), rng.randrange(0, 7000)))
        elif roll < 0.63 and n_keys < len(_KEYS):
            ops.append(("key", n_keys))
            n_keys += 1
        elif roll < 0.75:
            now_ns += rng.randrange(0, 2500)
            ops.append(("close_until", now_ns - rng.choice((0, 0, 0, 1800))))
        else:
            now_ns += rng.randrange(0, 300)
    end_ns = max(0, now_ns + rng.choice((-2000, -700, 0, 1, 999, 1000, 4200)))
    ops += [("fold",)] * rng.randrange(2) + [("close_all", end_ns), ("close_all", end_ns + 1)]
    return ops


def _run(recorder: Recorder | _OneByOne, ops: list[_Op], fold: bool) -> list[object]:
    """Apply ``ops`` (``fold`` ones only if asked); what was seen along the way."""
    seen: list[object] = []
    for op in ops:
        match op:
            case ("key", int(i)):
                recorder.key(*_KEYS[i])
            case ("record", int(key_id), int(done_ns), int(latency_us), int(service_us)):
                recorder.record(key_id, done_ns, latency_us, service_us)
            case ("lag", int(sent_ns), int(lag_us)):
                recorder.record_lag(sent_ns, lag_us)
            case ("fold",):
                if fold:
                    assert isinstance(recorder, Recorder)
                    recorder.fold_pending()
                    assert recorder.pending_rows == 0
            case ("close_until", int(now_ns)):
                seen.append(_stats_state(recorder.close_until(now_ns)))
            case ("close_all", int(end_ns)):
                seen.append(_stats_state(recorder.close_all(end_ns)))
            case _:
                raise AssertionError(op)
        seen.append(recorder.counts())  # folded early or not, open intervals stay out
        if op[0] in ("fold", "close_until", "close_all"):
            seen.append(_totals_state(recorder))
    return seen


@pytest.mark.parametrize("seed", range(60))
def test_any_fold_schedule_gives_exactly_the_same_results(seed: int) -> None:
    ops = _script(random.Random(seed))
    expected = _run(_OneByOne(1000, highest_us=5000), ops, fold=False)
    assert _run(Recorder(1000, highest_us=5000), ops, fold=False) == expected
    assert _run(Recorder(1000, highest_us=5000), ops, fold=True) == expected


def test_fold_pending_keeps_values_out_of_the_totals_until_their_interval_closes() -> None:
    recorder, ok, refused = _recorder()
    recorder.record(ok, 100, 10, 5)
    recorder.record(refused, 1500, 20, 5)
    recorder.record_lag(1200, 7)
    assert recorder.pending_rows == 3
    recorder.fold_pending()
    assert recorder.pending_rows == 0
    assert recorder.counts() == {OK: 0, REFUSED: 0}
    assert (recorder.latency(OK).count, recorder.service(OK).count, recorder.lag().count) == (
        0,
        0,
        0,
    )
    first = recorder.close_until(1000)
    assert (first[0].counts, first[0].lag.count) == ({OK: 1}, 0)
    assert recorder.counts() == {OK: 1, REFUSED: 0}
    assert (recorder.service(OK).count, recorder.lag().count) == (1, 0)
    second = recorder.close_until(2000)
    assert (second[0].counts, second[0].lag.max_us) == ({REFUSED: 1}, 7)
    assert recorder.counts() == {OK: 1, REFUSED: 1}
    assert recorder.lag().count == 1


def test_fold_pending_with_nothing_buffered_does_nothing() -> None:
    recorder, _, _ = _recorder()
    recorder.fold_pending()
    assert recorder.pending_rows == 0
    assert recorder.close_all(0) == []


def test_prefolded_late_values_go_to_the_earliest_open_interval() -> None:
    recorder, ok, _ = _recorder()
    recorder.close_until(2000)
    recorder.record(ok, 100, 30, 5)  # its interval (0) is closed already
    recorder.record(ok, -5, 35, 5)
    recorder.record_lag(999, 4)
    recorder.fold_pending()
    recorder.record(ok, 2100, 40, 5)
    stats = recorder.close_until(4000)
    assert _interval_counts(stats, OK) == [3, 0]
    assert (stats[0].latency[OK].max_us, stats[0].lag.count, stats[1].lag.count) == (40, 1, 0)


@pytest.mark.parametrize(
    ("key_id", "latency_us", "lag_us", "message"),
    [(7, 10, 1, "key id"), (-1, 10, 1, "key id"), (0, -3, 1, "negative"), (0, 10, -1, "negative")],
)
def test_bad_rows_fail_fold_pending_and_lose_nothing(
    key_id: int, latency_us: int, lag_us: int, message: str
) -> None:
    recorder, ok, _ = _recorder()
    recorder.record(ok, 10, 10, 5)
    recorder.fold_pending()  # good rows folded earlier stay folded
    recorder.record(ok, 15, 11, 5)
    recorder.record_lag(15, 1)
    recorder.record(key_id, 20, latency_us, 5)
    recorder.record_lag(20, lag_us)
    with pytest.raises(ValueError, match=message):
        recorder.fold_pending()
    assert recorder.pending_rows == 4
    assert recorder.counts()[OK] == 0
    with pytest.raises(ValueError, match=message):
        recorder.fold_pending()
    with pytest.raises(ValueError, match=message):
        recorder.close_until(1000)
    with pytest.raises(ValueError, match=message):
        recorder.close_all(1000)
    assert recorder.pending_rows == 4
    assert recorder.counts()[OK] == 0


@pytest.mark.parametrize(
    ("end_ns", "spans"),
    [
        (2600, [(0, 1000), (1000, 2000), (2000, 2600)]),
        (3000, [(0, 1000), (1000, 2000), (2000, 3000)]),
        (1, [(0, 1)]),
    ],
)
def test_close_all_puts_prefolded_values_after_the_end_into_the_last_interval(
    end_ns: int, spans: list[tuple[int, int]]
) -> None:
    recorder, ok, refused = _recorder()
    recorder.record(ok, 0, 10, 5)
    recorder.record(refused, end_ns + 5000, 20, 5)  # folded into an interval past the end
    recorder.record_lag(end_ns + 9000, 8)
    recorder.fold_pending()
    recorder.record(ok, end_ns + 2000, 30, 5)  # past the end too, folded into yet another
    recorder.fold_pending()
    recorder.record(ok, end_ns, 40, 5)  # left for the close
    stats = recorder.close_all(end_ns)
    assert [(s.start_ns, s.end_ns) for s in stats] == spans
    last = stats[-1]
    assert list(last.latency) == [OK, REFUSED]  # in key order, as a close alone gives
    assert last.counts == {OK: 3 if len(stats) == 1 else 2, REFUSED: 1}
    assert (last.latency[OK].max_us, last.lag.count, last.lag.max_us) == (40, 1, 8)
    assert recorder.counts() == {OK: 3, REFUSED: 1}
    later = recorder.close_all(end_ns + 5000)  # nothing left over for later intervals
    assert [(s.counts, s.lag.count) for s in later] == [({}, 0)] * len(later)


def test_close_all_after_everything_closed_keeps_prefolded_values() -> None:
    recorder, ok, refused = _recorder()
    recorder.close_until(3000)
    recorder.record(ok, 2500, 10, 5)  # late: folded into interval 3
    recorder.record(refused, 7500, 20, 5)  # folded into interval 7
    recorder.record_lag(5100, 3)
    recorder.fold_pending()
    assert recorder.pending_rows == 0
    stats = recorder.close_all(3000)
    assert [(s.index, s.start_ns, s.end_ns, s.counts, s.lag.count) for s in stats] == [
        (3, 3000, 3000, {OK: 1, REFUSED: 1}, 1)
    ]
    assert recorder.counts() == {OK: 1, REFUSED: 1}
    assert recorder.close_all(3000) == []


def test_close_all_after_everything_closed_keeps_prefolded_lag_alone() -> None:
    recorder, _, _ = _recorder()
    recorder.close_until(2000)
    recorder.record_lag(9000, 3)
    recorder.fold_pending()
    stats = recorder.close_all(1500)
    assert [(s.index, s.start_ns, s.end_ns, s.lag.count) for s in stats] == [(2, 2000, 2000, 1)]
    assert recorder.lag().count == 1


def test_record_row_is_record_with_one_tuple() -> None:
    by_call, by_row = Recorder(SECOND_NS), Recorder(SECOND_NS)
    for rec in (by_call, by_row):
        rec.key("approval", 1, "ok")
        rec.key("approval", 2, "refused")
    rows = [(i % 2, i * 7_000_000, 100 + i, 50 + i) for i in range(300)]
    for key_id, done_ns, latency_us, service_us in rows:
        by_call.record(key_id, done_ns, latency_us, service_us)
        by_call.record_lag(done_ns, latency_us // 10)
        intended_ns = max(0, done_ns - latency_us * 1000)  # record's default
        by_row.record_row((key_id, done_ns, latency_us, service_us, intended_ns))
        by_row.record_lag_row((done_ns, latency_us // 10))
    by_row.fold_pending()  # the buffers are cleared in place: the bound appends keep working
    by_row.record_row((1, 2 * SECOND_NS + 1, 999, 998, 2 * SECOND_NS + 1 - 999_000))
    by_call.record(1, 2 * SECOND_NS + 1, 999, 998)
    a, b = by_call.close_all(3 * SECOND_NS), by_row.close_all(3 * SECOND_NS)
    assert [(s.index, s.counts, s.lag.encode()) for s in a] == [
        (s.index, s.counts, s.lag.encode()) for s in b
    ]
    ca, cb = by_call.seal_all_cohorts(), by_row.seal_all_cohorts()
    assert [(c.index, c.counts, {k: h.encode() for k, h in c.ok.items()}) for c in ca] == [
        (c.index, c.counts, {k: h.encode() for k, h in c.ok.items()}) for c in cb
    ]
    assert sum(c.completed for c in ca) == 301
    for key in by_call.keys():
        assert by_call.latency(key).encode() == by_row.latency(key).encode()
        assert by_call.service(key).encode() == by_row.service(key).encode()


def test_a_row_of_the_wrong_width_fails_the_fold_and_loses_nothing() -> None:
    rec = Recorder(SECOND_NS)
    rec.key("approval", 1, "ok")
    rec.record_row((0, 10, 5, 4, 0))
    rec.record_row((0, 20, 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wrong width"):
        rec.fold_pending()
    assert rec.pending_rows == 1  # 8 values buffered, nothing folded
    assert rec.counts() == {("approval", 1, "ok"): 0}
