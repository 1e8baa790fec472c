"""Durations and rates as people write them: '1m30s', '250ms', '200/s', '1/500ms'.

Owns the text forms of time spans and request rates used by scenarios, the CLI and
reports. Parsing is exact: each number is read as a decimal and summed in whole
nanoseconds before one final conversion to float, so '1h2m3.5s' is exactly 3723.5.
Every rejection is a `UnitError` whose message names the bad text and what is
accepted. `format_duration` and `format_rate` produce text that parses back.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

__all__ = ["UnitError", "format_duration", "format_rate", "parse_duration", "parse_rate"]

_NS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_UNITS_TEXT = "ns, us, ms, s, m, h"
_DURATION_EXAMPLES = "(e.g. '1.5s', '250ms', '1m30s')"
_RATE_EXAMPLES = "(e.g. '200/s', '1/500ms')"
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
# A number (optional, so a missing one can be reported) followed by whatever is not a number.
_COMPONENT = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)?(?P<unit>[^\d.]*)")


class UnitError(ValueError):
    """A duration or rate text that cannot be read; the message says why and what is accepted."""


def parse_duration(text: str) -> float:
    """Return the duration `text` ('1.5s', '250ms', '1m30s', '2h', '500us') in seconds.

    Components are a non-negative decimal number and a unit (ns, us, ms, s, m, h) and add up.
    A bare number ('10') is rejected because its unit would be a guess.
    """
    return float(_duration_ns(text.strip(), f"duration {text!r}", _DURATION_EXAMPLES) / 10**9)


def parse_rate(text: str) -> float:
    """Return the rate `text` ('200/s', '10/1s', '1/500ms', '2.5/s') in requests per second.

    The form is COUNT/PERIOD: COUNT is a non-negative decimal number, PERIOD a duration
    or a bare unit ('s' means '1s'). A zero count is allowed (no requests); a zero period is not.
    """
    label = f"rate {text!r}"
    count_text, slash, period_text = text.strip().partition("/")
    if not slash:
        raise UnitError(f"bad {label}: expected COUNT/PERIOD {_RATE_EXAMPLES}.")
    count_text, period_text = count_text.strip(), period_text.strip()
    if not count_text:
        raise UnitError(f"bad {label}: expected a count before '/' {_RATE_EXAMPLES}.")
    if count_text.startswith("-"):
        raise UnitError(f"bad {label}: the count cannot be negative {_RATE_EXAMPLES}.")
    if not _NUMBER.fullmatch(count_text):
        raise UnitError(
            f"bad {label}: the count {count_text!r} must be a plain decimal number "
            f"{_RATE_EXAMPLES}."
        )
    if period_text in _NS_PER_UNIT:
        period_ns = Fraction(_NS_PER_UNIT[period_text])
    else:
        period_ns = _duration_ns(period_text, label, _RATE_EXAMPLES)
    if period_ns == 0:
        raise UnitError(f"bad {label}: the period must be longer than zero {_RATE_EXAMPLES}.")
    return float(Fraction(count_text) * 10**9 / period_ns)


def format_duration(duration_s: float) -> str:
    """Return `duration_s` as the shortest text that parses back: '1m30s', '250ms', '1.5us', '0s'.

    Rounded to whole nanoseconds. Negative values get a leading '-' (for differences in
    reports; `parse_duration` rejects them). Raises ValueError if it is not finite.
    """
    if not math.isfinite(duration_s):
        raise ValueError(f"cannot format the duration {duration_s!r}: it is not finite.")
    total_ns = round(Fraction(repr(float(duration_s))) * 10**9)
    sign, total_ns = ("-" if total_ns < 0 else ""), abs(total_ns)
    if total_ns == 0:
        return "0s"
    for unit in ("ns", "us", "ms"):
        if total_ns < 1000 * _NS_PER_UNIT[unit]:
            return sign + _decimal_text(total_ns, _NS_PER_UNIT[unit]) + unit
    hours, rest_ns = divmod(total_ns, _NS_PER_UNIT["h"])
    minutes, rest_ns = divmod(rest_ns, _NS_PER_UNIT["m"])
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if rest_ns:
        parts.append(_decimal_text(rest_ns, _NS_PER_UNIT["s"]) + "s")
    return sign + "".join(parts)


def format_rate(rate_per_s: float) -> str:
    """Return `rate_per_s` as text that parses back: '200/s', '2.5/s', '1/m', '20/m'.

    Picks the first of per second, per minute, per hour in which the count has at most
    three decimals; otherwise per second with six significant figures.
    Raises ValueError for negative or non-finite rates.
    """
    if not (math.isfinite(rate_per_s) and rate_per_s >= 0):
        raise ValueError(f"cannot format the rate {rate_per_s!r}: it must be finite and >= 0.")
    for unit in ("s", "m", "h"):
        count = rate_per_s * _NS_PER_UNIT[unit] / 10**9
        if abs(count - round(count, 3)) <= 1e-9 * max(1.0, count):
            return f"{_plain(round(count, 3))}/{unit}"
    return f"{_plain(float(f'{rate_per_s:.6g}'))}/s"


def _duration_ns(body: str, label: str, examples: str) -> Fraction:
    """Sum the components of `body` in nanoseconds; errors name `label`."""
    if not body:
        raise UnitError(f"bad {label}: expected a number followed by a unit {examples}.")
    if body[0] in "+-":
        raise UnitError(f"bad {label}: a duration cannot have a sign {examples}.")
    total_ns, pos = Fraction(0), 0
    while pos < len(body):
        match = _COMPONENT.match(body, pos)
        assert match is not None  # every part of the pattern is optional
        number, unit = match["number"], match["unit"]
        if number is None:
            raise UnitError(f"bad {label}: expected a number before each unit {examples}.")
        if not unit:
            raise UnitError(
                f"bad {label}: every number needs a unit, one of {_UNITS_TEXT} {examples}."
            )
        if unit not in _NS_PER_UNIT:
            raise UnitError(f"bad {label}: unit must be one of {_UNITS_TEXT} {examples}.")
        total_ns += Fraction(number) * _NS_PER_UNIT[unit]
        pos = match.end()
    return total_ns


def _decimal_text(value: int, scale: int) -> str:
    """Return value/scale as a decimal without trailing zeros (scale is a power of ten)."""
    whole, frac = divmod(value, scale)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _plain(value: float) -> str:
    """Return a float as a plain decimal (no exponent, no trailing zeros)."""
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
