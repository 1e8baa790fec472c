"""Checks: thresholds on named metrics, such as ``latency.p99_ms{op=approval,priority=5} < 250``.

Owns the check grammar, the default checks (the seed's success metrics plus generator
health) and their evaluation against a run's metrics. Pure: no I/O. Guarantees: a
metric name is canonical (labels sorted by key), so the same selector written two ways
names the same metric; evaluation never compares NaN; a default check whose metric a
run did not measure is "not applicable", while a user's check on an unknown metric fails.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = [
    "COMPARATORS",
    "DEFAULT_CHECKS",
    "Check",
    "CheckResult",
    "evaluate",
    "lag_check",
    "parse_check",
]

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CHECK = re.compile(
    rf"\s*(?P<metric>{_NAME}(?:\.{_NAME})*)\s*"
    r"(?:\{(?P<labels>[^{}]*)\})?\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<number>[^\s<>=!]\S*)\s*"
)
_LABEL = re.compile(rf"\s*(?P<key>{_NAME})\s*=\s*(?P<value>[A-Za-z0-9_.:/-]+)\s*")
_GRAMMAR = "expected METRIC{label=value,...} OP NUMBER with OP one of < <= > >= == !="


@dataclass(frozen=True)
class Check:
    """A threshold on one metric; ``metric`` is canonical (labels sorted by key)."""

    text: str
    metric: str
    comparator: str
    threshold: float
    default: bool = False


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one check: ``passed`` is None when the check does not apply to the run."""

    check: Check
    value: float | None
    passed: bool | None
    note: str


def parse_check(text: str, default: bool = False) -> Check:
    """Parse ``metric{label=value,...} OP number``; ``95%`` means 0.95.

    Raises ValueError naming the text and what is wrong.
    """
    match = _CHECK.fullmatch(text)
    if match is None:
        raise ValueError(f"bad check {text!r}: {_GRAMMAR}")
    metric = match["metric"]
    if match["labels"] is not None:
        metric += _canonical_labels(match["labels"], text)
    threshold = _parse_number(match["number"], text)
    return Check(text.strip(), metric, match["op"], threshold, default)


def lag_check(limit_ms: float) -> Check:
    """The default generator-health check: schedule lag p99 below ``limit_ms``."""
    return parse_check(f"generator.lag_p99_ms < {_format(limit_ms)}", default=True)


def _canonical_labels(body: str, text: str) -> str:
    """Return ``{k=v,...}`` sorted by key; rejects empty selectors and repeated keys."""
    pairs: dict[str, str] = {}
    for part in body.split(","):
        label = _LABEL.fullmatch(part)
        if label is None:
            raise ValueError(f"bad check {text!r}: each label must be key=value, got {part!r}")
        if label["key"] in pairs:
            raise ValueError(f"bad check {text!r}: label {label['key']!r} is given twice")
        pairs[label["key"]] = label["value"]
    return "{" + ",".join(f"{key}={pairs[key]}" for key in sorted(pairs)) + "}"


def _parse_number(number: str, text: str) -> float:
    """Read a finite decimal, with an optional ``%`` suffix meaning hundredths."""
    percent = number.endswith("%")
    digits = number[:-1] if percent else number
    try:
        value = Decimal(digits)
    except InvalidOperation:
        raise ValueError(f"bad check {text!r}: {number!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"bad check {text!r}: the threshold must be finite")
    return float(value / 100 if percent else value)


DEFAULT_CHECKS: tuple[Check, ...] = tuple(
    parse_check(text, default=True)
    for text in (
        "completion_rate > 0.95",
        "time_to_detect_s < 30",
        "recovery_time_s < 300",
        "stability > 0.99",
        "generator.achieved_ratio >= 0.99",
    )
)


def evaluate(
    checks: Sequence[Check],
    metrics: Mapping[str, float | None],
    unmeasured: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Judge each check against ``metrics`` (canonical metric name -> value or None).

    Absent metric: a default check does not apply (passed None); a user check fails, and
    its note is the reason from ``unmeasured`` (metric -> why this run could not measure
    it) or else names the closest known metrics. A None or NaN value fails with "no value".
    """
    return [_evaluate_one(check, metrics, unmeasured or {}) for check in checks]


def _evaluate_one(
    check: Check, metrics: Mapping[str, float | None], unmeasured: Mapping[str, str]
) -> CheckResult:
    if check.metric not in metrics:
        if check.default:
            return CheckResult(check, None, None, "not measured in this run")
        reason = unmeasured.get(check.metric)
        if reason is not None:
            return CheckResult(check, None, False, reason)
        return CheckResult(check, None, False, f"no such metric; known: {_closest(check, metrics)}")
    value = metrics[check.metric]
    if value is None or math.isnan(value):
        return CheckResult(check, None, False, "no value")
    passed = COMPARATORS[check.comparator](value, check.threshold)
    relation = check.comparator if passed else f"is not {check.comparator}"
    return CheckResult(
        check, value, passed, f"{_format(value)} {relation} {_format(check.threshold)}"
    )


def _closest(check: Check, metrics: Mapping[str, float | None]) -> str:
    """A few known metric names, the most similar to the check's metric first."""
    names = difflib.get_close_matches(check.metric, list(metrics), n=3, cutoff=0.0)
    return ", ".join(names) if names else "none"


def _format(value: float) -> str:
    """Short text for a number in notes: up to six significant figures, no trailing zeros."""
    return f"{value:.6g}"
