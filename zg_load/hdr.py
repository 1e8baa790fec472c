"""HDR histograms of integer microseconds: the one wrapper around the hdrhistogram package.

Owns recording, merging, percentiles and the V2 compressed encoding. Guarantees:
- no value is ever dropped: values above ``highest_us`` are kept exactly, as overflow;
- merges never lose a count, whatever either side's range or precision (self widens);
- percentiles follow Java HdrHistogram's nearest-rank rule (2.1.10 and later), then are
  clamped to the exact [min, max], so min <= p50 <= ... <= p100 = max;
- an empty histogram reports None for every statistic, never 0;
- ``record_many`` gives exactly the histogram that ``record`` one by one gives.
Min, max and mean are exact for recorded values; a decoded histogram only knows its
buckets, so its min, max and mean come from them (as Java's do).
"""

from __future__ import annotations

import base64
import math
import operator
import weakref
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hdrh.codec import HdrCookieException, HdrLengthException
from hdrh.histogram import HdrHistogram

DEFAULT_HIGHEST_US = 3_600_000_000  # 1 hour
_COMPRESSED_COOKIE_BASE = 0x1C849304
_EXACT_FLOAT_LIMIT = 1 << 52  # frexp gives exact bit lengths below this
_DECODE_ERRORS = (ValueError, TypeError, zlib.error, HdrCookieException, HdrLengthException)


@dataclass(frozen=True)
class Digest:
    """The summary of a histogram that reports and checks use."""

    count: int
    overflow: int
    min_us: int | None
    max_us: int | None
    mean_us: float | None
    p50_us: int | None
    p90_us: int | None
    p99_us: int | None
    p999_us: int | None

    def to_json(self) -> dict[str, object]:
        """Latencies in milliseconds (3 decimals); None where the histogram is empty."""
        return {
            "count": self.count,
            "overflow": self.overflow,
            "min_ms": _ms(self.min_us),
            "max_ms": _ms(self.max_us),
            "mean_ms": _ms(self.mean_us),
            "p50_ms": _ms(self.p50_us),
            "p90_ms": _ms(self.p90_us),
            "p99_ms": _ms(self.p99_us),
            "p999_ms": _ms(self.p999_us),
        }


def _ms(value_us: float | None) -> float | None:
    return None if value_us is None else round(value_us / 1000.0, 3)


class Histogram:
    """Counts of integer microsecond values, three significant figures by default."""

    def __init__(self, highest_us: int = DEFAULT_HIGHEST_US, significant_figures: int = 3) -> None:
        if highest_us < 2:
            raise ValueError(f"highest_us must be at least 2, got {highest_us}")
        if not 1 <= significant_figures <= 5:
            raise ValueError(f"significant_figures must be 1..5, got {significant_figures}")
        self._use(HdrHistogram(1, highest_us, significant_figures), highest_us)
        self._overflow: dict[int, int] = {}
        self._min_us: int | None = None
        self._max_us: int | None = None
        self._sum_us = 0

    def _use(self, inner: Any, highest_us: int) -> None:
        # hdrh's histogram and its encoder refer to each other: a cycle only the cyclic
        # collector frees, so dropped histograms (their counts, ~180 KB each) piled up
        # between full collections: +18 MiB over 10 minutes of a run. A weak
        # back-reference lets each one go as soon as it is dropped.
        encoder = inner.encoder
        if not isinstance(encoder.histogram, weakref.ProxyType):
            encoder.histogram = weakref.proxy(inner)
        self._inner = inner
        self._highest_us = highest_us
        self._view: np.ndarray[Any, np.dtype[np.uint64]] = np.frombuffer(
            inner.counts, dtype=np.uint64
        )

    # -- recording -------------------------------------------------------------------------

    def record(self, value_us: int) -> None:
        """Record one value; above ``highest_us`` it is kept exactly as overflow."""
        value_us = operator.index(value_us)
        if value_us < 0:
            raise ValueError(f"negative value: {value_us}")
        self._record_count(value_us, 1)
        self._note(value_us, value_us, value_us)

    def record_many(self, values_us: Sequence[int] | np.ndarray[Any, Any]) -> None:
        """Record a batch; the result is identical to recording each value in turn."""
        if len(values_us) == 0:
            return
        values = np.asarray(values_us)
        if values.dtype.kind not in "iu":
            for value_us in values.tolist():  # huge ints (object dtype) or a TypeError
                self.record(value_us)
            return
        low_us, high_us = int(values.min()), int(values.max())
        if low_us < 0:
            raise ValueError(f"negative value: {low_us}")
        self._note(low_us, high_us, _exact_sum(values, high_us))
        if high_us > self._highest_us:
            above = values > self._highest_us
            for value_us in values[above].tolist():
                self._overflow[value_us] = self._overflow.get(value_us, 0) + 1
            values = values[~above]
        self._add_in_range(values.astype(np.int64, copy=False))

    def _record_count(self, value_us: int, count: int) -> None:
        if value_us > self._highest_us:
            self._overflow[value_us] = self._overflow.get(value_us, 0) + count
        elif not self._inner.record_value(value_us, count):
            raise RuntimeError(f"hdrhistogram refused in-range value {value_us}")

    def _note(self, low_us: int, high_us: int, sum_us: int) -> None:
        self._min_us = low_us if self._min_us is None else min(self._min_us, low_us)
        self._max_us = high_us if self._max_us is None else max(self._max_us, high_us)
        self._sum_us += sum_us

    def _add_in_range(self, values: np.ndarray[Any, np.dtype[np.int64]]) -> None:
        if values.size == 0:
            return
        high_us = int(values.max())
        if high_us >= _EXACT_FLOAT_LIMIT:
            for value_us in values.tolist():
                self._record_count(value_us, 1)
            return
        counts = np.bincount(_counts_indices(self._inner, values))
        self._view[: counts.size] += counts.astype(np.uint64)
        inner = self._inner
        inner.total_count += int(values.size)
        inner.min_value = min(inner.min_value, int(values.min()))
        inner.max_value = max(inner.max_value, high_us)

    # -- reading ---------------------------------------------------------------------------

    @property
    def highest_us(self) -> int:
        """Values above this are overflow (kept exactly, outside the buckets)."""
        return self._highest_us

    @property
    def significant_figures(self) -> int:
        return int(self._inner.significant_figures)

    @property
    def count(self) -> int:
        """All values, overflow included."""
        return int(self._inner.total_count) + self.overflow

    @property
    def overflow(self) -> int:
        """How many values were above ``highest_us``."""
        return sum(self._overflow.values())

    @property
    def min_us(self) -> int | None:
        return self._min_us

    @property
    def max_us(self) -> int | None:
        return self._max_us

    @property
    def mean_us(self) -> float | None:
        count = self.count
        return self._sum_us / count if count else None

    @property
    def sum_us(self) -> int:
        """The exact sum of recorded values (decoded histograms: estimated from buckets)."""
        return self._sum_us

    def restore_exact(self, min_us: int, max_us: int, sum_us: int) -> None:
        """Give a decoded histogram back the exact min, max and sum it was encoded from
        (the encoding carries buckets only). ValueError if they cannot be its own."""
        if self.count == 0 or self._min_us is None or self._max_us is None:
            raise ValueError("cannot restore the edges of an empty histogram")
        if not min_us <= max_us or min_us > self._max_us or max_us < self._min_us:
            raise ValueError(f"min {min_us} / max {max_us} do not fit this histogram")
        self._min_us, self._max_us, self._sum_us = min_us, max_us, sum_us

    def percentile(self, p: float) -> int | None:
        """Nearest-rank value at ``p`` (0..100) as Java HdrHistogram, clamped to [min, max]."""
        return self._percentiles([p])[0]

    def _percentiles(self, ps: Sequence[float]) -> list[int | None]:
        for p in ps:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percentile must be within 0..100, got {p}")
        total = self.count
        if total == 0:
            return [None for _ in ps]
        ranks = [_rank(p, total) for p in ps]
        values = self._values_at_ranks(ranks)
        return [self._min_us if p == 0 else v for p, v in zip(ps, values, strict=True)]

    def _values_at_ranks(self, ranks: list[int]) -> list[int]:
        in_buckets = int(self._inner.total_count)
        cumulative = np.cumsum(self._view[: self._top_index() + 1])
        found = np.searchsorted(cumulative, np.asarray(ranks, dtype=np.uint64)).tolist()
        overflow = sorted(self._overflow.items())
        out = []
        for rank, index in zip(ranks, found, strict=True):
            if rank <= in_buckets:
                out.append(self._clamp(self._highest_equivalent(index)))
            else:
                out.append(_overflow_at_rank(overflow, rank - in_buckets))
        return out

    def _highest_equivalent(self, index: int) -> int:
        inner = self._inner
        return int(inner.get_highest_equivalent_value(inner.get_value_from_index(index)))

    def _clamp(self, value_us: int) -> int:
        assert self._min_us is not None and self._max_us is not None
        return max(self._min_us, min(self._max_us, value_us))

    def _top_index(self) -> int:
        """Counts index of the highest bucket holding a count (-1 when none)."""
        if not self._inner.total_count:
            return -1
        return int(self._inner.get_counts_array_index(self._inner.max_value))

    def digest(self) -> Digest:
        p50, p90, p99, p999 = self._percentiles([50.0, 90.0, 99.0, 99.9])
        return Digest(
            count=self.count,
            overflow=self.overflow,
            min_us=self._min_us,
            max_us=self._max_us,
            mean_us=self.mean_us,
            p50_us=p50,
            p90_us=p90,
            p99_us=p99,
            p999_us=p999,
        )

    def recorded(self) -> Iterator[tuple[int, int]]:
        """(value_us, count) ascending: the lowest value of each bucket, then exact overflow."""
        for index, count in _nonzero_of(self._inner):
            yield int(self._inner.get_value_from_index(index)), count
        yield from sorted(self._overflow.items())

    def buckets(self) -> Iterator[tuple[int, int, int]]:
        """(lowest_us, highest_us, count) of each non-empty bucket; overflow as one-value buckets."""
        inner = self._inner
        for index, count in _nonzero_of(self._inner):
            low_us = int(inner.get_value_from_index(index))
            yield low_us, int(inner.get_highest_equivalent_value(low_us)), count
        for value_us, count in sorted(self._overflow.items()):
            yield value_us, value_us, count

    @property
    def bucket_layout(self) -> tuple[int, int]:
        """(bucket count, sub-bucket count), as Java prints them under a percentile table."""
        return int(self._inner.bucket_count), int(self._inner.sub_bucket_count)

    # -- combining -------------------------------------------------------------------------

    def merge(self, other: Histogram) -> None:
        """Add every count of ``other``; widens this histogram's range when needed."""
        if other is self:
            other = other.copy()
        if other.count == 0:
            return
        top_us = int(other._inner.max_value) if other._inner.total_count else 0
        if top_us > self._highest_us:
            self._widen(top_us)
        self._add_buckets(other._inner, other._max_us)
        for value_us, count in other._overflow.items():
            self._record_count(value_us, count)
        assert other._min_us is not None and other._max_us is not None
        self._note(other._min_us, other._max_us, other._sum_us)

    def _same_layout(self, inner: Any) -> bool:
        mine = self._inner
        return bool(
            mine.unit_magnitude == inner.unit_magnitude
            and mine.sub_bucket_count == inner.sub_bucket_count
        )

    def _add_buckets(self, inner: Any, top_us: int | None = None) -> None:
        if not inner.total_count:
            return
        if not self._same_layout(inner):
            # Another layout: re-record each bucket at its highest equivalent value (the
            # value percentiles report), never above the other side's exact max, so the
            # merged p100 is still that max.
            for index, count in _nonzero_of(inner):
                value = int(inner.get_highest_equivalent_value(inner.get_value_from_index(index)))
                if top_us is not None:
                    value = min(value, top_us)
                self._record_count(value, count)
            return
        top = int(inner.get_counts_array_index(inner.max_value)) + 1
        self._view[:top] += np.frombuffer(inner.counts, dtype=np.uint64)[:top]
        mine = self._inner
        mine.total_count += int(inner.total_count)
        mine.min_value = min(mine.min_value, int(inner.min_value))
        mine.max_value = max(mine.max_value, int(inner.max_value))

    def _widen(self, highest_us: int) -> None:
        old = self._inner
        self._use(
            HdrHistogram(old.lowest_trackable_value, highest_us, old.significant_figures),
            highest_us,
        )
        self._add_buckets(old)
        for value_us in [v for v in self._overflow if v <= highest_us]:
            self._record_count(value_us, self._overflow.pop(value_us))

    def copy(self) -> Histogram:
        clone = Histogram.__new__(Histogram)
        inner = self._inner
        empty = HdrHistogram(
            inner.lowest_trackable_value, self._highest_us, inner.significant_figures
        )
        clone._use(empty, self._highest_us)
        clone._overflow, clone._min_us, clone._max_us, clone._sum_us = {}, None, None, 0
        clone.merge(self)
        return clone

    # -- encoding --------------------------------------------------------------------------

    def encode(self) -> str:
        """Base64 of the compressed V2 encoding, as HdrHistogram interval logs carry.

        Overflow values are encoded as counts of a histogram widened to hold them, so the
        decoded histogram has a wider ``highest_us`` and no overflow, but every count.
        """
        source = self
        if self._overflow:
            source = self.copy()
            source._widen(max(self._overflow))
        encoded: bytes = source._inner.encode()
        return encoded.decode("ascii")

    @classmethod
    def decode(cls, data: str | bytes, exact_max_us: int | None = None) -> Histogram:
        """From base64 text, or raw compressed bytes (with or without the 8-byte header).

        The encoding carries buckets only, so min and max are bucket edges; pass
        ``exact_max_us`` (as an interval log line carries it) to restore the exact max. It
        is used only when it lies in the top bucket.
        """
        try:
            inner = _decode_inner(data)
        except _DECODE_ERRORS as exc:
            raise ValueError(f"not an encoded HdrHistogram: {exc}") from exc
        hist = cls._from_inner(inner)
        if exact_max_us is not None and hist._max_us is not None:
            top_low_us = int(inner.get_value_from_index(hist._top_index()))
            if top_low_us <= exact_max_us <= hist._max_us:
                hist._max_us = exact_max_us
        return hist

    @classmethod
    def _from_inner(cls, inner: Any) -> Histogram:
        hist = cls.__new__(cls)
        hist._use(inner, int(inner.highest_trackable_value))
        hist._overflow, hist._min_us, hist._max_us, hist._sum_us = {}, None, None, 0
        nonzero = _nonzero_of(inner, full=True)
        inner.total_count = sum(count for _, count in nonzero)
        if not nonzero:
            return hist
        low_us = int(inner.get_value_from_index(nonzero[0][0]))
        high_us = int(
            inner.get_highest_equivalent_value(inner.get_value_from_index(nonzero[-1][0]))
        )
        inner.min_value, inner.max_value = low_us, high_us
        hist._highest_us = max(hist._highest_us, high_us)
        hist._note(low_us, high_us, _median_sum(inner, nonzero))
        return hist


def _rank(p: float, total: int) -> int:
    if p == 0:
        return 1
    # Java removes one ulp before rounding up, so 99.9% of 1000 is rank 999, not 1000.
    return min(total, max(1, math.ceil(math.nextafter(p, -math.inf) * total / 100.0)))


def _overflow_at_rank(overflow: list[tuple[int, int]], rank: int) -> int:
    seen = 0
    for value_us, count in overflow:
        seen += count
        if seen >= rank:
            return value_us
    return overflow[-1][0]


def _exact_sum(values: np.ndarray[Any, Any], high_us: int) -> int:
    if high_us * values.size < (1 << 63):
        return int(values.sum(dtype=np.int64))
    return sum(values.tolist())


def _counts_indices(
    inner: Any, values: np.ndarray[Any, np.dtype[np.int64]]
) -> np.ndarray[Any, Any]:
    """The counts-array index of each value, as hdrhistogram computes it one at a time."""
    unit, half_mag = int(inner.unit_magnitude), int(inner.sub_bucket_half_count_magnitude)
    bit_lengths = np.frexp((values | int(inner.sub_bucket_mask)).astype(np.float64))[1]
    bucket = bit_lengths.astype(np.int64) - unit - (half_mag + 1)
    sub_bucket = values >> (bucket + unit)
    return ((bucket + 1) << half_mag) + sub_bucket - int(inner.sub_bucket_half_count)


def _nonzero_of(inner: Any, full: bool = False) -> list[tuple[int, int]]:
    """(counts index, count) of the buckets holding counts, up to the tracked max unless full."""
    view = np.frombuffer(inner.counts, dtype=np.uint64)
    if not full:
        view = view[: int(inner.get_counts_array_index(inner.max_value)) + 1]
    indices = np.flatnonzero(view)
    return list(zip(indices.tolist(), view[indices].tolist(), strict=True))


def _median(inner: Any, index: int) -> int:
    """The middle of a bucket, which Java uses for means and deviations."""
    return int(inner._hdr_median_equiv_value(inner.get_value_from_index(index)))


def _median_sum(inner: Any, nonzero: list[tuple[int, int]]) -> int:
    return sum(_median(inner, index) * count for index, count in nonzero)


def _decode_inner(data: str | bytes) -> Any:
    if isinstance(data, str):
        return HdrHistogram.decode(data.strip().encode("ascii"))
    if len(data) >= 8 and int.from_bytes(data[:4], "big") & ~0xF0 == _COMPRESSED_COOKIE_BASE:
        if int.from_bytes(data[4:8], "big") != len(data) - 8:
            raise ValueError("compressed length does not match the header")
        return HdrHistogram.decode(data[8:], b64_wrap=False)
    if data[:1] == b"\x78":  # a bare zlib stream, as hdrhistogram writes without base64
        return HdrHistogram.decode(data, b64_wrap=False)
    base64.b64decode(data.strip(), validate=True)  # hdrhistogram's own decoding is lenient
    return HdrHistogram.decode(data.strip())
