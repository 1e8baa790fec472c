"""Validation of output checks: the agent-hallucination and conflicting-outputs sections.

Pure: observed tasks and conflict checks, with the ground truth the generator injected,
in; one JSON-ready dict per section out (None when the section does not apply). The
service's verdicts are scored against that truth, never against the service's own
view of itself; see the definitions on each function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zg_load.validation_common import digest_ms, nearest_rank, ratio, run_notes
from zg_load.validation_observe import ConflictFound, ConflictSeen, TaskSeen

VALUE_TOLERANCE = 1e-9  # relative: a resolved number equals the truth up to float noise


def hallucination_section(tasks: Sequence[TaskSeen]) -> dict[str, Any] | None:
    """The seed's hallucination validation, measured; None when no task was injected.

    Over tasks answered ok: ``total_hallucinations`` injected by the generator,
    ``hallucinations_detected`` of them flagged by the service (true positives),
    ``false_positives`` flagged without injection; ``detection_accuracy`` = recall =
    detected / injected; ``precision`` = detected / flagged (None when nothing was
    flagged); ``corrections_applied``: detected tasks whose answer carries a corrected
    output; ``time_to_flag``: from the task's intended start to the flagged answer
    (the check runs inline, so this is the time until the user holds the verdict).
    """
    judged = [t for t in tasks if t.injected is not None]
    if not any(t.injected for t in judged):
        return None
    answered = [t for t in judged if t.outcome == "ok"]
    injected = [t for t in answered if t.injected]
    detected = [t for t in injected if t.flagged]
    false_pos = [t for t in answered if not t.injected and t.flagged]
    flagged = len(detected) + len(false_pos)
    return {
        "total_tasks": len(judged),
        "answered_tasks": len(answered),
        "total_hallucinations": len(injected),
        "hallucinations_detected": len(detected),
        "false_positives": len(false_pos),
        "missed": len(injected) - len(detected),
        "detection_accuracy": ratio(len(detected), len(injected)),
        "precision": ratio(len(detected), flagged),
        "corrections_requested": sum(1 for t in detected if t.correct_requested),
        "corrections_applied": sum(1 for t in detected if t.corrected),
        "time_to_flag": digest_ms([t.done_ns - t.intended_ns for t in detected]),
        "response_time": digest_ms([t.done_ns - t.intended_ns for t in answered]),
    }


def hallucination_detect_s(section: Mapping[str, Any]) -> tuple[bool, float | None]:
    """(applies, seconds): the slowest flag of an injected hallucination; None if none was."""
    if not section["total_hallucinations"]:
        return False, None
    worst_ms = section["time_to_flag"]["max_ms"] if section["hallucinations_detected"] else None
    return True, None if worst_ms is None else round(worst_ms / 1000, 6)


def conflicts_section(
    checks: Sequence[ConflictSeen], target_state: Mapping[str, Any] | None, start_epoch_s: float
) -> dict[str, Any] | None:
    """The seed's conflict validation, measured; None when no conflict check ran.

    Over checks answered ok: ``conflicts_injected`` (one agent made to dissent on one
    claim); ``conflicts_detected``: of those, the ones where the service reported a
    conflict on the injected key; ``conflicts_resolved``: detected ones it gave a
    resolved value; ``resolution_quality``: injected conflicts resolved to the true
    (majority) value with exactly the injected dissenter named, over all injected;
    ``false_conflicts``: conflicts reported that were not injected;
    ``consistency_achieved``: share of checks after which applying the service's
    resolutions leaves every agent agreeing with the truth (a correct resolution of
    the injected conflict, and no other conflict reported); ``resolution_time``: from
    the check's intended start to its answer, for detected conflicts (the service's own
    ``resolution_time_ms`` beside it); ``notifications``: ``conflict_detected`` notices
    written during the run (the target returns at most its page size).
    """
    if not checks:
        return None
    answered = [c for c in checks if c.outcome == "ok"]
    injected = [c for c in answered if c.truth.get("conflict")]
    hits = [(c, _on_key(c)) for c in injected]
    detected = [(c, f) for c, f in hits if f is not None]
    resolved = [(c, f) for c, f in detected if f.resolved_value is not None]
    correct = [c for c, f in resolved if _correct(c, f)]
    notes = run_notes(target_state, start_epoch_s)
    agents = {a for c in checks for a in c.agents}
    service_ms = [c.resolution_time_ms for c, _ in detected if c.resolution_time_ms is not None]
    return {
        "checks": len(checks),
        "answered_checks": len(answered),
        "agents_involved": len(agents),
        "conflicts_injected": len(injected),
        "conflicts_detected": len(detected),
        "conflicts_resolved": len(resolved),
        "false_conflicts": sum(_spurious(c) for c in answered),
        "detection_rate": ratio(len(detected), len(injected)),
        "resolution_quality": ratio(len(correct), len(injected)),
        "consistency_achieved": ratio(sum(_consistent(c) for c in answered), len(answered)),
        "resolution_time": digest_ms([c.done_ns - c.intended_ns for c, _ in detected]),
        "service_resolution_time_p99_ms": nearest_rank(service_ms, 99),
        "notifications": None
        if notes is None
        else sum(1 for n in notes if n.kind == "conflict_detected"),
    }


def conflicts_detect_s(section: Mapping[str, Any]) -> tuple[bool, float | None]:
    """(applies, seconds): the slowest answer that detected an injected conflict."""
    if not section["conflicts_injected"]:
        return False, None
    worst_ms = section["resolution_time"]["max_ms"] if section["conflicts_detected"] else None
    return True, None if worst_ms is None else round(worst_ms / 1000, 6)


def _on_key(check: ConflictSeen) -> ConflictFound | None:
    return next((f for f in check.found if f.key == check.truth.get("key")), None)


def _correct(check: ConflictSeen, found: ConflictFound) -> bool:
    truth = check.truth
    return same_value(found.resolved_value, truth.get("true_value")) and found.dissenting == (
        truth.get("dissenter"),
    )


def _spurious(check: ConflictSeen) -> int:
    key = check.truth.get("key") if check.truth.get("conflict") else None
    return sum(1 for f in check.found if f.key != key)


def _consistent(check: ConflictSeen) -> bool:
    if _spurious(check):
        return False
    if not check.truth.get("conflict"):
        return True
    found = _on_key(check)
    return found is not None and _correct(check, found)


def same_value(a: object, b: object) -> bool:
    """Numbers equal up to float noise; text ignoring case; anything else exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= VALUE_TOLERANCE * max(abs(a), abs(b), 1.0)
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return a == b
