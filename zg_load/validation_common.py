"""Small pure helpers shared by the validation sections.

Percentiles follow the nearest-rank rule (an empty list or histogram has none: None, never 0);
ratios of nothing are None; the target's notifications are read into run-relative
offsets on the wall clock (``created_at`` minus the run's ``start_epoch_s``), keeping
only those written during the run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

from zg_load.hdr import Histogram

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
USD_EPSILON = 1e-6  # one micro-USD: the ledger's resolution


class _Adds(Protocol):
    def add(self, item: Any, /) -> None: ...


T = TypeVar("T", bound=_Adds)


def nearest_rank(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class Latencies:
    """Microsecond values for an HDR histogram, folded in batches (``record_many`` gives
    exactly the histogram that recording them one by one gives, at a fraction of the
    cost per value); at most ``BATCH`` values wait, so memory does not grow with the run."""

    BATCH = 4096
    __slots__ = ("_histogram", "_pending")

    def __init__(self) -> None:
        self._histogram = Histogram()
        self._pending: list[int] = []

    def add(self, value_us: int) -> None:
        pending = self._pending
        pending.append(value_us)
        if len(pending) >= self.BATCH:
            self._fold()

    def _fold(self) -> None:
        self._histogram.record_many(self._pending)
        self._pending.clear()

    def histogram(self) -> Histogram:
        """Every value added so far."""
        if self._pending:
            self._fold()
        return self._histogram


def digest_ms(latencies: Latencies) -> dict[str, float | None]:
    """p50, p99 and max of microsecond values, in milliseconds (None when empty);
    percentiles within the histogram's precision, the max exact."""
    digest = latencies.histogram().digest().to_json()
    return {key: cast(float | None, digest[key]) for key in ("p50_ms", "p99_ms", "max_ms")}


def fold(tally: T, items: Iterable[Any]) -> T:
    """``tally`` with every item added in turn (``tally.add(item)``)."""
    for item in items:
        tally.add(item)
    return tally


def latency_us(intended_ns: int, done_ns: int) -> int:
    """Whole microseconds from the intended start to the answer, as the engine records them."""
    return max(0, done_ns - intended_ns) // 1000


def ratio(part: float, whole: float) -> float | None:
    """part / whole rounded to 6 places; None when whole is 0."""
    return round(part / whole, 6) if whole else None


def priority_pair_share(
    losers: Iterable[int] | Mapping[int, int], winners: Iterable[int] | Mapping[int, int]
) -> float | None:
    """Share of (loser, winner) pairs with loser priority <= winner priority.

    ``losers`` and ``winners`` are priorities, one per request, or counts per priority.
    1.0 means every refusal fell on a priority no higher than every admitted one; None
    when there is no pair. Counted per priority, so it costs O(priorities²), not O(n²).
    """
    lose, win = Counter(losers), Counter(winners)
    pairs = sum(lose.values()) * sum(win.values())
    if not pairs:
        return None
    held = sum(n * m for lp, n in lose.items() for wp, m in win.items() if lp <= wp)
    return round(held / pairs, 6)


@dataclass(frozen=True, slots=True)
class Note:
    """A notification the target wrote during the run."""

    id: int
    kind: str
    at_s: float  # created_at minus the run's start, seconds on the wall clock
    details: Mapping[str, Any]


def run_notes(target_state: Mapping[str, Any] | None, start_epoch_s: float) -> list[Note] | None:
    """The target's notifications written at or after the run's start, oldest first.

    None when the target did not serve its notifications (not the same as none written).
    """
    raw = (target_state or {}).get("notifications")
    if not isinstance(raw, list):
        return None
    notes = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
            continue
        created = _epoch_s(item.get("created_at"))
        if created is None or created < start_epoch_s:
            continue
        raw_details, raw_id = item.get("details"), item.get("id")
        details: Mapping[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        number = raw_id if isinstance(raw_id, int) else 0
        notes.append(Note(number, item["kind"], round(created - start_epoch_s, 6), details))
    return sorted(notes, key=lambda n: (n.at_s, n.id))


def first_note(notes: Sequence[Note] | None, kind: str) -> Note | None:
    return next((n for n in notes or () if n.kind == kind), None)


def _epoch_s(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:  # the API's timestamps are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
