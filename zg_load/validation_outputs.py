"""Validation of output checks: the agent-hallucination and conflicting-outputs sections.

Pure: observed tasks and conflict checks, with the ground truth the generator injected,
in, folded one by one into tallies (counts and HDR histograms of microseconds, so memory
does not grow with the run); one JSON-ready dict per section out (None when the section
does not apply). The service's verdicts are scored against that truth, never against
the service's own view of itself; see the definitions on each function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zg_load.validation_common import Latencies, digest_ms, latency_us, ratio, run_notes
from zg_load.validation_records import ConflictFound, ConflictSeen, TaskSeen

VALUE_TOLERANCE = 1e-9  # relative: a resolved number equals the truth up to float noise
# The service's own resolution time is read from 0 to 1 hour (ms): a figure outside that is
# not a time, and one far above it would cost the histogram an exact overflow entry each.
SERVICE_TIME_READ_MS = 3_600_000


class HallucinationTally:
    """What ``hallucination_section`` reports, counted task by task (``add``)."""

    def __init__(self) -> None:
        self.judged = 0  # tasks with ground truth (``injected`` not None)
        self.any_injected = False  # any judged task injected, answered or not
        self.answered = 0
        self.injected = 0  # answered ok and injected
        self.detected = 0
        self.false_positives = 0
        self.corrections_requested = 0
        self.corrections_applied = 0
        self.time_to_flag = Latencies()  # µs, detected tasks
        self.response_time = Latencies()  # µs, judged tasks answered ok

    def add(self, t: TaskSeen) -> None:
        if t.injected is None:
            return
        self.judged += 1
        self.any_injected = self.any_injected or t.injected
        if t.outcome != "ok":
            return
        self.answered += 1
        took_us = latency_us(t.intended_ns, t.done_ns)
        self.response_time.add(took_us)
        if not t.injected:
            self.false_positives += bool(t.flagged)
            return
        self.injected += 1
        if t.flagged:
            self.detected += 1
            self.corrections_requested += t.correct_requested
            self.corrections_applied += t.corrected
            self.time_to_flag.add(took_us)


def hallucination_section(tally: HallucinationTally) -> dict[str, Any] | None:
    """The seed's hallucination validation, measured; None when no task was injected.

    Over tasks answered ok: ``total_hallucinations`` injected by the generator,
    ``hallucinations_detected`` of them flagged by the service (true positives),
    ``false_positives`` flagged without injection; ``detection_accuracy`` = recall =
    detected / injected; ``precision`` = detected / flagged (None when nothing was
    flagged); ``corrections_applied``: detected tasks whose answer carries a corrected
    output; ``time_to_flag``: from the task's intended start to the flagged answer
    (the check runs inline, so this is the time until the user holds the verdict).
    Latencies are p50, p99 (within HDR precision) and max of whole microseconds.
    """
    if not tally.any_injected:
        return None
    detected, false_pos = tally.detected, tally.false_positives
    return {
        "total_tasks": tally.judged,
        "answered_tasks": tally.answered,
        "total_hallucinations": tally.injected,
        "hallucinations_detected": detected,
        "false_positives": false_pos,
        "missed": tally.injected - detected,
        "detection_accuracy": ratio(detected, tally.injected),
        "precision": ratio(detected, detected + false_pos),
        "corrections_requested": tally.corrections_requested,
        "corrections_applied": tally.corrections_applied,
        "time_to_flag": digest_ms(tally.time_to_flag),
        "response_time": digest_ms(tally.response_time),
    }


def hallucination_detect_s(section: Mapping[str, Any]) -> tuple[bool, float | None]:
    """(applies, seconds): the slowest flag of an injected hallucination; None if none was."""
    if not section["total_hallucinations"]:
        return False, None
    worst_ms = section["time_to_flag"]["max_ms"] if section["hallucinations_detected"] else None
    return True, None if worst_ms is None else round(worst_ms / 1000, 6)


class ConflictTally:
    """What ``conflicts_section`` reports, counted check by check (``add``)."""

    def __init__(self) -> None:
        self.checks = 0
        self.answered = 0
        self.agents: set[str] = set()  # as many as the scenario names
        self.injected = 0
        self.detected = 0
        self.resolved = 0
        self.correct = 0
        self.false_conflicts = 0
        self.consistent = 0
        self.resolution_time = Latencies()  # µs, detected conflicts
        self.service_resolution_time = Latencies()  # µs, the service's own figure for them

    def add(self, c: ConflictSeen) -> None:
        self.checks += 1
        self.agents.update(c.agents)
        if c.outcome != "ok":
            return
        self.answered += 1
        spurious = _spurious(c)
        self.false_conflicts += spurious
        if not c.truth.get("conflict"):
            self.consistent += not spurious
            return
        self.injected += 1
        found = _on_key(c)
        if found is None:
            return
        correct = _correct(c, found)
        self.consistent += correct and not spurious
        self.detected += 1
        self.resolution_time.add(latency_us(c.intended_ns, c.done_ns))
        took_ms = c.resolution_time_ms
        if took_ms is not None and 0 <= took_ms <= SERVICE_TIME_READ_MS:
            self.service_resolution_time.add(round(took_ms * 1000))
        if found.resolved_value is not None:
            self.resolved += 1
            self.correct += correct


def conflicts_section(
    tally: ConflictTally, target_state: Mapping[str, Any] | None, start_epoch_s: float
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
    ``resolution_time_ms`` beside it, at whole microseconds, read from 0 to 1 hour);
    ``notifications``:
    ``conflict_detected`` notices written during the run (the target returns at most its
    page size). Latencies are p50, p99 (within HDR precision) and max.
    """
    if not tally.checks:
        return None
    notes = run_notes(target_state, start_epoch_s)
    return {
        "checks": tally.checks,
        "answered_checks": tally.answered,
        "agents_involved": len(tally.agents),
        "conflicts_injected": tally.injected,
        "conflicts_detected": tally.detected,
        "conflicts_resolved": tally.resolved,
        "false_conflicts": tally.false_conflicts,
        "detection_rate": ratio(tally.detected, tally.injected),
        "resolution_quality": ratio(tally.correct, tally.injected),
        "consistency_achieved": ratio(tally.consistent, tally.answered),
        "resolution_time": digest_ms(tally.resolution_time),
        "service_resolution_time_p99_ms": digest_ms(tally.service_resolution_time)["p99_ms"],
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


def same_value(a: object, b: object) -> bool:
    """Numbers equal up to float noise; text ignoring case; anything else exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        try:
            return abs(a - b) <= VALUE_TOLERANCE * max(abs(a), abs(b), 1.0)
        except OverflowError:  # an integer beyond any float: only equal is equal
            return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return a == b
