"""Request bodies: JSON objects in, validated frozen values out.

Validation is strict: unknown fields, wrong types (a bool is not a number), non-finite
or out-of-range numbers are refused with a 400 whose message starts with the field name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from zg_load.aiops.errors import invalid
from zg_load.aiops.window import parse_window_s

MAX_USD = 1e9
MAX_TEXT_CHARS = 16_384
MAX_AGENT_ID_CHARS = 256
PRIORITIES = range(1, 6)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    task_description: str
    estimated_cost_usd: float
    priority: int
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class BudgetRequest:
    max_usd: float
    soft_usd: float | None
    window: str | None


def decode_object(body: bytes) -> dict[str, object]:
    """The body as a JSON object, or a 400 naming `body`."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("body", "must be valid JSON") from None
    if not isinstance(value, dict):
        raise invalid("body", "must be a JSON object")
    return value


def parse_approval(body: dict[str, object]) -> ApprovalRequest:
    _refuse_unknown(body, ("task_description", "estimated_cost", "priority", "agent_id"))
    return ApprovalRequest(
        task_description=_text(body, "task_description", MAX_TEXT_CHARS),
        estimated_cost_usd=_usd(body, "estimated_cost"),
        priority=_priority(body),
        agent_id=_optional_text(body, "agent_id", MAX_AGENT_ID_CHARS),
    )


def parse_budget(body: dict[str, object]) -> BudgetRequest:
    _refuse_unknown(body, ("max_usd", "soft_usd", "window"))
    max_usd = _usd(body, "max_usd")
    soft_usd = _usd(body, "soft_usd") if body.get("soft_usd") is not None else None
    if soft_usd is not None and soft_usd > max_usd:
        raise invalid("soft_usd", "must not exceed max_usd")
    window = _optional_text(body, "window", 32)
    if window is not None:
        _window(window)
    return BudgetRequest(max_usd=max_usd, soft_usd=soft_usd, window=window)


def _refuse_unknown(body: dict[str, object], known: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise invalid(unknown[0], f"unknown field (accepted: {', '.join(known)})")


def _usd(body: dict[str, object], field: str) -> float:
    value = body.get(field)
    if value is None:
        raise invalid(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(field, "must be a number of USD")
    if not math.isfinite(value) or not 0 <= value <= MAX_USD:
        raise invalid(field, f"must be a finite number of USD between 0 and {MAX_USD:.0f}")
    return float(value)


def _priority(body: dict[str, object]) -> int:
    value = body.get("priority")
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITIES:
        raise invalid("priority", "must be an integer 1..5")
    return value


def _text(body: dict[str, object], field: str, max_chars: int) -> str:
    value = body.get(field)
    if value is None:
        raise invalid(field, "is required")
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if len(value) > max_chars:
        raise invalid(field, f"must be at most {max_chars} characters")
    return value


def _optional_text(body: dict[str, object], field: str, max_chars: int) -> str | None:
    if body.get(field) is None:
        return None
    return _text(body, field, max_chars)


def _window(text: str) -> None:
    try:
        parse_window_s(text)
    except ValueError as exc:
        raise invalid("window", str(exc)) from None
