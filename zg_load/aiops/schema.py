"""Request bodies: JSON objects in, validated frozen values out.

Validation is strict: unknown fields, wrong types (a bool is not a number), non-finite
or out-of-range numbers are refused with a 400 whose message starts with the field's
path (`task.type`, `fallbacks[1]`, `results.agent-a.claims.x`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from zg_load.aiops.anomalies import SEVERITIES
from zg_load.aiops.conflicts import DEFAULT_TOLERANCE
from zg_load.aiops.errors import invalid
from zg_load.aiops.knowledge import Fact
from zg_load.aiops.models import DEFAULT_CHAIN, MODELS
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


def _refuse_unknown(body: dict[str, object], known: tuple[str, ...], prefix: str = "") -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise invalid(prefix + unknown[0], f"unknown field (accepted: {', '.join(known)})")


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


def _text(body: dict[str, object], field: str, max_chars: int, prefix: str = "") -> str:
    value = body.get(field)
    if value is None:
        raise invalid(prefix + field, "is required")
    if not isinstance(value, str):
        raise invalid(prefix + field, "must be a string")
    if len(value) > max_chars:
        raise invalid(prefix + field, f"must be at most {max_chars} characters")
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


@dataclass(frozen=True, slots=True)
class TaskRequest:
    approval_id: str | None
    agent_id: str | None
    task_type: str
    description: str
    task_input: object
    # True: must hallucinate; False or None: only the seeded hallucination rate decides.
    hallucinate: bool
    chain: tuple[str, ...]
    timeout_s: float | None
    correct: bool


@dataclass(frozen=True, slots=True)
class AnomalyRequest:
    anomaly_type: str
    severity: str
    details: dict[str, object]
    timestamp: str | None


_TASK_FIELDS = ("approval_id", "agent_id", "task", "model", "fallbacks", "timeout_s", "correct")


def parse_task(body: dict[str, object], agent_id: str | None = None) -> TaskRequest:
    """A task body; `agent_id` from the path wins over the body's."""
    _refuse_unknown(body, _TASK_FIELDS)
    task = _object(body, "task")
    _refuse_unknown(task, ("type", "description", "input", "hallucinate"), "task.")
    return TaskRequest(
        approval_id=_optional_text(body, "approval_id", MAX_AGENT_ID_CHARS),
        agent_id=agent_id or _optional_text(body, "agent_id", MAX_AGENT_ID_CHARS),
        task_type=_text(task, "type", MAX_AGENT_ID_CHARS, "task."),
        description=_text(task, "description", MAX_TEXT_CHARS, "task."),
        task_input=task.get("input"),
        hallucinate=_optional_bool(task, "hallucinate", "task.") is True,
        chain=_chain(body),
        timeout_s=_timeout_s(body),
        correct=_optional_bool(body, "correct") is True,
    )


def parse_conflicts(body: dict[str, object]) -> tuple[dict[str, dict[str, Fact]], float]:
    """`(claims by agent, relative tolerance)` of a conflicts-check body."""
    _refuse_unknown(body, ("results", "tolerance"))
    results = _object(body, "results")
    claims_by_agent = {agent: _agent_claims(agent, value) for agent, value in results.items()}
    tolerance = body.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise invalid("tolerance", "must be a number between 0 and 1")
    if not 0 <= tolerance <= 1:
        raise invalid("tolerance", "must be a number between 0 and 1")
    return claims_by_agent, float(tolerance)


def parse_anomaly(body: dict[str, object]) -> AnomalyRequest:
    _refuse_unknown(body, ("type", "severity", "details", "timestamp"))
    severity = _text(body, "severity", 16)
    if severity not in SEVERITIES:
        raise invalid("severity", f"must be one of {', '.join(SEVERITIES)}")
    details = _object(body, "details") if body.get("details") is not None else {}
    return AnomalyRequest(
        anomaly_type=_text(body, "type", MAX_AGENT_ID_CHARS),
        severity=severity,
        details=details,
        timestamp=_optional_text(body, "timestamp", 64),
    )


def check_agent_id(agent_id: str) -> str:
    if not 0 < len(agent_id) <= MAX_AGENT_ID_CHARS:
        raise invalid("agent_id", f"must be 1 to {MAX_AGENT_ID_CHARS} characters")
    return agent_id


def _chain(body: dict[str, object]) -> tuple[str, ...]:
    model = _optional_text(body, "model", 64)
    if model is not None and model not in MODELS:
        raise invalid("model", f"unknown model {model!r} (known: {', '.join(MODELS)})")
    fallbacks = body.get("fallbacks")
    if fallbacks is None:
        return (model,) if model else DEFAULT_CHAIN
    if not isinstance(fallbacks, list):
        raise invalid("fallbacks", "must be a list of model names")
    for i, name in enumerate(fallbacks):
        if not isinstance(name, str) or name not in MODELS:
            raise invalid(f"fallbacks[{i}]", f"must be a model name ({', '.join(MODELS)})")
    chain = (model or DEFAULT_CHAIN[0], *fallbacks)
    if len(set(chain)) != len(chain):
        raise invalid("fallbacks", "must not name a model twice")
    return chain


def _timeout_s(body: dict[str, object]) -> float | None:
    value = body.get("timeout_s")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
        raise invalid("timeout_s", "must be a number of seconds in (0, 600]")
    return float(value)


def _agent_claims(agent: str, value: object) -> dict[str, Fact]:
    if not isinstance(value, dict) or not isinstance(value.get("claims"), dict):
        raise invalid(f"results.{agent}.claims", "must be an object of claims")
    claims: dict[str, Fact] = {}
    for key, claim in value["claims"].items():
        if not isinstance(claim, str | int | float | bool):
            raise invalid(f"results.{agent}.claims.{key}", "must be a string, number or boolean")
        if isinstance(claim, float) and not math.isfinite(claim):
            raise invalid(f"results.{agent}.claims.{key}", "must be a finite number")
        claims[key] = claim
    return claims


def _object(body: dict[str, object], field: str) -> dict[str, object]:
    value = body.get(field)
    if value is None:
        raise invalid(field, "is required")
    if not isinstance(value, dict):
        raise invalid(field, "must be an object")
    return value


def _optional_bool(body: dict[str, object], field: str, prefix: str = "") -> bool | None:
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise invalid(prefix + field, "must be true or false")
    return value


def parse_settlement(body: dict[str, object]) -> float:
    """The actual cost, in USD, that settles an approval."""
    _refuse_unknown(body, ("actual_cost",))
    return _usd(body, "actual_cost")
