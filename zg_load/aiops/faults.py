"""Injected faults, toxiproxy-style: what is set, how a PUT merges, what each fault does.

The fault set is a JSON object of optional keys — `latency {ms, jitter_ms}`,
`error_rate`, `stall {path_prefix, probability}`, `models {name: {available,
error_rate}}`, `hallucination_rate`, `agents {id: {hallucination_rate}}`,
`rate_limit {per_agent_per_s, burst}`. A PUT is validated as a whole (400 naming the
field path, nothing applied) and then merged: a top-level key replaces the one before,
`models` and `agents` merge per name, and a null removes what it names.
Stalled requests wait until the stall is cleared, then are served normally.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

from zg_load.aiops.errors import invalid
from zg_load.aiops.models import MODELS

MAX_LATENCY_MS = 600_000.0
_TOP = ("latency", "error_rate", "stall", "models", "hallucination_rate", "agents", "rate_limit")
_FIELDS: dict[str, tuple[str, ...]] = {
    "latency": ("ms", "jitter_ms"),
    "stall": ("path_prefix", "probability"),
    "models": ("available", "error_rate"),
    "agents": ("hallucination_rate",),
    "rate_limit": ("per_agent_per_s", "burst"),
}
Json = dict[str, object]


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_agent_per_s: float
    burst: float


class Faults:
    """The current fault set, its seeded draws, and the gate that stalled requests wait on."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(f"{seed}:faults")
        self.current: Json = {}
        self._released = asyncio.Event()
        self._released.set()

    def merge(self, body: Json) -> Json:
        """Validate `body` and merge it into the current set; returns the new set."""
        _check(body)
        merged = dict(self.current)
        for key, value in body.items():
            if key in ("models", "agents") and isinstance(value, dict):
                named = dict(_obj(merged.get(key)))
                named.update(value)
                value = {k: v for k, v in named.items() if v is not None} or None
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        self._apply(merged)
        return merged

    def clear(self) -> None:
        self._apply({})
        self._rng = random.Random(f"{self._seed}:faults")

    def release_stalls(self) -> None:
        self._released.set()

    def model_available(self, name: str) -> bool:
        return _obj(_obj(self.current.get("models")).get(name)).get("available", True) is not False

    def model_error_rate(self, name: str) -> float:
        return _num(_obj(_obj(self.current.get("models")).get(name)).get("error_rate"))

    def hallucination_rate(self, agent_id: str | None) -> float:
        agent = _obj(_obj(self.current.get("agents")).get(agent_id or ""))
        if "hallucination_rate" in agent:
            return _num(agent["hallucination_rate"])
        return _num(self.current.get("hallucination_rate"))

    def rate_limit(self) -> RateLimit | None:
        limit = _obj(self.current.get("rate_limit"))
        if "per_agent_per_s" not in limit:
            return None
        rate = _num(limit["per_agent_per_s"])
        return RateLimit(rate, _num(limit.get("burst")) or max(1.0, rate))

    def delay_s(self) -> float:
        """The injected latency for one request, jitter drawn uniformly around it."""
        latency = _obj(self.current.get("latency"))
        ms, jitter_ms = _num(latency.get("ms")), _num(latency.get("jitter_ms"))
        if jitter_ms:
            ms += self._rng.uniform(-jitter_ms, jitter_ms)
        return max(0.0, ms) / 1000

    def injects_error(self) -> bool:
        rate = _num(self.current.get("error_rate"))
        return rate > 0 and self._rng.random() < rate

    async def maybe_stall(self, path: str) -> None:
        """Wait here while a stall matching `path` is set (drawn at its probability)."""
        stall = _obj(self.current.get("stall"))
        if not stall or not path.startswith(str(stall.get("path_prefix", ""))):
            return
        if self._rng.random() < _num(stall.get("probability", 1.0)):
            await self._released.wait()

    def _apply(self, merged: Json) -> None:
        had_stall = "stall" in self.current
        self.current = merged
        if "stall" in merged and not had_stall:
            self._released = asyncio.Event()
        elif "stall" not in merged:
            self._released.set()


def _check(body: Json) -> None:
    for key, value in body.items():
        if key not in _TOP:
            raise invalid(key, f"unknown fault (accepted: {', '.join(_TOP)})")
        if value is None:
            continue
        if key in ("error_rate", "hallucination_rate"):
            _rate(key, value)
        elif key in ("models", "agents"):
            _check_named(key, value)
        else:
            _check_fields(key, value, _FIELDS[key])


def _check_named(key: str, value: object) -> None:
    if not isinstance(value, dict):
        raise invalid(key, "must be an object keyed by name")
    for name, fields in value.items():
        if key == "models" and name not in MODELS:
            raise invalid(f"{key}.{name}", f"unknown model (known: {', '.join(MODELS)})")
        if fields is not None:
            _check_fields(f"{key}.{name}", fields, _FIELDS[key])


def _check_fields(path: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise invalid(path, "must be an object")
    for field, item in value.items():
        where = f"{path}.{field}"
        if field not in allowed:
            raise invalid(where, f"unknown field (accepted: {', '.join(allowed)})")
        if field == "available":
            if not isinstance(item, bool):
                raise invalid(where, "must be true or false")
        elif field == "path_prefix":
            if not isinstance(item, str) or not item.startswith("/"):
                raise invalid(where, "must be a path starting with /")
        elif field in ("error_rate", "hallucination_rate", "probability"):
            _rate(where, item)
        else:
            _amount(where, item)
    if path == "rate_limit" and "per_agent_per_s" not in value:
        raise invalid("rate_limit.per_agent_per_s", "is required")
    if path == "rate_limit" and _num(value["per_agent_per_s"]) <= 0:
        raise invalid("rate_limit.per_agent_per_s", "must be > 0")


def _rate(field: str, value: object) -> None:
    if not _is_number(value) or not 0 <= float(value) <= 1:  # type: ignore[arg-type]
        raise invalid(field, "must be a number between 0 and 1")


def _amount(field: str, value: object) -> None:
    if not _is_number(value) or not 0 <= float(value) <= MAX_LATENCY_MS:  # type: ignore[arg-type]
        raise invalid(field, f"must be a number between 0 and {MAX_LATENCY_MS:.0f}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _obj(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _num(value: object) -> float:
    return float(value) if _is_number(value) else 0.0  # type: ignore[arg-type]
