"""Cohorts: the requests whose intended start fell in the same interval.

Priority adherence compares priorities that competed for the service at the same time.
The latency log's intervals hold requests by when they *completed*, so the first interval
after a storm holds priority-5 requests queued (or refused) in the storm beside lower
priorities sent after it: two different moments compared as one. A cohort holds the
requests *intended* in one interval, whenever they completed.

``Cohorts`` is fed completions (per cohort and key, their corrected latencies) in batches and
seals a cohort once every request intended in its interval has completed (the caller says
how many were intended), or when the run ends. Guarantees:
- a sealed cohort holds exactly the completions of the requests intended in its interval:
  a count per key and, per admitted (operation, priority), the histogram of their
  latencies, whatever batches they arrived in;
- a cohort is sealed once; a completion for a sealed cohort is refused (ValueError) and a
  refused batch changes nothing;
- until it is sealed, a cohort keeps one integer per admitted request; once sealed,
  nothing of it stays here (the caller keeps what it needs);
- sealed cohorts of several workers merge exactly (``merge_cohorts``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zg_load.hdr import DEFAULT_HIGHEST_US, Histogram

Key = tuple[str, int, str]  # (operation, priority, outcome)
_Rows = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class CohortStats:
    """The completed requests intended in ``[start_ns, end_ns)`` of the run."""

    index: int
    start_ns: int
    end_ns: int
    counts: dict[Key, int]  # completions per key; only keys with counts
    ok: dict[tuple[str, int], Histogram]  # corrected latency of admitted requests

    @property
    def completed(self) -> int:
        return sum(self.counts.values())


@dataclass
class _Open:
    counts: dict[int, int] = field(default_factory=dict)  # by key id
    ok: dict[int, list[_Rows]] = field(default_factory=dict)  # latencies by ok key id


class Cohorts:
    """Groups completions by the interval of their intended start; seals complete cohorts.

    The caller groups a batch by (cohort, key id), checks the batch's cohorts first
    (``check``), then adds each group (``add``).
    """

    def __init__(
        self,
        interval_ns: int,
        key_of: Callable[[int], Key],
        highest_us: int = DEFAULT_HIGHEST_US,
        significant_figures: int = 3,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be positive, got {interval_ns}")
        self._interval_ns = interval_ns
        self._key_of = key_of
        self._shape = (highest_us, significant_figures)
        self._open: dict[int, _Open] = {}
        self._sealed: set[int] = set()

    @property
    def open_values(self) -> int:
        """Latencies held for cohorts not sealed yet (one per admitted request)."""
        return sum(len(a) for c in self._open.values() for parts in c.ok.values() for a in parts)

    def check(self, indices: _Rows) -> None:
        """Refuse a batch with a completion for a cohort already sealed (before any change)."""
        if self._sealed and not self._sealed.isdisjoint(np.unique(indices).tolist()):
            raise ValueError("a completion was recorded for a cohort already sealed")

    def add(self, index: int, key_id: int, latency_us: _Rows) -> None:
        """Add the completions of one key in cohort ``index`` (their corrected latencies)."""
        cohort = self._open.get(index)
        if cohort is None:
            cohort = self._open[index] = _Open()
        cohort.counts[key_id] = cohort.counts.get(key_id, 0) + len(latency_us)
        if self._key_of(key_id)[2] == "ok":
            cohort.ok.setdefault(key_id, []).append(latency_us)

    def seal(self, expected: Callable[[int], int], before: int) -> list[CohortStats]:
        """Seal, in order, each cohort below index ``before`` whose completions reached
        ``expected(index)`` (the requests intended in its interval, final by then)."""
        ready = sorted(
            i for i, c in self._open.items() if i < before and sum(c.counts.values()) >= expected(i)
        )
        return [self._seal_one(i) for i in ready]

    def seal_all(self) -> list[CohortStats]:
        """Seal every open cohort, complete or not (the run is over)."""
        return [self._seal_one(i) for i in sorted(self._open)]

    def _seal_one(self, index: int) -> CohortStats:
        cohort = self._open.pop(index)
        self._sealed.add(index)
        counts = {self._key_of(k): n for k, n in sorted(cohort.counts.items())}
        ok: dict[tuple[str, int], Histogram] = {}
        for key_id, parts in sorted(cohort.ok.items()):
            op, priority, _ = self._key_of(key_id)
            hist = ok[(op, priority)] = Histogram(*self._shape)
            hist.record_many(np.concatenate(parts))
        start_ns = index * self._interval_ns
        return CohortStats(index, start_ns, start_ns + self._interval_ns, counts, ok)


def merge_cohorts(parts: Sequence[CohortStats]) -> CohortStats:
    """Cohort ``i`` of several workers as one."""
    counts: dict[Key, int] = {}
    ok: dict[tuple[str, int], Histogram] = {}
    for part in parts:
        for key, n in part.counts.items():
            counts[key] = counts.get(key, 0) + n
        for op_priority, hist in part.ok.items():
            ok.setdefault(op_priority, Histogram()).merge(hist)
    first = parts[0]
    return CohortStats(
        first.index,
        first.start_ns,
        first.end_ns,
        dict(sorted(counts.items())),
        dict(sorted(ok.items())),
    )
