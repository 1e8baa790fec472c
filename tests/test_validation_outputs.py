"""Validation of output checks and downgrades on hand-made observations, exactly."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest

from zg_load.client import Answer
from zg_load.hdr import Histogram
from zg_load.outcome import Outcome
from zg_load.plan import Planned
from zg_load.scenario import parse_scenario
from zg_load.validation import observations_for, validate, validation_metrics
from zg_load.validation_common import Latencies, fold
from zg_load.validation_downgrade import DowngradeTally, _Mean, downgrade_section, outage
from zg_load.validation_observe import Observations
from zg_load.validation_outputs import (
    ConflictTally,
    HallucinationTally,
    conflicts_section,
    hallucination_section,
)
from zg_load.validation_records import (
    ConflictFound,
    ConflictSeen,
    TaskSeen,
    conflict_seen,
    task_seen,
)

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
    section = hallucination_section(fold(HallucinationTally(), tasks))
    assert section is not None
    # percentiles within HDR precision (3 significant figures), the max exact
    assert section.pop("time_to_flag") == {
        "p50_ms": pytest.approx(10.0, rel=1e-3),
        "p99_ms": 30.0,
        "max_ms": 30.0,
    }
    assert section.pop("response_time") == {
        "p50_ms": pytest.approx(10.0, rel=1e-3),
        "p99_ms": 30.0,
        "max_ms": 30.0,
    }
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
    }
    assert hallucination_section(fold(HallucinationTally(), [task(False, False)])) is None
    # an injected task that was not answered still makes the section apply
    unanswered = hallucination_section(
        fold(HallucinationTally(), [task(True, None, outcome="error")])
    )
    assert unanswered is not None
    assert (unanswered["total_tasks"], unanswered["answered_tasks"]) == (1, 0)
    assert unanswered["detection_accuracy"] is None
    assert unanswered["time_to_flag"] == {"p50_ms": None, "p99_ms": None, "max_ms": None}


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
    section = conflicts_section(fold(ConflictTally(), checks), state, START)
    assert section is not None
    assert section.pop("resolution_time") == {
        "p50_ms": pytest.approx(2.0, rel=1e-3),
        "p99_ms": 3.0,
        "max_ms": 3.0,
    }
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
        "service_resolution_time_p99_ms": 0.1,
        "notifications": 1,
    }
    assert conflicts_section(ConflictTally(), None, START) is None


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
    scenario = parse_scenario(DOWNGRADE, "d.toml")
    tally = fold(DowngradeTally(outage(scenario)), tasks)
    section = downgrade_section(tally, scenario, state, START)
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
    silent = downgrade_section(tally, scenario, {}, START)
    assert silent is not None
    assert (silent["time_to_detect_s"], silent["detected_by"]) == (0.11, "fallback answer")
    assert silent["user_notifications"] is None and silent["recovery_attempts"] is None


def answer(body: Any, outcome: Outcome = Outcome.OK, reason: str | None = None) -> Answer:
    return Answer(outcome, 200 if outcome is Outcome.OK else 503, reason, body)


HALLUCINATED = Planned(
    0,
    1,
    "agent_task",
    3,
    0.0,
    "t",
    "a",
    {"task": {"type": "x"}, "options": {"correct": True}},
    {"hallucinated": True},
)
FLAGGED = {
    "checks": {"hallucination": {"flagged": True}},
    "corrected_output": "fixed",
    "fallback_index": 1,
    "model_used": "standard",
    "quality": 0.85,
}


def test_records_read_truth_and_verdicts() -> None:
    first = task_seen(HALLUCINATED, "ok", FLAGGED, 20 * MS)
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
    failed = task_seen(HALLUCINATED, "error", {}, 21 * MS)
    assert (failed.outcome, failed.flagged, failed.model) == ("error", None, None)
    odd = {"checks": "junk", "fallback_index": "1", "model_used": 3, "quality": "high"}
    unread = task_seen(HALLUCINATED, "ok", odd, 22 * MS)
    assert (unread.flagged, unread.fallback_index, unread.model, unread.quality) == (
        None,
        None,
        None,
        None,
    )
    seen = conflict_seen(CONFLICT, "ok", FOUND, 3 * MS)
    assert seen.agents == ("a", "b") and seen.found == (ConflictFound("k", 1, ("b",)),)
    assert (seen.resolved_count, seen.resolution_time_ms) == (1, 0.2)


CONFLICT = Planned(
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
FOUND = {
    "conflicts": [{"key": "k", "resolved_value": 1, "dissenting_agents": ["b"]}, "junk"],
    "resolved_count": 1,
    "resolution_time_ms": 0.2,
}


def test_observer_counts_every_answer_and_keeps_no_record() -> None:
    scenario = parse_scenario(DOWNGRADE, "d.toml")
    obs = observations_for(scenario, {})
    approval = Planned(5 * MS, 0, "approval", 2, 2.8, "analysis", "a")
    obs.observe(approval, answer(None, Outcome.REFUSED, "budget_exceeded"), 9 * MS)
    obs.observe(HALLUCINATED, answer(FLAGGED), 20 * MS)
    obs.observe(HALLUCINATED, answer("not json", Outcome.ERROR), 21 * MS)
    obs.observe(CONFLICT, answer(FOUND), 3 * MS)
    assert obs.approvals.counts == {(0, 2, "refused", "budget_exceeded", True): 1}
    assert obs.approvals.first_done_ns == {"budget_exceeded": 9 * MS}
    h = obs.hallucination
    assert (h.judged, h.answered, h.injected, h.detected, h.corrections_applied) == (2, 1, 1, 1, 1)
    flag = h.time_to_flag.histogram()
    assert (flag.count, flag.max_us) == (1, 20_000)
    c = obs.conflicts
    assert (c.checks, c.injected, c.detected, c.correct, c.agents) == (1, 1, 1, 1, {"a", "b"})
    assert c.service_resolution_time.histogram().max_us == 200
    d = obs.downgrade
    assert (d.attempted, d.answered, d.fallbacks_used, d.first_fallback_s) == (2, 1, 1, None)
    assert obs.processed_by_phase == {1: 1, 0: 1}  # the task and the conflict check, ok
    assert obs.model_usage() == [{"start_s": 0.0, "end_s": 1.0, "models": {"standard": 1}}]
    assert not [v for v in vars(obs).values() if isinstance(v, list)]


def test_tallies_are_the_old_list_computations_on_random_answers() -> None:
    """Counted one by one, the sections equal the same figures computed over all records."""
    rng = random.Random(5)
    scenario = parse_scenario(DOWNGRADE, "d.toml")
    span = outage(scenario)
    tasks = []
    for _ in range(2_000):
        intended_ms = rng.randrange(0, 7_000)
        ok = rng.random() < 0.9
        index = rng.choice([0, 0, 1, 2, None])
        tasks.append(
            task(
                rng.choice([True, False, None]),
                rng.choice([True, False, None]),
                latency_ms=rng.randrange(1, 400),
                outcome="ok" if ok else rng.choice(["error", "timeout", "refused"]),
                corrected=rng.random() < 0.5,
                intended_ms=intended_ms,
                fallback_index=index if ok else None,
                model=rng.choice(["premium", "standard", "basic", None]) if ok else None,
                quality=rng.choice([0.95, 0.85, 0.7, 0.91, None]) if ok else None,
            )
        )
    section = downgrade_section(fold(DowngradeTally(span), tasks), scenario, {}, START)
    assert section is not None and span is not None
    answered = [t for t in tasks if t.outcome == "ok"]
    during = [t for t in tasks if span.start_s <= t.intended_ns / 1e9 < span.end_s]
    before = [
        t.quality
        for t in answered
        if t.quality is not None and t.fallback_index == 0 and t.intended_ns / 1e9 < span.start_s
    ]
    out = [t.quality for t in during if t.outcome == "ok" and t.quality is not None]
    assert section["tasks_attempted"] == 2_000 and section["tasks_during_outage"] == len(during)
    assert section["fallbacks_used"] == sum(1 for t in answered if (t.fallback_index or 0) > 0)
    assert section["reference_quality"] == round(statistics.fmean(before), 6)
    assert section["outage_quality"] == round(statistics.fmean(out), 6)
    assert section["service_continuity"] == round(len(answered) / 2_000, 6)
    fallback_s = min(
        t.done_ns / 1e9
        for t in answered
        if (t.fallback_index or 0) > 0 and t.done_ns / 1e9 >= span.start_s
    )
    assert section["time_to_detect_s"] == round(fallback_s - span.start_s, 6)
    restored_s = min(
        t.done_ns / 1e9 for t in answered if t.model == "premium" and t.done_ns / 1e9 >= span.end_s
    )
    assert section["time_to_restore_s"] == round(restored_s - span.end_s, 6)
    hall = hallucination_section(fold(HallucinationTally(), tasks))
    assert hall is not None
    judged = [t for t in tasks if t.injected is not None and t.outcome == "ok"]
    detected = [t for t in judged if t.injected and t.flagged]
    assert hall["hallucinations_detected"] == len(detected)
    assert hall["false_positives"] == sum(1 for t in judged if not t.injected and t.flagged)
    exact = sorted((t.done_ns - t.intended_ns) // 1000 for t in detected)
    p99 = exact[math.ceil(0.99 * len(exact)) - 1]
    assert hall["time_to_flag"]["max_ms"] == exact[-1] / 1000
    assert abs(hall["time_to_flag"]["p99_ms"] - p99 / 1000) <= p99 / 1000 * 1e-3


def test_every_section_yields_its_metrics() -> None:
    scenario = parse_scenario(DOWNGRADE, "d.toml")
    obs = observations_for(scenario, {})
    for t in (task(True, True, latency_ms=40), task(False, False)):
        obs.add_task(t)
    obs.add_conflict(
        check(
            {"conflict": True, "key": "k", "true_value": 1, "dissenter": "c"},
            (ConflictFound("k", 1, ("c",)),),
            latency_ms=5,
        )
    )
    validation = validate(obs, scenario, {"start_epoch_s": START, "target_state": {}})
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


def test_a_tally_for_another_outage_is_refused() -> None:
    scenario = parse_scenario(DOWNGRADE, "d.toml")
    with pytest.raises(ValueError, match="counted for outage None"):
        downgrade_section(Observations().downgrade, scenario, {}, START)


def test_latencies_fold_in_batches_into_the_one_by_one_histogram() -> None:
    rng = random.Random(9)
    values = [rng.randrange(0, 5_000_000) for _ in range(2 * Latencies.BATCH + 17)]
    batched, single = Latencies(), Histogram()
    for v in values:
        batched.add(v)
        single.record(v)
    folded = batched.histogram()
    assert list(folded.recorded()) == list(single.recorded())
    assert (folded.count, folded.min_us, folded.max_us) == (len(values), min(values), max(values))
    assert folded.percentile(99) == single.percentile(99)


def test_quality_means_equal_fmean_to_the_last_bit() -> None:
    rng = random.Random(3)
    for _ in range(200):
        values = [
            rng.choice([0.1, 0.95, 1e16, 1.0, 1e-300, rng.random(), rng.uniform(0, 1e6)])
            for _ in range(rng.randrange(1, 60))
        ]
        mean = _Mean()
        for v in values:
            mean.add(v)
        assert mean.value() == statistics.fmean(values)
    assert _Mean().value() is None


def test_observer_never_raises_on_hostile_answers() -> None:
    """What a service (or a user's client adapter) may send; the figures it cannot read
    are not counted, and nothing raises in the engine's observer."""
    scenario = parse_scenario(DOWNGRADE, "d.toml")
    obs = observations_for(scenario, {})
    task_req = Planned(2_500 * MS, 1, "agent_task", 3, 0.0, "t", "a", {}, {"hallucinated": True})
    for quality in (float("inf"), float("nan"), 10**400, True, "high"):
        obs.observe(task_req, answer({"quality": quality, "model_used": "standard"}), 2_600 * MS)
    bodies: list[Any] = [
        {"conflicts": 5},
        {"conflicts": [{"key": "k", "resolved_value": 1, "dissenting_agents": 5}]},
        {"conflicts": [{"key": "k", "resolved_value": 10**400, "dissenting_agents": ["b"]}]},
        {
            "conflicts": [{"key": "k", "resolved_value": 1, "dissenting_agents": ["b"]}],
            "resolution_time_ms": 1e306,
        },
        {
            "conflicts": [{"key": "k", "resolved_value": 1, "dissenting_agents": ["b"]}],
            "resolution_time_ms": -1.0,
        },
    ]
    for body in bodies:
        obs.observe(CONFLICT, answer(body), 3 * MS)
    section = validate(obs, scenario, {"start_epoch_s": START, "target_state": {}})
    downgrade = section["downgrade"]
    assert (downgrade["tasks_during_outage"], downgrade["outage_quality"]) == (5, None)
    conflicts = section["conflicts"]
    assert (conflicts["checks"], conflicts["conflicts_detected"]) == (5, 4)
    # the dissenter unread, and 10**400 is not 1: two of the four resolved ones are wrong
    assert conflicts["resolution_quality"] == 0.4
    assert conflicts["service_resolution_time_p99_ms"] is None  # 1e306 and -1 are not times
