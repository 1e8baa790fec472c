from __future__ import annotations

import re

import pytest

from zg_load.units import UnitError, format_duration, format_rate, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("500us", 0.0005),
        ("500\u00b5s", 0.0005),
        ("10ns", 1e-8),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("  2s ", 2.0),
        ("1m0.1s", 60.1),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected a number followed by a unit"),
        ("-1s", "cannot have a sign"),
        ("+1s", "cannot have a sign"),
        ("10", "every number needs a unit"),
        ("1s2", "every number needs a unit"),
        ("1x", "unit must be one of ns, us, ms, s, m, h"),
        ("1 s", "unit must be one of"),
        ("1e3s", "unit must be one of"),
        ("s", "expected a number before each unit"),
        (".s", "expected a number before each unit"),
    ],
)
def test_parse_duration_rejects(text: str, reason: str) -> None:
    with pytest.raises(UnitError, match=re.escape(f"bad duration {text!r}: ") + ".*" + reason):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "rate_per_s"),
    [
        ("200/s", 200.0),
        ("10/1s", 10.0),
        ("1/1m", 1 / 60),
        ("20/ms", 20_000.0),
        ("1/500ms", 2.0),
        ("2.5/s", 2.5),
        ("0/s", 0.0),
        ("3/2h", 3 / 7200),
        ("1/1m30s", 1 / 90),
        (" 5 / s ", 5.0),
    ],
)
def test_parse_rate(text: str, rate_per_s: float) -> None:
    assert parse_rate(text) == rate_per_s


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected COUNT/PERIOD"),
        ("10", "expected COUNT/PERIOD"),
        ("10/0s", "the period must be longer than zero"),
        ("10/0ms", "the period must be longer than zero"),
        ("-1/s", "the count cannot be negative"),
        ("10/1x", "unit must be one of ns, us, ms, s, m, h (e.g. '200/s', '1/500ms')"),
        ("10/", "expected a number followed by a unit"),
        ("10/-1s", "cannot have a sign"),
        ("/s", "expected a count before '/'"),
        ("abc/s", "the count 'abc' must be a plain decimal number"),
        ("inf/s", "the count 'inf' must be a plain decimal number"),
        ("nan/s", "the count 'nan' must be a plain decimal number"),
        ("1/2/s", "unit must be one of"),
    ],
)
def test_parse_rate_rejects(text: str, reason: str) -> None:
    with pytest.raises(
        UnitError, match=re.escape(f"bad rate {text!r}: ") + ".*" + re.escape(reason)
    ):
        parse_rate(text)


def test_unit_error_is_a_value_error_with_a_full_sentence() -> None:
    with pytest.raises(ValueError) as caught:
        parse_rate("10/1x")
    assert str(caught.value) == (
        "bad rate '10/1x': unit must be one of ns, us, ms, s, m, h (e.g. '200/s', '1/500ms')."
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (90.0, "1m30s"),
        (0.25, "250ms"),
        (1.5, "1.5s"),
        (7200.0, "2h"),
        (3723.5, "1h2m3.5s"),
        (3605.0, "1h5s"),
        (0.0005, "500us"),
        (1.5e-6, "1.5us"),
        (1e-8, "10ns"),
        (0.0015, "1.5ms"),
        (59.999, "59.999s"),
        (-1.5, "-1.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds >= 0:
        assert parse_duration(text) == seconds


def test_format_duration_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="not finite"):
        format_duration(float("inf"))


@pytest.mark.parametrize(
    ("rate_per_s", "text"),
    [
        (200.0, "200/s"),
        (2.5, "2.5/s"),
        (0.0, "0/s"),
        (0.5, "0.5/s"),
        (1 / 60, "1/m"),
        (1 / 3, "20/m"),
        (1 / 7200, "0.5/h"),
        (20_000.0, "20000/s"),
        (1 / 7, "0.142857/s"),
    ],
)
def test_format_rate(rate_per_s: float, text: str) -> None:
    assert format_rate(rate_per_s) == text


@pytest.mark.parametrize("text", ["200/s", "1/1m", "1/500ms", "2.5/s", "3/2h", "0/s"])
def test_format_rate_parses_back(text: str) -> None:
    rate_per_s = parse_rate(text)
    assert parse_rate(format_rate(rate_per_s)) == pytest.approx(rate_per_s, rel=1e-12)


@pytest.mark.parametrize("rate_per_s", [-1.0, float("nan"), float("inf")])
def test_format_rate_rejects(rate_per_s: float) -> None:
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        format_rate(rate_per_s)
