"""What validation keeps of each answer: the engine's observer and its compact records.

``Observations.observe(req, answer, done_ns)`` is the engine's observer hook: it sees
every answer once, with the request's planned ground truth (``Planned.truth``), and
keeps one small frozen record per request of the kinds validation judges: approvals,
tasks (any of the task operations) and conflict checks. Pure: no I/O, no clock; the
times are the engine's run-relative offsets. A malformed answer body never raises; the
record then says what could not be read (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the client module loads aiohttp; validation must not
    from zg_load.client import Answer
    from zg_load.plan import Planned

TASK_OPS = ("task", "agent_task", "fallback_task")


@dataclass(frozen=True, slots=True)
class ApprovalSeen:
    """One approval request and how it was answered."""

    phase: int
    priority: int
    cost_usd: float
    outcome: str  # ok / refused / error / timeout / transport
    reason: str | None  # refusal reason: budget_exceeded / overloaded / rate_limited
    intended_ns: int
    done_ns: int


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


@dataclass
class Observations:
    """Every answer validation needs, in completion order; see the module docstring."""

    approvals: list[ApprovalSeen] = field(default_factory=list)
    tasks: list[TaskSeen] = field(default_factory=list)
    conflicts: list[ConflictSeen] = field(default_factory=list)

    def observe(self, req: Planned, answer: Answer, done_ns: int) -> None:
        """The engine's observer: keep what validation needs of one answer."""
        outcome = answer.outcome.value
        body = answer.body if isinstance(answer.body, dict) and outcome == "ok" else {}
        if req.op == "approval":
            self.approvals.append(
                ApprovalSeen(
                    req.phase,
                    req.priority,
                    req.cost_usd,
                    outcome,
                    answer.reason if outcome == "refused" else None,
                    req.intended_ns,
                    done_ns,
                )
            )
        elif req.op in TASK_OPS:
            self.tasks.append(_task(req, outcome, body, done_ns))
        elif req.op == "conflict_check":
            self.conflicts.append(_conflict(req, outcome, body, done_ns))


def _task(req: Planned, outcome: str, body: dict[str, Any], done_ns: int) -> TaskSeen:
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
        quality=float(quality) if isinstance(quality, int | float) else None,
    )


def _conflict(req: Planned, outcome: str, body: dict[str, Any], done_ns: int) -> ConflictSeen:
    results = req.payload.get("results", {}) if isinstance(req.payload, dict) else {}
    found = []
    for item in body.get("conflicts") or ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            dissent = item.get("dissenting_agents") or ()
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
        resolution_time_ms=float(took) if isinstance(took, int | float) else None,
    )


def model_usage(tasks: Sequence[TaskSeen], interval_ns: int) -> list[dict[str, Any]]:
    """Per interval (by completion time): how many tasks each model answered."""
    counts: dict[int, dict[str, int]] = {}
    for t in tasks:
        if t.model is None:
            continue
        row = counts.setdefault(t.done_ns // interval_ns, {})
        row[t.model] = row.get(t.model, 0) + 1
    return [
        {
            "start_s": i * interval_ns / 1e9,
            "end_s": (i + 1) * interval_ns / 1e9,
            "models": counts[i],
        }
        for i in sorted(counts)
    ]
