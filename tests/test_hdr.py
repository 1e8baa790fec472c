from __future__ import annotations

import base64
import gc
import math
import random
import weakref
import zlib

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from zg_load.hdr import Digest, Histogram


def _hist(values: list[int], highest_us: int = 3_600_000_000, figures: int = 3) -> Histogram:
    hist = Histogram(highest_us, figures)
    for value in values:
        hist.record(value)
    return hist


def _spread(n: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.lognormvariate(8, 1.5)) for _ in range(n)]


EDGES = [0, 1, 2047, 2048, 2049, 100_000, 3_600_000_000, 3_600_000_001, 10**13]


@pytest.mark.parametrize(
    ("values", "highest_us", "p", "expected"),
    [
        ([], 3_600_000_000, 50.0, None),
        ([], 3_600_000_000, 0.0, None),
        ([1500], 3_600_000_000, 0.0, 1500),
        ([1500], 3_600_000_000, 50.0, 1500),
        ([1500], 3_600_000_000, 100.0, 1500),
        # 100_000 sits in a 64 us wide bucket (up to 100_031): clamped to the exact max.
        ([100_000], 3_600_000_000, 50.0, 100_000),
        ([100_000, 100_010], 3_600_000_000, 50.0, 100_010),
        ([100_000, 200_000], 3_600_000_000, 50.0, 100_031),
        (list(range(1, 1001)), 3_600_000_000, 0.0, 1),
        (list(range(1, 1001)), 3_600_000_000, 50.0, 500),
        (list(range(1, 1001)), 3_600_000_000, 90.0, 900),
        (list(range(1, 1001)), 3_600_000_000, 99.0, 990),
        (list(range(1, 1001)), 3_600_000_000, 99.9, 999),  # rank 999, not 1000
        (list(range(1, 1001)), 3_600_000_000, 100.0, 1000),
        (list(range(1, 11)), 3_600_000_000, 25.0, 3),  # ceil(2.5) = rank 3
        (list(range(1, 11)), 3_600_000_000, 1e-9, 1),
        # Overflow values are exact and take part in ranks.
        ([5, 2000, 3000], 1000, 0.0, 5),
        ([5, 2000, 3000], 1000, 50.0, 2000),
        ([5, 2000, 3000], 1000, 100.0, 3000),
        ([5, 3000, 3000, 2000], 1000, 75.0, 3000),
    ],
)
def test_percentile(values: list[int], highest_us: int, p: float, expected: int | None) -> None:
    assert _hist(values, highest_us).percentile(p) == expected


@pytest.mark.parametrize("p", [-0.1, 100.01, math.nan, math.inf])
def test_percentile_outside_range_is_refused(p: float) -> None:
    with pytest.raises(ValueError):
        _hist([1]).percentile(p)


def test_percentiles_are_ordered_and_end_at_max() -> None:
    hist = _hist(_spread(20_000))
    levels = [0, 10, 50, 90, 99, 99.9, 99.99, 100]
    values = [hist.percentile(p) for p in levels]
    assert None not in values
    assert values == sorted(v for v in values if v is not None)
    assert values[0] == hist.min_us and values[-1] == hist.max_us


@pytest.mark.parametrize(
    ("highest_us", "value", "count", "overflow"),
    [(1000, 1000, 1, 0), (1000, 1001, 1, 1), (2, 2, 1, 0), (2, 3, 1, 1), (1000, 0, 1, 0)],
)
def test_range_edges(highest_us: int, value: int, count: int, overflow: int) -> None:
    hist = _hist([value], highest_us)
    assert (hist.count, hist.overflow, hist.min_us, hist.max_us) == (count, overflow, value, value)


def test_empty_reports_none_never_zero() -> None:
    hist = Histogram()
    assert (hist.count, hist.min_us, hist.max_us, hist.mean_us) == (0, None, None, None)
    assert hist.digest() == Digest(0, 0, None, None, None, None, None, None, None)
    assert hist.digest().to_json()["p99_ms"] is None


def test_digest_to_json_in_milliseconds() -> None:
    digest = _hist([1000, 2000, 3001, 5_000_000], highest_us=4_000_000).digest()
    assert digest.to_json() == {
        "count": 4,
        "overflow": 1,
        "min_ms": 1.0,
        "max_ms": 5000.0,
        "mean_ms": 1251.5,
        "p50_ms": 2.0,
        "p90_ms": 5000.0,
        "p99_ms": 5000.0,
        "p999_ms": 5000.0,
    }


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1, ValueError), (1.5, TypeError), ("3", TypeError)],
)
def test_record_refuses_bad_values(bad: object, error: type[Exception]) -> None:
    hist = Histogram()
    with pytest.raises(error):
        hist.record(bad)  # type: ignore[arg-type]
    with pytest.raises(error):
        hist.record_many([5, bad])  # type: ignore[list-item]
    assert hist.count == 0


@pytest.mark.parametrize(
    ("values", "highest_us", "figures"),
    [
        (_spread(50_000) + EDGES, 3_600_000_000, 3),
        (_spread(5_000, seed=2) + EDGES, 10_000, 2),
        (_spread(5_000, seed=3) + EDGES, 3_600_000_000, 5),
        (EDGES * 3, 2, 1),
        ([], 1000, 3),
    ],
)
def test_record_many_equals_one_by_one(values: list[int], highest_us: int, figures: int) -> None:
    one = _hist(values, highest_us, figures)
    for batch in (values, np.asarray(values, dtype=np.int64) if values else []):
        many = Histogram(highest_us, figures)
        many.record_many(batch[: len(batch) // 2])
        many.record_many(batch[len(batch) // 2 :])
        assert list(many.recorded()) == list(one.recorded())
        assert many.encode() == one.encode()
        assert many.digest() == one.digest()


def test_record_many_accepts_unsigned_arrays() -> None:
    values = np.asarray([3, 70_000, 5_000_000_000], dtype=np.uint64)
    hist = Histogram()
    hist.record_many(values)
    assert (hist.count, hist.overflow, hist.max_us) == (3, 1, 5_000_000_000)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ((3_600_000_000, 3), (3_600_000_000, 3)),
        ((1000, 3), (3_600_000_000, 3)),  # self widens
        ((3_600_000_000, 3), (1000, 3)),  # other has overflow
        ((10_000, 2), (3_600_000_000, 4)),  # different precision and range
        ((3_600_000_000, 5), (2, 1)),
    ],
)
def test_merge_never_loses_a_count(left: tuple[int, int], right: tuple[int, int]) -> None:
    a_values, b_values = _spread(3000, 1) + EDGES, _spread(2000, 2) + EDGES
    a, b = _hist(a_values, *left), _hist(b_values, *right)
    a.merge(b)
    both = a_values + b_values
    assert (a.count, a.min_us, a.max_us) == (len(both), min(both), max(both))
    assert a.mean_us == pytest.approx(sum(both) / len(both))
    assert sum(count for _, count in a.recorded()) == len(both)
    assert b.count == len(b_values)  # the other side is untouched


def test_merge_of_same_layout_equals_recording_all() -> None:
    a_values, b_values = _spread(3000, 1), _spread(2000, 2)
    merged = _hist(a_values)
    merged.merge(_hist(b_values))
    assert merged.encode() == _hist(a_values + b_values).encode()


def test_merge_with_itself_doubles() -> None:
    hist = _hist([10, 20, 5000], highest_us=1000)
    hist.merge(hist)
    assert (hist.count, hist.overflow) == (6, 2)


def test_copy_is_independent() -> None:
    hist = _hist([10, 20, 5000], highest_us=1000)
    clone = hist.copy()
    clone.record(7)
    assert (hist.count, clone.count, clone.encode() != hist.encode()) == (3, 4, True)


def test_encode_decode_round_trip() -> None:
    hist = _hist(_spread(10_000) + [0])
    text = hist.encode()
    assert text.startswith("HISTF")
    raw = base64.b64decode(text)
    for data in (text, text.encode(), raw, raw[8:]):
        back = Histogram.decode(data)
        assert list(back.recorded()) == list(hist.recorded())
        assert back.min_us == 0
        assert back.percentile(99.0) == hist.percentile(99.0)


def test_decode_restores_exact_max_only_within_top_bucket() -> None:
    text = _hist([100_000, 200_000]).encode()
    assert Histogram.decode(text).max_us == 200_063
    assert Histogram.decode(text, exact_max_us=200_000).max_us == 200_000
    assert Histogram.decode(text, exact_max_us=150_000).max_us == 200_063


@pytest.mark.parametrize(
    "data", ["not base64!", b"HISTFAAAAAAA", b"\x1c\x84\x93\x14\x00\x00\x00\x09x", ""]
)
def test_decode_refuses_garbage(data: str | bytes) -> None:
    with pytest.raises(ValueError, match="not an encoded HdrHistogram"):
        Histogram.decode(data)


def test_overflow_survives_encoding_in_a_wider_histogram() -> None:
    hist = _hist([5, 900, 5000, 70_000], highest_us=1000)
    back = Histogram.decode(hist.encode())
    assert (back.count, back.overflow) == (4, 0)
    assert back.highest_us >= 70_000
    assert back.percentile(100.0) == pytest.approx(70_000, rel=1e-3)


def test_counts_above_two_to_the_31_survive() -> None:
    huge = 3 * 2**31 + 5
    source = HdrHistogram(1, 3_600_000_000, 3)
    source.record_value(1234, huge)
    source.record_value(99_000, 2)
    hist = Histogram.decode(source.encode())
    again = Histogram.decode(hist.encode())
    assert (hist.count, again.count) == (huge + 2, huge + 2)
    assert again.percentile(50.0) == 1234
    merged = Histogram()
    merged.merge(again)
    merged.merge(again)
    assert merged.count == 2 * (huge + 2)


def test_bare_zlib_payload_decodes() -> None:
    hist = _hist([1, 2, 3])
    payload = base64.b64decode(hist.encode())[8:]
    assert zlib.decompress(payload)  # really a bare zlib stream
    assert Histogram.decode(payload).count == 3


def test_restore_exact_edges_after_decode() -> None:
    h = Histogram()
    h.record_many([1001, 2003, 30_007])
    d = Histogram.decode(h.encode())
    d.restore_exact(1001, 30_007, 33_011)
    assert (d.min_us, d.max_us, d.sum_us, d.count) == (1001, 30_007, 33_011, 3)
    assert d.percentile(100) == 30_007
    with pytest.raises(ValueError, match="do not fit"):
        d.restore_exact(40_000, 50_000, 1)
    with pytest.raises(ValueError, match="empty"):
        Histogram().restore_exact(1, 2, 3)


def test_merge_across_precisions_keeps_p100_equal_to_max() -> None:
    coarse = Histogram(significant_figures=2)
    coarse.record(816_151)
    fine = Histogram()
    fine.record(1_000)
    fine.merge(coarse)
    assert fine.count == 2
    assert fine.max_us == 816_151
    assert fine.percentile(100) == 816_151
    assert fine.percentile(50) == 1_000


@pytest.mark.parametrize("make", ["new", "copy", "decode", "merge_widened"])
def test_a_dropped_histogram_is_freed_without_the_cyclic_collector(make: str) -> None:
    """hdrh's histogram and its encoder would form a cycle: each dropped histogram's counts
    (~180 KB) would wait for a full collection, and a long run's memory would grow."""
    source = Histogram()
    source.record(1_500)
    if make == "new":
        hist = Histogram()
    elif make == "copy":
        hist = source.copy()
    elif make == "decode":
        hist = Histogram.decode(source.encode())
    else:
        hist = Histogram(highest_us=1_000)
        hist.merge(source)  # widens to take 1,500 us
    hist.record(7)
    assert hist.encode()  # the encoder still reaches its histogram
    inner = weakref.ref(hist._inner)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del hist
        assert inner() is None
    finally:
        if enabled:
            gc.enable()
