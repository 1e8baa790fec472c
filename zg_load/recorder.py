"""Per-key latency recording, folded into fixed intervals of run time.

Owns the raw buffers that the hot path appends to and the histograms they are folded into:
corrected latency (from the intended start) per (operation, priority, outcome) and per
interval, service time (from the actual send) per key as totals, and the generator's own
schedule lag per interval. Guarantees:
- recording only appends; folding happens in batches when intervals are closed;
- every interval is returned exactly once, in order, idle ones included (empty);
- no value is lost: one whose interval is already closed goes to the earliest open one,
  so the interval counts of a key always sum to its total, and merging a key's interval
  histograms gives exactly its total.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

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
        self._raw: list[int] = []  # flat: key_id, done_ns, latency_us, service_us
        self._raw_lag: list[int] = []  # flat: sent_ns, lag_us
        self._next_index = 0  # the earliest interval not yet closed
        self._latency: list[Histogram] = []
        self._service: list[Histogram] = []
        self._lag = Histogram(*self._shape)

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

    def record(self, key_id: int, done_ns: int, latency_us: int, service_us: int) -> None:
        """Buffer one completion (``done_ns`` from run start). Hot path: appends only."""
        self._raw.extend((key_id, done_ns, latency_us, service_us))

    def record_lag(self, sent_ns: int, lag_us: int) -> None:
        """Buffer one send's schedule lag (``sent_ns`` from run start). Hot path: appends only."""
        self._raw_lag.extend((sent_ns, lag_us))

    def close_until(self, now_ns: int) -> list[IntervalStats]:
        """Close every interval that ended at or before ``now_ns``, idle ones included."""
        return self._close(now_ns // self._interval_ns, None)

    def close_all(self, end_ns: int) -> list[IntervalStats]:
        """Close everything; a final partial interval ends at ``end_ns``.

        Values recorded at or after ``end_ns`` go to the last interval. Values pending when
        every interval up to ``end_ns`` is already closed get one more, zero-length, interval.
        """
        limit = -(-end_ns // self._interval_ns)
        if limit <= self._next_index and (self._raw or self._raw_lag):
            limit = self._next_index + 1
        return self._close(limit, end_ns)

    def _close(self, limit: int, final_end_ns: int | None) -> list[IntervalStats]:
        first = self._next_index
        if limit <= first:
            return []
        final = final_end_ns is not None
        # Split (and check) both buffers before changing anything, so a failed close loses nothing.
        done, done_index, done_keep = self._split(self._raw, 4, first, limit, final)
        sent, sent_index, sent_keep = self._split(self._raw_lag, 2, first, limit, final)
        self._raw, self._raw_lag = done_keep, sent_keep
        latency = self._fold_latency(done, done_index, limit - first)
        lags = self._fold_lag(sent, sent_index, limit - first)
        self._next_index = limit
        stats = []
        for offset, index in enumerate(range(first, limit)):
            start_ns, end_ns = index * self._interval_ns, (index + 1) * self._interval_ns
            if final_end_ns is not None and index == limit - 1:
                end_ns = max(start_ns, final_end_ns)
            lag = lags.get(offset) or Histogram(*self._shape)
            stats.append(IntervalStats(index, start_ns, end_ns, latency.get(offset, {}), lag))
        return stats

    def _split(
        self, raw: list[int], width: int, first: int, limit: int, final: bool
    ) -> tuple[_Rows, _Rows, list[int]]:
        """(all rows, each row's interval offset from ``first``, the rows that stay buffered).

        Rows are not copied into a folded subset: grouping skips offsets past the limit.
        """
        rows = np.fromiter(raw, dtype=np.int64, count=len(raw)).reshape(-1, width)
        _check(rows, width, len(self._keys))
        time_col = 1 if width == 4 else 0
        offsets = np.maximum(rows[:, time_col] // self._interval_ns - first, 0)
        if final:
            offsets = np.minimum(offsets, limit - first - 1)
        stay = offsets >= limit - first
        keep = rows[stay].ravel().tolist() if stay.any() else []
        return rows, offsets, keep

    def _fold_latency(self, rows: _Rows, offsets: _Rows, n: int) -> dict[int, dict[Key, Histogram]]:
        out: dict[int, dict[Key, Histogram]] = {}
        for (offset, key_id), group in _groups(offsets, rows[:, 0], len(self._keys), n):
            hist = Histogram(*self._shape)
            hist.record_many(rows[group, 2])
            out.setdefault(offset, {})[self._keys[key_id]] = hist
            self._latency[key_id].record_many(rows[group, 2])
            self._service[key_id].record_many(rows[group, 3])
        return out

    def _fold_lag(self, rows: _Rows, offsets: _Rows, n: int) -> dict[int, Histogram]:
        out: dict[int, Histogram] = {}
        for (offset, _), group in _groups(offsets, np.zeros_like(offsets), 1, n):
            out[offset] = hist = Histogram(*self._shape)
            hist.record_many(rows[group, 1])
            self._lag.record_many(rows[group, 1])
        return out

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


def _check(rows: _Rows, width: int, n_keys: int) -> None:
    """Refuse bad rows before anything is folded, so a failed close changes nothing."""
    if (rows[:, 1 if width == 2 else 2 :] < 0).any():
        raise ValueError("negative latency, service time or lag recorded")
    if width == 4 and ((rows[:, 0] < 0) | (rows[:, 0] >= n_keys)).any():
        raise ValueError("record() was given a key id that key() never returned")


def _groups(
    offsets: _Rows, key_ids: _Rows, n_keys: int, n_offsets: int
) -> Iterator[tuple[tuple[int, int], _Rows]]:
    """Row indices grouped by (interval offset, key id), ascending; offsets >= n_offsets skipped."""
    if offsets.size == 0:
        return
    code = offsets * n_keys + key_ids
    order = np.argsort(code, kind="stable")
    bounds = np.flatnonzero(np.diff(code[order])) + 1
    for group in np.split(order, bounds):
        offset, key_id = divmod(int(code[group[0]]), n_keys)
        if offset >= n_offsets:
            return
        yield (offset, key_id), group
