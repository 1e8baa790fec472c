"""What validation reads of one task or conflict-check answer: small frozen records.

``task_seen`` and ``conflict_seen`` read an answer with the request's planned ground truth
(``Planned.truth``). Pure: no I/O, no clock; times are the engine's run-relative offsets. A
malformed answer body never raises; the record then says what could not be read (None).
The observer folds each record into counts and histograms at once and keeps none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the plan module is light, but the records need only its type
    from zg_load.plan import Planned


@dataclass(frozen=True, slots=True)
class TaskSeen:
    """One task and what its answer said (None: no answer, or the field was missing)."""

    phase: int
    op: str
    priority: int
    outcome: str
    intended_ns: int
    done_ns: int
    injected: bool | None  # the generator made it hallucinate (None: no ground truth)
    correct_requested: bool
    flagged: bool | None
    corrected: bool
    fallback_index: int | None
    model: str | None
    quality: float | None


@dataclass(frozen=True, slots=True)
class ConflictFound:
    """One conflict as the service reported it."""

    key: str
    resolved_value: Any
    dissenting: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConflictSeen:
    """One conflict check: the injected truth and the service's report."""

    phase: int
    outcome: str
    intended_ns: int
    done_ns: int
    agents: tuple[str, ...]
    truth: dict[str, Any]  # {"conflict": bool, "key", "true_value", "dissenter"}
    found: tuple[ConflictFound, ...]
    resolved_count: int | None
    resolution_time_ms: float | None


def task_seen(req: Planned, outcome: str, body: dict[str, Any], done_ns: int) -> TaskSeen:
    truth = req.truth if isinstance(req.truth, dict) else {}
    options = req.payload.get("options", {}) if isinstance(req.payload, dict) else {}
    checks = body.get("checks")
    check = checks.get("hallucination") if isinstance(checks, dict) else None
    flagged = check.get("flagged") if isinstance(check, dict) else None
    index, quality = body.get("fallback_index"), body.get("quality")
    return TaskSeen(
        phase=req.phase,
        op=req.op,
        priority=req.priority,
        outcome=outcome,
        intended_ns=req.intended_ns,
        done_ns=done_ns,
        injected=truth["hallucinated"] if isinstance(truth.get("hallucinated"), bool) else None,
        correct_requested=bool(options.get("correct")),
        flagged=flagged if isinstance(flagged, bool) else None,
        corrected=bool(body.get("corrected_output")),
        fallback_index=index if isinstance(index, int) else None,
        model=body["model_used"] if isinstance(body.get("model_used"), str) else None,
        quality=_finite(quality),
    )


def conflict_seen(req: Planned, outcome: str, body: dict[str, Any], done_ns: int) -> ConflictSeen:
    results = req.payload.get("results", {}) if isinstance(req.payload, dict) else {}
    found = []
    conflicts = body.get("conflicts")
    for item in conflicts if isinstance(conflicts, list) else ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            dissent = item.get("dissenting_agents")
            dissent = dissent if isinstance(dissent, list) else ()
            found.append(
                ConflictFound(item["key"], item.get("resolved_value"), tuple(map(str, dissent)))
            )
    resolved, took = body.get("resolved_count"), body.get("resolution_time_ms")
    return ConflictSeen(
        phase=req.phase,
        outcome=outcome,
        intended_ns=req.intended_ns,
        done_ns=done_ns,
        agents=tuple(sorted(results)),
        truth=req.truth if isinstance(req.truth, dict) else {"conflict": False},
        found=tuple(found),
        resolved_count=resolved if isinstance(resolved, int) else None,
        resolution_time_ms=_finite(took),
    )


def _finite(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else (text, inf, nan, an integer
    too large for a float, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
