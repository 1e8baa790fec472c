"""Per-key latency recording, folded into fixed intervals of run time.

Owns the raw buffers that the hot path appends to and the histograms they are folded into:
corrected latency (from the intended start) per (operation, priority, outcome) and per
interval, service time (from the actual send) per key as totals, and the generator's own
schedule lag per interval. Guarantees:
- recording only appends; folding happens in batches, when intervals are closed or earlier,
  in slices, when ``fold_pending`` is called (so that no single fold stalls for long);
- when and how often ``fold_pending`` is called changes no result: the intervals and the
  totals are exactly those of folding everything at the close;
- totals cover closed intervals only, whatever was folded early into open ones;
- every interval is returned exactly once, in order, idle ones included (empty);
- no value is lost: one whose interval is already closed goes to the earliest open one,
  so the interval counts of a key always sum to its total, and merging a key's interval
  histograms gives exactly its total;
- a fold or close that meets a bad row (a negative value, an unknown key id) raises
  ValueError and changes nothing;
- every completion also goes to its cohort (``cohorts``: grouped by the interval of its
  intended start), which the caller seals (``seal_cohorts``) when its requests are done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from zg_load.cohort import Cohorts, CohortStats
from zg_load.hdr import DEFAULT_HIGHEST_US, Histogram
from zg_load.outcome import Outcome

Key = tuple[str, int, str]  # (operation, priority, outcome)
_OUTCOMES = frozenset(outcome.value for outcome in Outcome)
_Rows = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class IntervalStats:
    """What was recorded in one interval; times are offsets from the run start."""

    index: int
    start_ns: int
    end_ns: int
    latency: dict[Key, Histogram]  # corrected latency of completions; only keys with counts
    lag: Histogram  # schedule lag of the sends in this interval

    @property
    def counts(self) -> dict[Key, int]:
        return {key: hist.count for key, hist in self.latency.items()}


class _Folded:
    """What was folded early into one interval that is still open, by key id."""

    __slots__ = ("latency", "service", "lag")

    def __init__(self) -> None:
        self.latency: dict[int, Histogram] = {}
        self.service: dict[int, Histogram] = {}
        self.lag: Histogram | None = None

    def absorb(self, other: _Folded) -> None:
        for key_id, hist in other.latency.items():
            mine = self.latency.get(key_id)
            if mine is None:
                self.latency[key_id], self.service[key_id] = hist, other.service[key_id]
            else:
                mine.merge(hist)
                self.service[key_id].merge(other.service[key_id])
        if self.lag is None:
            self.lag = other.lag
        elif other.lag is not None:
            self.lag.merge(other.lag)


class Recorder:
    """Buffers raw values on the hot path and folds them into per-interval histograms."""

    def __init__(
        self,
        interval_ns: int,
        highest_us: int = DEFAULT_HIGHEST_US,
        significant_figures: int = 3,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be positive, got {interval_ns}")
        self._interval_ns = interval_ns
        self._shape = (highest_us, significant_figures)
        Histogram(*self._shape)  # reject a bad shape now, not at the first fold
        self._keys: list[Key] = []
        self._ids: dict[Key, int] = {}
        # Never replaced, only cleared: the hot path may hold their ``extend``.
        self._raw: list[int] = []  # flat: key_id, done_ns, latency_us, service_us, intended_ns
        self._raw_lag: list[int] = []  # flat: sent_ns, lag_us
        # ``record`` and ``record_lag`` taking one tuple, as the buffers' own C methods: no
        # Python frame per call. Values are checked when folded, as with ``record``; a tuple
        # of the wrong length is caught only when it leaves the buffer's length uneven
        # (the tuple's length is the caller's to get right).
        self.record_row: Callable[[tuple[int, int, int, int, int]], None] = self._raw.extend
        self.record_lag_row: Callable[[tuple[int, int]], None] = self._raw_lag.extend
        self._next_index = 0  # the earliest interval not yet closed
        self._folded: dict[int, _Folded] = {}  # by interval index, open intervals only
        self._latency: list[Histogram] = []
        self._service: list[Histogram] = []
        self._lag = Histogram(*self._shape)
        self._cohorts = Cohorts(interval_ns, self._keys.__getitem__, *self._shape)

    def key(self, operation: str, priority: int, outcome: str) -> int:
        """The small stable id of a key, to pass to ``record`` on the hot path."""
        key = (operation, priority, outcome)
        key_id = self._ids.get(key)
        if key_id is not None:
            return key_id
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {sorted(_OUTCOMES)}")
        self._ids[key] = key_id = len(self._keys)
        self._keys.append(key)
        self._latency.append(Histogram(*self._shape))
        self._service.append(Histogram(*self._shape))
        return key_id

    def record(
        self,
        key_id: int,
        done_ns: int,
        latency_us: int,
        service_us: int,
        intended_ns: int | None = None,
    ) -> None:
        """Buffer one completion (``done_ns`` and ``intended_ns`` from run start; the intended
        start defaults to ``done_ns - latency``, at least 0). Hot path: appends only."""
        if intended_ns is None:
            intended_ns = max(0, done_ns - latency_us * 1000)
        self._raw.extend((key_id, done_ns, latency_us, service_us, intended_ns))

    def record_lag(self, sent_ns: int, lag_us: int) -> None:
        """Buffer one send's schedule lag (``sent_ns`` from run start). Hot path: appends only."""
        self._raw_lag.extend((sent_ns, lag_us))

    @property
    def pending_rows(self) -> int:
        """Rows buffered and not folded yet (completions plus lag rows)."""
        return len(self._raw) // 5 + len(self._raw_lag) // 2

    def fold_pending(self) -> None:
        """Fold every buffered row now, into the histograms of its interval, which stays open.

        Call it between interval boundaries (e.g. whenever ``pending_rows`` passes a few
        thousand) so that a close only folds a small remainder: one long stall becomes several
        short ones. Results do not depend on it; totals still cover closed intervals only.
        """
        if not self._raw and not self._raw_lag:
            return
        first = self._next_index
        done, sent = _rows(self._raw, 5), _rows(self._raw_lag, 2)
        # Check both buffers before changing anything, so a failed fold loses nothing.
        _check(done, 5, len(self._keys))
        _check(sent, 2, len(self._keys))
        cohorts = done[:, 4] // self._interval_ns
        self._cohorts.check(cohorts)
        self._raw.clear()
        self._raw_lag.clear()
        if done.size:
            lowest = int(cohorts.min())
            for (offset, key_id), group in _groups(cohorts - lowest, done[:, 0], len(self._keys)):
                self._cohorts.add(lowest + offset, key_id, done[group, 2])
        done_offsets = self._offsets(done[:, 1], first)
        for (offset, key_id), group in _groups(done_offsets, done[:, 0], len(self._keys)):
            folded = self._folded_at(first + offset)
            latency = folded.latency.get(key_id)
            if latency is None:
                latency = folded.latency[key_id] = Histogram(*self._shape)
                folded.service[key_id] = Histogram(*self._shape)
            latency.record_many(done[group, 2])
            folded.service[key_id].record_many(done[group, 3])
        sent_offsets = self._offsets(sent[:, 0], first)
        for (offset, _), group in _groups(sent_offsets, np.zeros_like(sent_offsets), 1):
            folded = self._folded_at(first + offset)
            if folded.lag is None:
                folded.lag = Histogram(*self._shape)
            folded.lag.record_many(sent[group, 1])

    def close_until(self, now_ns: int) -> list[IntervalStats]:
        """Close every interval that ended at or before ``now_ns``, idle ones included."""
        return self._close(now_ns // self._interval_ns, None)

    def close_all(self, end_ns: int) -> list[IntervalStats]:
        """Close everything; a final partial interval ends at ``end_ns``.

        Values recorded at or after ``end_ns`` go to the last interval. Values pending when
        every interval up to ``end_ns`` is already closed get one more, zero-length, interval.
        """
        limit = -(-end_ns // self._interval_ns)
        if limit <= self._next_index and (self._raw or self._raw_lag or self._folded):
            limit = self._next_index + 1
        return self._close(limit, end_ns)

    def _close(self, limit: int, final_end_ns: int | None) -> list[IntervalStats]:
        first = self._next_index
        if limit <= first:
            return []
        self.fold_pending()  # raises before changing anything
        if final_end_ns is not None:
            self._fold_later_into(limit - 1)
        self._next_index = limit
        stats = []
        for index in range(first, limit):
            start_ns, end_ns = index * self._interval_ns, (index + 1) * self._interval_ns
            if final_end_ns is not None and index == limit - 1:
                end_ns = max(start_ns, final_end_ns)
            folded = self._folded.pop(index, None) or _Folded()
            latency: dict[Key, Histogram] = {}
            for key_id in sorted(folded.latency):
                latency[self._keys[key_id]] = hist = folded.latency[key_id]
                self._latency[key_id].merge(hist)
                self._service[key_id].merge(folded.service[key_id])
            lag = folded.lag if folded.lag is not None else Histogram(*self._shape)
            self._lag.merge(lag)
            stats.append(IntervalStats(index, start_ns, end_ns, latency, lag))
        return stats

    def _offsets(self, times_ns: _Rows, first: int) -> _Rows:
        """Each row's interval, as an offset from ``first``; closed intervals map to ``first``."""
        return np.maximum(times_ns // self._interval_ns - first, 0)

    def _folded_at(self, index: int) -> _Folded:
        folded = self._folded.get(index)
        if folded is None:
            folded = self._folded[index] = _Folded()
        return folded

    def _fold_later_into(self, last: int) -> None:
        """Move what was folded into intervals after ``last`` into ``last`` (the final close)."""
        for index in sorted(i for i in self._folded if i > last):
            later = self._folded.pop(index)
            self._folded_at(last).absorb(later)

    def seal_cohorts(self, expected: Callable[[int], int], before: int) -> list[CohortStats]:
        """Fold what is pending, then seal each cohort below index ``before`` whose
        completions reached ``expected(index)`` (see ``Cohorts.seal``)."""
        self.fold_pending()
        return self._cohorts.seal(expected, before)

    def seal_all_cohorts(self) -> list[CohortStats]:
        """Fold what is pending, then seal every cohort still open (the run is over)."""
        self.fold_pending()
        return self._cohorts.seal_all()

    @property
    def open_cohort_values(self) -> int:
        """Latencies held for cohorts not sealed yet."""
        return self._cohorts.open_values

    def latency(self, key: Key) -> Histogram:
        """Corrected latency of ``key`` over all closed intervals (a copy)."""
        key_id = self._ids.get(key)
        return Histogram(*self._shape) if key_id is None else self._latency[key_id].copy()

    def service(self, key: Key) -> Histogram:
        """Service time (from the actual send) of ``key`` over all closed intervals (a copy)."""
        key_id = self._ids.get(key)
        return Histogram(*self._shape) if key_id is None else self._service[key_id].copy()

    def lag(self) -> Histogram:
        """Schedule lag over all closed intervals (a copy)."""
        return self._lag.copy()

    def counts(self) -> dict[Key, int]:
        """Closed-interval totals of every key ever resolved (0 for keys with none yet)."""
        return {key: self._latency[key_id].count for key_id, key in enumerate(self._keys)}

    def keys(self) -> list[Key]:
        return list(self._keys)


def _rows(raw: list[int], width: int) -> _Rows:
    if len(raw) % width:
        raise ValueError(f"a row of the wrong width was recorded (rows have {width} values)")
    return np.fromiter(raw, dtype=np.int64, count=len(raw)).reshape(-1, width)


def _check(rows: _Rows, width: int, n_keys: int) -> None:
    """Refuse bad rows before anything is folded, so a failed fold changes nothing."""
    if (rows[:, 1 if width == 2 else 2 :] < 0).any():
        raise ValueError("negative latency, service time, lag or intended start recorded")
    if width == 5 and ((rows[:, 0] < 0) | (rows[:, 0] >= n_keys)).any():
        raise ValueError("record() was given a key id that key() never returned")


def _groups(offsets: _Rows, key_ids: _Rows, n_keys: int) -> Iterator[tuple[tuple[int, int], _Rows]]:
    """Row indices grouped by (interval offset, key id), ascending."""
    if offsets.size == 0:
        return
    code = offsets * n_keys + key_ids
    # Sorting small codes as int16 is several times faster (numpy radix-sorts them).
    order = np.argsort(code.astype(np.int16) if code.max() < 1 << 15 else code, kind="stable")
    bounds = np.flatnonzero(np.diff(code[order])) + 1
    for group in np.split(order, bounds):
        offset, key_id = divmod(int(code[group[0]]), n_keys)
        yield (offset, key_id), group
