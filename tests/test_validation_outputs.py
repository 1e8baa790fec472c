"""Validation of output checks and downgrades on hand-made observations, exactly."""

from __future__ import annotations

from typing import Any

from zg_load.client import Answer
from zg_load.outcome import Outcome
from zg_load.plan import Planned
from zg_load.scenario import parse_scenario
from zg_load.validation import validate, validation_metrics
from zg_load.validation_downgrade import downgrade_section, outage
from zg_load.validation_observe import ConflictFound, ConflictSeen, Observations, TaskSeen
from zg_load.validation_outputs import conflicts_section, hallucination_section

START = 1_700_000_000.0
MS = 1_000_000


def task(
    injected: bool | None,
    flagged: bool | None,
    *,
    latency_ms: int = 10,
    outcome: str = "ok",
    corrected: bool = False,
    intended_ms: int = 0,
    fallback_index: int | None = 0,
    model: str | None = "premium",
    quality: float | None = 0.95,
) -> TaskSeen:
    return TaskSeen(
        0,
        "task",
        3,
        outcome,
        intended_ms * MS,
        (intended_ms + latency_ms) * MS,
        injected,
        corrected,
        flagged,
        corrected,
        fallback_index,
        model,
        quality,
    )


def test_hallucination_recall_precision_and_time_to_flag() -> None:
    tasks = [
        task(True, True, latency_ms=10, corrected=True),
        task(True, True, latency_ms=30),
        task(True, False),  # missed
        task(False, True),  # false positive
        task(False, False),
        task(True, None, outcome="error"),  # unanswered: not judged
        task(None, True),  # no ground truth: not judged
    ]
    section = hallucination_section(tasks)
    assert section == {
        "total_tasks": 6,
        "answered_tasks": 5,
        "total_hallucinations": 3,
        "hallucinations_detected": 2,
        "false_positives": 1,
        "missed": 1,
        "detection_accuracy": 0.666667,
        "precision": 0.666667,
        "corrections_requested": 1,
        "corrections_applied": 1,
        "time_to_flag": {"p50_ms": 10.0, "p99_ms": 30.0, "max_ms": 30.0},
        "response_time": {"p50_ms": 10.0, "p99_ms": 30.0, "max_ms": 30.0},
    }
    assert hallucination_section([task(False, False)]) is None


def check(
    truth: dict[str, Any], found: tuple[ConflictFound, ...], latency_ms: int = 2
) -> ConflictSeen:
    return ConflictSeen(0, "ok", 0, latency_ms * MS, ("a", "b", "c"), truth, found, len(found), 0.1)


def test_conflicts_scored_against_the_injected_truth() -> None:
    truth = {"conflict": True, "key": "risk_level", "true_value": "low", "dissenter": "c"}
    checks = [
        check(truth, (ConflictFound("risk_level", "LOW", ("c",)),), latency_ms=3),  # right
        check(truth, (ConflictFound("risk_level", "high", ("a", "b")),)),  # wrong value
        check(truth, ()),  # missed
        check({"conflict": False}, (ConflictFound("headcount", 12, ("a",)),)),  # invented
        check({"conflict": False}, ()),
    ]
    state = {
        "notifications": [
            {"id": 1, "kind": "conflict_detected", "created_at": "2023-11-14T22:13:21Z"}
        ]
    }
    section = conflicts_section(checks, state, START)
    assert section == {
        "checks": 5,
        "answered_checks": 5,
        "agents_involved": 3,
        "conflicts_injected": 3,
        "conflicts_detected": 2,
        "conflicts_resolved": 2,
        "false_conflicts": 1,
        "detection_rate": 0.666667,
        "resolution_quality": 0.333333,
        "consistency_achieved": 0.4,
        "resolution_time": {"p50_ms": 2.0, "p99_ms": 3.0, "max_ms": 3.0},
        "service_resolution_time_p99_ms": 0.1,
        "notifications": 1,
    }
    assert conflicts_section([], None, START) is None


DOWNGRADE = """
name = "d"
[[mixes.m]]
op = "fallback_task"
task = "t"
[[phases]]
name = "up"
duration = "2s"
[[phases.streams]]
rate = "5/s"
mix = "m"
[[phases]]
name = "down"
duration = "3s"
setup = { faults = { models = { premium = { available = false } } } }
[[phases.streams]]
rate = "5/s"
mix = "m"
[[phases]]
name = "back"
duration = "2s"
setup = { clear_faults = true }
[[phases.streams]]
rate = "5/s"
mix = "m"
"""


def test_outage_spans() -> None:
    span = outage(parse_scenario(DOWNGRADE, "d.toml"))
    assert span is not None
    assert (span.models, span.start_s, span.end_s, span.cleared) == (("premium",), 2.0, 5.0, True)
    revived = DOWNGRADE.replace(
        "setup = { clear_faults = true }",
        "setup = { faults = { models = { premium = { available = true } } } }",
    )
    assert outage(parse_scenario(revived, "d.toml")) == span
    never = DOWNGRADE.replace("setup = { clear_faults = true }\n", "")
    kept = outage(parse_scenario(never, "d.toml"))
    assert kept is not None and (kept.end_s, kept.cleared) == (7.0, False)
    assert (
        outage(parse_scenario(DOWNGRADE.replace("available = false", "error_rate = 0.5"), "x"))
        is None
    )


def test_downgrade_section() -> None:
    tasks = [
        task(None, None, intended_ms=1000),  # premium, before
        task(None, None, intended_ms=2100, fallback_index=1, model="standard", quality=0.85),
        task(None, None, intended_ms=3000, fallback_index=1, model="standard", quality=0.85),
        task(None, None, intended_ms=4000, outcome="error", model=None, quality=None),
        task(None, None, intended_ms=5200),  # premium again, answered at 5.21 s
    ]
    notes = [
        {"id": 1, "kind": "model_downgraded", "created_at": "2023-11-14T22:13:22.105Z"},
        {"id": 2, "kind": "model_restored", "created_at": "2023-11-14T22:13:25.205Z"},
    ]
    state = {
        "notifications": notes,
        "status": {"models": [{"name": "premium", "recovery_attempts": 7}]},
    }
    section = downgrade_section(tasks, parse_scenario(DOWNGRADE, "d.toml"), state, START)
    assert section == {
        "models_down": ["premium"],
        "outage_start_s": 2.0,
        "outage_end_s": 5.0,
        "tasks_attempted": 5,
        "tasks_during_outage": 3,
        "fallbacks_used": 2,
        "models_used_during_outage": {"standard": 2},
        "reference_quality": 0.95,
        "outage_quality": 0.85,
        "quality_degradation": 0.105263,
        "user_notifications": 2,
        "downgrade_notified": True,
        "restore_notified": True,
        "recovery_attempts": 7,
        "service_continuity": 0.8,
        "all_tasks_completed": False,
        "time_to_detect_s": 0.105,  # the notice (2.105 s) came before the answer (2.11 s)
        "detected_by": "notification",
        "premium_restored": True,
        "time_to_restore_s": 0.21,
    }
    silent = downgrade_section(tasks, parse_scenario(DOWNGRADE, "d.toml"), {}, START)
    assert silent is not None
    assert (silent["time_to_detect_s"], silent["detected_by"]) == (0.11, "fallback answer")
    assert silent["user_notifications"] is None and silent["recovery_attempts"] is None


def answer(body: Any, outcome: Outcome = Outcome.OK, reason: str | None = None) -> Answer:
    return Answer(outcome, 200 if outcome is Outcome.OK else 503, reason, body)


def test_observer_keeps_truth_and_verdicts() -> None:
    obs = Observations()
    approval = Planned(5 * MS, 0, "approval", 2, 2.8, "analysis", "a")
    obs.observe(approval, answer(None, Outcome.REFUSED, "budget_exceeded"), 9 * MS)
    payload = {"task": {"type": "x"}, "options": {"correct": True}}
    hallucinated = Planned(0, 1, "agent_task", 3, 0.0, "t", "a", payload, {"hallucinated": True})
    body = {
        "checks": {"hallucination": {"flagged": True}},
        "corrected_output": "fixed",
        "fallback_index": 1,
        "model_used": "standard",
        "quality": 0.85,
    }
    obs.observe(hallucinated, answer(body), 20 * MS)
    obs.observe(hallucinated, answer("not json", Outcome.ERROR), 21 * MS)
    conflict = Planned(
        0,
        0,
        "conflict_check",
        3,
        0.0,
        "c",
        "a",
        {"results": {"b": {}, "a": {}}},
        {"conflict": True, "key": "k", "true_value": 1, "dissenter": "b"},
    )
    found = {
        "conflicts": [{"key": "k", "resolved_value": 1, "dissenting_agents": ["b"]}, "junk"],
        "resolved_count": 1,
        "resolution_time_ms": 0.2,
    }
    obs.observe(conflict, answer(found), 3 * MS)
    assert obs.approvals.counts == {(0, 2, "refused", "budget_exceeded", True): 1}
    assert obs.approvals.first_done_ns == {"budget_exceeded": 9 * MS}
    first, failed = obs.tasks
    assert (first.injected, first.flagged, first.corrected, first.correct_requested) == (
        True,
        True,
        True,
        True,
    )
    assert (first.fallback_index, first.model, first.quality, first.phase) == (
        1,
        "standard",
        0.85,
        1,
    )
    assert (failed.outcome, failed.flagged, failed.model) == ("error", None, None)
    (seen,) = obs.conflicts
    assert seen.agents == ("a", "b") and seen.found == (ConflictFound("k", 1, ("b",)),)
    assert (seen.resolved_count, seen.resolution_time_ms) == (1, 0.2)


def test_every_section_yields_its_metrics() -> None:
    obs = Observations(
        tasks=[task(True, True, latency_ms=40), task(False, False)],
        conflicts=[
            check(
                {"conflict": True, "key": "k", "true_value": 1, "dissenter": "c"},
                (ConflictFound("k", 1, ("c",)),),
                latency_ms=5,
            )
        ],
    )
    validation = validate(
        obs, parse_scenario(DOWNGRADE, "d.toml"), {"start_epoch_s": START, "target_state": {}}
    )
    assert list(validation) == [
        "hallucination",
        "conflicts",
        "downgrade",
        "time_to_detect_s",
        "time_to_detect_by_section",
        "resilience",
    ]
    # the downgrade was never detected (no fallback answer, no notice): no value overall
    assert validation["time_to_detect_by_section"] == {
        "hallucination": 0.04,
        "conflicts": 0.005,
        "downgrade": None,
    }
    m = validation_metrics({"validation": validation})
    assert (m["hallucination.recall"], m["hallucination.precision"]) == (1.0, 1.0)
    assert (m["conflicts.detection_rate"], m["conflicts.resolution_quality"]) == (1.0, 1.0)
    assert (m["downgrade.fallbacks_used"], m["downgrade.service_continuity"]) == (0.0, 1.0)
    assert m["time_to_detect_s"] is None
    assert m["resilience_score"] == 1.0
