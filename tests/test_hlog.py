from __future__ import annotations

import random

import pytest

from zg_load.hdr import Histogram
from zg_load.hlog import (
    LEGEND,
    format_header,
    format_hgrm,
    format_interval,
    key_for,
    parse_log,
    tag_for,
)
from zg_load.recorder import Key

START_S = 1_700_000_000.5  # Tue Nov 14 22:13:20.5 UTC 2023


def _hist(values: list[int]) -> Histogram:
    hist = Histogram()
    hist.record_many(values)
    return hist


def _spread(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.lognormvariate(8, 1.4)) for _ in range(n)]


def test_header_lines() -> None:
    assert format_header(START_S, base_time_s=1_700_000_000.0) == [
        "#[Histogram log format version 1.3]",
        "#[Values are microseconds; Interval_Max is in milliseconds (value unit ratio 1000)]",
        "#[StartTime: 1700000000.500 (seconds since epoch), Tue Nov 14 22:13:20 UTC 2023]",
        "#[BaseTime: 1700000000.000 (seconds since epoch)]",
        LEGEND,
    ]
    assert format_header(START_S)[3] == "#[BaseTime: 1700000000.500 (seconds since epoch)]"


@pytest.mark.parametrize(
    ("tag", "values", "prefix"),
    [
        ("approval/5/ok", [1, 1_234_567], "Tag=approval/5/ok,2.000,1.000,1234.567,HISTF"),
        (None, [999], "2.000,1.000,0.999,HISTF"),
        (None, [], "2.000,1.000,0.000,HISTF"),
    ],
)
def test_interval_line_writes_exact_max(tag: str | None, values: list[int], prefix: str) -> None:
    assert format_interval(tag, 2.0, 1.0, _hist(values)).startswith(prefix)


@pytest.mark.parametrize("tag", ["a,b", "a b", ""])
def test_interval_line_refuses_bad_tags(tag: str) -> None:
    with pytest.raises(ValueError):
        format_interval(tag, 0.0, 1.0, _hist([1]))


@pytest.mark.parametrize(
    ("key", "tag"),
    [(("approval", 5, "ok"), "approval/5/ok"), (("run_task", 0, "timeout"), "run_task/0/timeout")],
)
def test_tags_round_trip(key: Key, tag: str) -> None:
    assert (tag_for(key), key_for(tag)) == (tag, key)


@pytest.mark.parametrize(
    "bad_key",
    [("a/b", 1, "ok"), ("a,b", 1, "ok"), ("a b", 1, "ok"), ("", 1, "ok"), ("a", 1, "fine")],
)
def test_tag_for_refuses_bad_keys(bad_key: Key) -> None:
    with pytest.raises(ValueError):
        tag_for(bad_key)


@pytest.mark.parametrize(
    "bad_tag", ["approval/5", "approval/x/ok", "a/1/ok/x", "/1/ok", "a/1/fine"]
)
def test_key_for_refuses_bad_tags(bad_tag: str) -> None:
    with pytest.raises(ValueError):
        key_for(bad_tag)


def test_write_then_parse_gives_the_same_histograms() -> None:
    written = [
        (tag, second, _hist(_spread(2000, seed=second * 10 + n)))
        for second in range(3)
        for n, tag in enumerate(["approval/5/ok", "approval/1/refused", None])
    ]
    lines = format_header(START_S)
    lines += [format_interval(tag, float(second), 1.0, hist) for tag, second, hist in written]
    entries = parse_log("\n".join(lines) + "\n")
    assert len(entries) == len(written)
    for entry, (tag, second, hist) in zip(entries, written, strict=True):
        assert (entry.tag, entry.start_s, entry.length_s) == (tag, START_S + second, 1.0)
        assert (entry.hist.count, entry.hist.max_us) == (hist.count, hist.max_us)
        for p in (50.0, 90.0, 99.0, 99.9, 100.0):
            assert entry.hist.percentile(p) == hist.percentile(p)


@pytest.mark.parametrize(
    ("head", "stamp", "expected_start_s"),
    [
        ([], "1700000005.000", 1_700_000_005.0),  # no header: the stamp is absolute
        (["#[StartTime: 1700000000.000 (seconds since epoch), x]"], "5.000", 1_700_000_005.0),
        (
            ["#[StartTime: 1700000000.000 (seconds since epoch), x]"],
            "1700000005.250",
            1_700_000_005.25,
        ),
        (["#[BaseTime: 1600000000.000 (seconds since epoch)]"], "5.000", 1_600_000_005.0),
        (
            [
                "#[StartTime: 1700000000.000 (seconds since epoch), x]",
                "#[BaseTime: 1699999990.000 (seconds since epoch)]",
            ],
            "15.000",
            1_700_000_005.0,
        ),
    ],
)
def test_parse_resolves_start_times(head: list[str], stamp: str, expected_start_s: float) -> None:
    line = f"{stamp},1.000,0.010,{_hist([10]).encode()}"
    (entry,) = parse_log("\n".join([*head, LEGEND, line]))
    assert entry.start_s == pytest.approx(expected_start_s, abs=1e-6)


def test_parse_sorts_out_of_order_lines_and_skips_blanks_and_comments() -> None:
    lines = format_header(START_S)
    lines += [format_interval("a/1/ok", 3.0, 1.0, _hist([3])), "", "# a comment", "   "]
    lines += [format_interval("a/1/ok", 1.0, 1.0, _hist([1, 1]))]
    entries = parse_log("\n".join(lines))
    assert [(e.start_s - START_S, e.hist.count) for e in entries] == [(1.0, 2), (3.0, 1)]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1.000,1.000,HISTFAAAAA", "line 6: expected 4"),
        ("x,1.000,0.001,HISTFAAAAA", "line 6: could not convert"),
        ("1.000,1.000,0.001,not-a-histogram", "line 6: not an encoded HdrHistogram"),
        ("Tag=,1.000,1.000,0.001,HISTF", "line 6: empty tag"),
        ("-1.000,1.000,0.001,HISTF", "line 6: .* non-negative"),
    ],
)
def test_parse_names_the_malformed_line(bad_line: str, message: str) -> None:
    text = "\n".join([*format_header(START_S), bad_line])
    with pytest.raises(ValueError, match=message):
        parse_log(text)


def test_hgrm_of_known_values() -> None:
    # 3000 and 4000 sit in 2 us wide buckets: 3001 is the bucket's top, 4000 the exact max.
    text = format_hgrm(_hist([1000, 2000, 3000, 4000]))
    assert text.splitlines() == [
        "       Value     Percentile TotalCount 1/(1-Percentile)",
        "",
        "       1.000 0.000000000000          1           1.00",
        "       1.000 0.100000000000          1           1.11",
        "       1.000 0.200000000000          1           1.25",
        "       2.000 0.300000000000          2           1.43",
        "       2.000 0.400000000000          2           1.67",
        "       2.000 0.500000000000          2           2.00",
        "       3.001 0.550000000000          3           2.22",
        "       3.001 0.600000000000          3           2.50",
        "       3.001 0.650000000000          3           2.86",
        "       3.001 0.700000000000          3           3.33",
        "       3.001 0.750000000000          3           4.00",
        "       4.000 0.775000000000          4           4.44",
        "       4.000 1.000000000000          4",
        "#[Mean    =        2.500, StdDeviation   =        1.118]",
        "#[Max     =        4.000, Total count    =            4]",
        "#[Buckets =           22, SubBuckets     =         2048]",
    ]


def test_hgrm_of_empty_histogram_says_na() -> None:
    assert format_hgrm(Histogram()).splitlines()[2:] == [
        "#[Mean    =          n/a, StdDeviation   =          n/a]",
        "#[Max     =          n/a, Total count    =            0]",
        "#[Buckets =           22, SubBuckets     =         2048]",
    ]
