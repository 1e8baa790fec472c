"""HdrHistogram interval logs (format version 1.3) and percentile tables, as text.

Owns the text formats that Java's HistogramLogWriter / HistogramLogReader /
HistogramLogProcessor and HdrHistogram's plotter use; the caller does the file I/O.
Guarantees:
- histogram values are microseconds; Interval_Max is written in milliseconds with three
  decimals, so it is exact. Java tools must be run with ``-outputValueUnitRatio 1000`` to
  print milliseconds (their default ratio, 1e6, assumes nanoseconds);
- a log we write parses back to the same counts, exact max and percentiles;
- parsing never drops an interval silently: entries come back sorted by start time and a
  malformed line is a ValueError naming its line number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from zg_load.hdr import Histogram
from zg_load.outcome import Outcome

Key = tuple[str, int, str]  # (operation, priority, outcome), as the recorder keys histograms

LOG_FORMAT_VERSION = "1.3"
MAX_VALUE_UNIT_RATIO = 1000.0  # Interval_Max = max_us / 1000: milliseconds, exact to 3 decimals
LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
_YEAR_S = 365 * 24 * 3600.0
_OUTCOMES = frozenset(outcome.value for outcome in Outcome)
_BAD_TAG_CHARS = re.compile(r"[\s,/]")
_START_TIME = re.compile(r"#\[StartTime:\s*([0-9.eE+-]+)")
_BASE_TIME = re.compile(r"#\[BaseTime:\s*([0-9.eE+-]+)")


@dataclass(frozen=True)
class LogEntry:
    """One interval line: ``start_s`` is absolute (seconds since the epoch)."""

    tag: str | None
    start_s: float
    length_s: float
    hist: Histogram


def format_header(start_epoch_s: float, base_time_s: float | None = None) -> list[str]:
    """The header lines; interval start times are then relative to ``base_time_s``.

    ``base_time_s`` defaults to ``start_epoch_s``.
    """
    base_s = start_epoch_s if base_time_s is None else base_time_s
    human = datetime.fromtimestamp(start_epoch_s, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    return [
        f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
        "#[Values are microseconds; Interval_Max is in milliseconds (value unit ratio 1000)]",
        f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch), {human}]",
        f"#[BaseTime: {base_s:.3f} (seconds since epoch)]",
        LEGEND,
    ]


def format_interval(tag: str | None, start_s: float, length_s: float, hist: Histogram) -> str:
    """One interval line; ``start_s`` is seconds since the log's BaseTime."""
    prefix = "" if tag is None else f"Tag={_checked_tag(tag)},"
    max_ms = 0.0 if hist.max_us is None else hist.max_us / MAX_VALUE_UNIT_RATIO
    return f"{prefix}{start_s:.3f},{length_s:.3f},{max_ms:.3f},{hist.encode()}"


def tag_for(key: Key) -> str:
    """``operation/priority/outcome``, e.g. ``approval/5/ok``."""
    operation, priority, outcome = key
    if not operation or _BAD_TAG_CHARS.search(operation):
        raise ValueError(f"operation {operation!r} cannot be tagged (empty, or has , / or space)")
    if outcome not in _OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    return f"{operation}/{int(priority)}/{outcome}"


def key_for(tag: str) -> Key:
    """The key that ``tag_for`` made ``tag`` from."""
    parts = tag.split("/")
    if len(parts) != 3 or not parts[0]:
        raise ValueError(f"tag {tag!r} is not operation/priority/outcome")
    operation, priority, outcome = parts
    try:
        priority_no = int(priority)
    except ValueError:
        raise ValueError(f"tag {tag!r} has a non-integer priority") from None
    key = (operation, priority_no, outcome)
    tag_for(key)  # the same checks as writing
    return key


def _checked_tag(tag: str) -> str:
    if not tag or re.search(r"[\s,]", tag):
        raise ValueError(f"tag {tag!r} is empty or has a comma or space")
    return tag


# -- reading -----------------------------------------------------------------------------


class _Clock:
    """StartTime / BaseTime as Java's HistogramLogReader resolves them."""

    def __init__(self) -> None:
        self.start_s: float | None = None
        self.base_s: float | None = None

    def absolute(self, stamp_s: float) -> float:
        if self.start_s is None:
            self.start_s = stamp_s
        if self.base_s is None:
            # Stamps more than a year before StartTime are relative to it; others are absolute.
            self.base_s = self.start_s if stamp_s < self.start_s - _YEAR_S else 0.0
        return stamp_s + self.base_s


def parse_log(text: str) -> list[LogEntry]:
    """Every interval of an interval log, sorted by absolute start time."""
    clock = _Clock()
    entries: list[LogEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith('"StartTimestamp"'):
            continue
        if line.startswith("#"):
            _read_comment(line, clock)
            continue
        try:
            entries.append(_parse_interval(line, clock))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return sorted(entries, key=lambda entry: entry.start_s)


def _read_comment(line: str, clock: _Clock) -> None:
    if match := _START_TIME.match(line):
        clock.start_s = float(match.group(1))
    elif match := _BASE_TIME.match(line):
        clock.base_s = float(match.group(1))


def _parse_interval(line: str, clock: _Clock) -> LogEntry:
    tag = None
    if line.startswith("Tag="):
        tag, _, line = line[4:].partition(",")
        if not tag:
            raise ValueError("empty tag")
    fields = line.split(",")
    if len(fields) != 4:
        raise ValueError(f"expected 4 comma-separated fields after the tag, got {len(fields)}")
    stamp_s, length_s, max_ratio = (_number(field) for field in fields[:3])
    exact_max_us = round(max_ratio * MAX_VALUE_UNIT_RATIO)
    hist = Histogram.decode(fields[3], exact_max_us=exact_max_us)
    return LogEntry(tag, clock.absolute(stamp_s), length_s, hist)


def _number(field: str) -> float:
    value = float(field)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{field!r} is not a non-negative number")
    return value


# -- percentile tables -------------------------------------------------------------------


def format_hgrm(hist: Histogram, value_unit_ratio: float = 1000.0, ticks_per_half: int = 5) -> str:
    """The percentile distribution table Java's ``outputPercentileDistribution`` prints.

    Values are divided by ``value_unit_ratio`` (1000: milliseconds) and, as everywhere in
    zg_load, clamped to the exact [min, max]. An empty histogram prints n/a, never 0.
    """
    digits = hist.significant_figures
    lines = [f"{'Value':>12} {'Percentile':>14} {'TotalCount':>10} {'1/(1-Percentile)':>14}", ""]
    for value_us, level, total in _percentile_steps(hist, ticks_per_half):
        value = _java_fixed(value_us / value_unit_ratio, digits)
        fraction = level / 100.0
        row = f"{value:>12} {_java_fixed(fraction, 12)} {total:>10d}"
        if level != 100.0:
            row += f" {_java_fixed(1.0 / (1.0 - fraction), 2):>14}"
        lines.append(row)
    lines += _footer(hist, value_unit_ratio, digits)
    return "\n".join(lines) + "\n"


def _footer(hist: Histogram, ratio: float, digits: int) -> list[str]:
    def scaled(value: float | None) -> str:
        return "n/a" if value is None else _java_fixed(value / ratio, digits)

    buckets, sub_buckets = hist.bucket_layout
    return [
        f"#[Mean    = {scaled(hist.mean_us):>12}, StdDeviation   = {scaled(_std_dev_us(hist)):>12}]",
        f"#[Max     = {scaled(hist.max_us):>12}, Total count    = {hist.count:>12d}]",
        f"#[Buckets = {buckets:>12d}, SubBuckets     = {sub_buckets:>12d}]",
    ]


def _std_dev_us(hist: Histogram) -> float | None:
    """Standard deviation over bucket midpoints, computed as Java computes it."""
    total = hist.count
    if total == 0:
        return None
    mids = [(low + ((high - low + 1) >> 1), count) for low, high, count in hist.buckets()]
    mean = sum(mid * count for mid, count in mids) / total
    return math.sqrt(sum((mid - mean) * (mid - mean) * count for mid, count in mids) / total)


def _percentile_steps(hist: Histogram, ticks_per_half: int) -> list[tuple[int, float, int]]:
    """(value_us, percentile level, count so far) as Java's PercentileIterator steps."""
    total = hist.count
    if total == 0:
        return []
    low_us, high_us = hist.min_us, hist.max_us
    assert low_us is not None and high_us is not None
    steps: list[tuple[int, float, int]] = []
    level, seen = 0.0, 0
    for _, bucket_high_us, count in hist.buckets():
        seen += count
        value_us = max(low_us, min(high_us, bucket_high_us))
        while 100.0 * seen / total >= level:
            steps.append((value_us, level, seen))
            level = _next_level(level, ticks_per_half)
            if seen == total:
                break
    steps.append((steps[-1][0], 100.0, total))
    return steps


def _next_level(level: float, ticks_per_half: int) -> float:
    if level >= 100.0:
        return math.inf
    halvings = int(math.log(100.0 / (100.0 - level)) / math.log(2))
    return level + 100.0 / (ticks_per_half * (1 << (halvings + 1)))


def _java_fixed(value: float, decimals: int) -> str:
    """``%.Nf`` as Java formats it: half-up on the shortest decimal form of the double."""
    quantum = Decimal(1).scaleb(-decimals)
    return format(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP), "f")
