from __future__ import annotations

import math

import pytest

from zg_load.checks import DEFAULT_CHECKS, Check, CheckResult, evaluate, lag_check, parse_check

GRAMMAR = "expected METRIC{label=value,...} OP NUMBER with OP one of < <= > >= == !="


@pytest.mark.parametrize(
    ("text", "metric", "comparator", "threshold"),
    [
        ("priority_adherence >= 0.95", "priority_adherence", ">=", 0.95),
        ("recovery_time_s<=300", "recovery_time_s", "<=", 300.0),
        ("refusal_rate == 0", "refusal_rate", "==", 0.0),
        ("generator.lag_p99_ms != -1.5", "generator.lag_p99_ms", "!=", -1.5),
        ("stability > 1e-3", "stability", ">", 0.001),
        ("completion_rate > 95%", "completion_rate", ">", 0.95),
        ("stability >= 99.9%", "stability", ">=", 0.999),
        (
            "latency.p99_ms{op=approval,priority=5} < 250",
            "latency.p99_ms{op=approval,priority=5}",
            "<",
            250.0,
        ),
        # Labels are sorted by key, whatever the order and spacing they are written in.
        (
            "latency.p99_ms{priority=5,op=approval} < 250",
            "latency.p99_ms{op=approval,priority=5}",
            "<",
            250.0,
        ),
        (
            "  latency.p99_ms { priority = 5 , op = approval }<250  ",
            "latency.p99_ms{op=approval,priority=5}",
            "<",
            250.0,
        ),
    ],
)
def test_parse_check(text: str, metric: str, comparator: str, threshold: float) -> None:
    assert parse_check(text) == Check(text.strip(), metric, comparator, threshold, False)


def test_parse_check_default_flag() -> None:
    assert parse_check("stability > 0.99", default=True).default is True


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", GRAMMAR),
        ("priority_adherence", GRAMMAR),
        ("priority_adherence => 0.95", GRAMMAR),
        ("priority_adherence >=", GRAMMAR),
        ("priority_adherence > 1 2", GRAMMAR),
        ("priority_adherence > =1", GRAMMAR),
        ("1metric > 2", GRAMMAR),
        ("a..b > 1", GRAMMAR),
        ("latency{op=a > 1", GRAMMAR),
        ("priority_adherence >= high", "'high' is not a number"),
        ("priority_adherence >= %", "'%' is not a number"),
        ("priority_adherence >= nan", "the threshold must be finite"),
        ("priority_adherence >= inf", "the threshold must be finite"),
        ("latency.p99_ms{} < 1", "each label must be key=value, got ''"),
        ("latency.p99_ms{op} < 1", "each label must be key=value, got 'op'"),
        ("latency.p99_ms{op=a,} < 1", "each label must be key=value, got ''"),
        ("latency.p99_ms{op=a,op=b} < 1", "label 'op' is given twice"),
    ],
)
def test_parse_check_rejects(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_check(text)
    assert str(info.value) == f"bad check {text!r}: {problem}"


def test_default_checks() -> None:
    assert [(c.text, c.metric, c.comparator, c.threshold, c.default) for c in DEFAULT_CHECKS] == [
        ("completion_rate > 0.95", "completion_rate", ">", 0.95, True),
        ("time_to_detect_s < 30", "time_to_detect_s", "<", 30.0, True),
        ("recovery_time_s < 300", "recovery_time_s", "<", 300.0, True),
        ("stability > 0.99", "stability", ">", 0.99, True),
        ("generator.achieved_ratio >= 0.99", "generator.achieved_ratio", ">=", 0.99, True),
    ]


@pytest.mark.parametrize(
    ("limit_ms", "text"),
    [(10.0, "generator.lag_p99_ms < 10"), (2.5, "generator.lag_p99_ms < 2.5")],
)
def test_lag_check(limit_ms: float, text: str) -> None:
    assert lag_check(limit_ms) == Check(text, "generator.lag_p99_ms", "<", limit_ms, True)


KNOWN = {
    "latency.p99_ms{op=approval,priority=1}": 12.0,
    "latency.p99_ms{op=approval,priority=5}": 3.0,
    "priority_adherence": 1.0,
    "refusal_rate": 0.0,
}


@pytest.mark.parametrize(
    ("text", "default", "metrics", "value", "passed", "note"),
    [
        ("a >= 0.95", False, {"a": 0.97}, 0.97, True, "0.97 >= 0.95"),
        ("a >= 0.95", False, {"a": 0.95}, 0.95, True, "0.95 >= 0.95"),
        ("a >= 0.95", False, {"a": 0.93}, 0.93, False, "0.93 is not >= 0.95"),
        ("a > 95%", False, {"a": 0.95}, 0.95, False, "0.95 is not > 0.95"),
        ("a < 250", False, {"a": 250.0}, 250.0, False, "250 is not < 250"),
        ("a <= 250", False, {"a": 250.0}, 250.0, True, "250 <= 250"),
        ("a == 0", False, {"a": 0.0}, 0.0, True, "0 == 0"),
        ("a != 0", False, {"a": 0.0}, 0.0, False, "0 is not != 0"),
        ("a < 250", False, {"a": math.inf}, math.inf, False, "inf is not < 250"),
        ("a < 250", False, {"a": 1234.5678}, 1234.5678, False, "1234.57 is not < 250"),
        # A default check on a metric this run did not measure does not apply ...
        ("time_to_detect_s < 30", True, KNOWN, None, None, "not measured in this run"),
        # ... but a user's check on an unknown metric fails, naming the closest known ones.
        (
            "latency.p99_ms{op=approval,priority=4} < 250",
            False,
            KNOWN,
            None,
            False,
            "no such metric; known: latency.p99_ms{op=approval,priority=5}, "
            "latency.p99_ms{op=approval,priority=1}, priority_adherence",
        ),
        ("a > 1", False, {}, None, False, "no such metric; known: none"),
        # Present without a value (never recovered, empty histogram), or NaN: fails, both kinds.
        ("recovery_time_s < 300", True, {"recovery_time_s": None}, None, False, "no value"),
        ("a < 1", False, {"a": None}, None, False, "no value"),
        ("a != 1", False, {"a": math.nan}, None, False, "no value"),
    ],
)
def test_evaluate(
    text: str,
    default: bool,
    metrics: dict[str, float | None],
    value: float | None,
    passed: bool | None,
    note: str,
) -> None:
    check = parse_check(text, default=default)
    assert evaluate([check], metrics) == [CheckResult(check, value, passed, note)]


def test_evaluate_keeps_order_and_labels_match_canonically() -> None:
    checks = [
        parse_check("refusal_rate < 0.01"),
        parse_check("latency.p99_ms{priority=5,op=approval} < 250"),
    ]
    results = evaluate(checks, KNOWN)
    assert [(r.check, r.value, r.passed) for r in results] == [
        (checks[0], 0.0, True),
        (checks[1], 3.0, True),
    ]
    assert evaluate([], KNOWN) == []
