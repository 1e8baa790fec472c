"""Validation on hand-made observations: every section's figures, exactly."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from zg_load.scenario import Scenario, parse_scenario
from zg_load.validation import resilience_factors, resilience_score, validate, validation_metrics
from zg_load.validation_admission import budget_section, budget_watch, storm_section
from zg_load.validation_common import nearest_rank, priority_pair_share, run_notes
from zg_load.validation_observe import Approvals, ApprovalSeen, Observations
from zg_load.validation_render import render_validation

START = 1_700_000_000.0
MS = 1_000_000


def iso(offset_s: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(START + offset_s, UTC).isoformat().replace("+00:00", "Z")


def note(n: int, kind: str, offset_s: float) -> dict[str, Any]:
    return {"id": n, "kind": kind, "message": "", "created_at": iso(offset_s), "details": {}}


BUDGET = """
name = "b"
[target]
budget_usd = 10.0
soft_budget_usd = 8.0
[[mixes.m]]
op = "approval"
priority = 3
task = "t"
[[phases]]
name = "burst"
duration = "1s"
[[phases.streams]]
rate = "10/s"
mix = "m"
"""


def scenario(text: str = BUDGET) -> Scenario:
    return parse_scenario(text, "test.toml")


def approval(priority: int, cost: float, done_ms: float, reason: str | None = None) -> ApprovalSeen:
    outcome = "ok" if reason is None else "refused"
    return ApprovalSeen(0, priority, cost, outcome, reason, round(done_ms * MS))


def seen(records: list[ApprovalSeen], watch: Scenario | None = None) -> Approvals:
    """``records`` as the run's observer keeps them, watching ``watch``'s budget sums."""
    return Approvals.of(records, budget_watch(watch or scenario()))


def budget_obs() -> Approvals:
    approved = [approval(3, 1.9, ms) for ms in (1, 2, 3, 4, 5)]  # 9.5; crosses 8 at 5 ms
    denied = [approval(p, c, ms, "budget_exceeded") for p, c, ms in ((1, 3.5, 6), (2, 2.8, 7))]
    return seen([approval(4, 0.0, 0.5), *approved, *denied, approval(1, 4.2, 8, "overloaded")])


def budget_state(
    reserved: float = 9.5, notes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    ledger = {"max_usd": 10.0, "soft_usd": 8.0, "spent_usd": 0.0, "reserved_usd": reserved}
    default = [note(1, "budget_soft_limit", 0.0045), note(2, "budget_exhausted", 0.0058)]
    return {"budget": ledger, "notifications": default if notes is None else notes}


def test_budget_section_counts_from_answers_ledger_and_notices() -> None:
    section = budget_section(budget_obs(), scenario(), START, budget_state())
    assert section == {
        "total_operations": 8,
        "free_operations": 1,
        "approved_operations": 5,
        "denied_operations": 2,
        "shed_operations": 1,
        "failed_operations": 0,
        "total_cost": 9.5,
        "limit_usd": 10.0,
        "soft_limit_usd": 8.0,
        "ledger_committed_usd": 9.5,
        "budget_respected": True,
        "client_sum_respected": True,
        "ledger_respected": True,
        "priority_based_denial": 1.0,
        "approved_by_priority": {"3": 5},
        "denied_by_priority": {"1": 1, "2": 1},
        "budget_notification_sent": True,
        "soft_limit_crossed_at_s": 0.005,
        "notification_at_s": 0.0045,
        "notification_delay_s": -0.0005,
        "exhausted_at_s": 0.0058,
        "risk_flagged_before_exhaustion": True,
    }


def test_budget_overrun_without_denials_is_not_respected() -> None:
    overrun = seen([approval(1, 4.2, ms) for ms in (1, 2, 3)])  # 12.6 > 10: nothing refused
    state = budget_state(reserved=12.6, notes=[note(1, "budget_soft_limit", 0.0015)])
    section = budget_section(overrun, scenario(), START, state)
    assert section is not None
    assert (section["budget_respected"], section["ledger_respected"]) == (False, False)
    assert section["priority_based_denial"] is None  # no denial: no pair to judge
    # exhaustion is the answer that took the sum past the limit (3 ms); warned at 1.5 ms
    assert (section["exhausted_at_s"], section["risk_flagged_before_exhaustion"]) == (0.003, True)
    assert section["notification_delay_s"] == -0.0005  # crossed 8.0 at 2 ms


def test_budget_without_notices_served_or_written() -> None:
    unserved = budget_section(budget_obs(), scenario(), START, {"budget": None})
    assert unserved is not None
    assert unserved["budget_notification_sent"] is None  # the target did not say
    assert unserved["ledger_respected"] is None and unserved["budget_respected"] is True
    silent = budget_section(budget_obs(), scenario(), START, budget_state(notes=[]))
    assert silent is not None
    assert silent["budget_notification_sent"] is False
    assert silent["notification_delay_s"] is None
    assert silent["risk_flagged_before_exhaustion"] is False  # exhausted at the 6 ms denial


def test_budget_section_needs_a_limit_and_costed_approvals() -> None:
    no_limit = scenario(BUDGET.replace("budget_usd = 10.0\nsoft_budget_usd = 8.0", ""))
    assert budget_section(budget_obs(), no_limit, START, None) is None
    assert budget_section(seen([approval(4, 0.0, 1)]), scenario(), START, None) is None


def test_approvals_are_counts_whatever_the_run_length() -> None:
    approvals = Approvals(watch_usd=(5.0, 10.000002))
    for i in range(50_000):  # 5 priorities, every 7th refused: 10 kinds of approval
        refused = i % 7 == 6
        outcome, reason = ("refused", "budget_exceeded") if refused else ("ok", None)
        approvals.add(0, 1 + i % 5, 0.001, outcome, reason, i * 1_000)
    assert len(approvals.counts) == 10  # memory: one count per kind, not one record per request
    assert sum(approvals.counts.values()) == 50_000
    assert approvals.counts[(0, 5, "refused", "budget_exceeded", True)] == 1_428
    assert round(approvals.approved_cost_usd, 6) == 42.858  # 42,858 approved
    assert approvals.first_done_ns == {"budget_exceeded": 6_000}
    # the 5,000th approved (6 in every 7: request 833 * 7 + 1) took the sum to 5.0
    assert approvals.crossed_ns(5.0) == 5_832_000
    assert approvals.crossed_ns(10.000002) == 11_666_000  # the 10,001st: 1,666 * 7 + 4
    assert approvals.crossed_ns(100.0) is None  # never reached: known without watching
    with pytest.raises(LookupError):
        approvals.crossed_ns(7.0)  # reached, but not watched: the moment was not kept


def test_budget_watch_takes_every_budget_and_the_ledger_before_the_run() -> None:
    ledger = {"max_usd": 10.0, "soft_usd": 7.0, "spent_usd": 0.0, "reserved_usd": 0.0}
    assert budget_watch(scenario()) == (8.0, 10.000002)  # the scenario's soft limit is 8.0
    assert budget_watch(scenario(), {"budget": ledger}) == (7.0, 8.0, 10.000002)
    no_soft = scenario(BUDGET.replace("soft_budget_usd = 8.0", ""))
    assert budget_watch(no_soft) == (8.0, 10.000002)  # the API's default: 80 %
    no_budget = scenario(BUDGET.replace("budget_usd = 10.0\nsoft_budget_usd = 8.0", ""))
    assert budget_watch(no_budget, {"budget": ledger}) == ()  # no budget: nothing to watch
    phased = scenario(BUDGET + PHASE_BUDGET)
    assert budget_watch(phased) == (1.600001, 2.000003, 8.0, 10.000002)


PHASE_BUDGET = """
[[phases]]
name = "tight"
duration = "1s"
setup = { budget_usd = 2.000001 }
[[phases.streams]]
rate = "10/s"
mix = "m"
"""


def test_budget_crossing_near_a_watched_sum_is_kept() -> None:
    # A later phase sets 2.000001 USD; the service's soft limit is 80 % rounded down
    # (1.6), the API's default rounded to the micro-USD is 1.600001: both are measured.
    phased = scenario(BUDGET + PHASE_BUDGET)
    approved = [approval(3, 0.1, i * 100 + 5) for i in range(20)]  # 0.1 USD each, 100 ms apart
    approvals = Approvals.of(approved, budget_watch(phased))
    assert approvals.approved_micros == 2_000_000
    assert approvals.crossed_ns(1.6) == 1_505 * MS  # the 16th
    assert approvals.crossed_ns(1.600001) == 1_505 * MS  # within one micro-USD: the 16th
    assert approvals.crossed_ns(1.6001) == 1_605 * MS  # in the window, past 1.6: the 17th
    assert approvals.crossed_ns(2.000003) is None  # never reached: known without watching
    with pytest.raises(LookupError):
        approvals.crossed_ns(1.0)  # reached, but far from every watched sum: not kept
    state = {
        "budget": {"max_usd": 2.000001, "soft_usd": 1.6, "spent_usd": 0.0, "reserved_usd": 2.0}
    }
    section = budget_section(approvals, phased, START, state)
    assert section is not None
    assert (section["soft_limit_usd"], section["soft_limit_crossed_at_s"]) == (1.6, 1.505)
    assert section["total_cost"] == 2.0
    # the answers kept for crossings: those inside the windows, not one per approval
    assert len(approvals._points) <= 3


def test_total_cost_is_summed_in_micro_usd() -> None:
    approvals = Approvals()
    for i in range(600_000):
        approvals.add(0, 3, 0.1, "ok", None, i)
    assert approvals.approved_micros == 60_000_000_000
    assert approvals.approved_cost_usd == 60_000.0  # a float sum gives 59,999.999999...


def test_budget_crossing_of_a_soft_limit_changed_during_the_run_is_not_invented() -> None:
    # the ledger says 7.0 after the run; the run watched 8.0 (scenario) only
    state = budget_state()
    state["budget"]["soft_usd"] = 7.0
    section = budget_section(budget_obs(), scenario(), START, state)
    assert section is not None
    assert (section["soft_limit_usd"], section["soft_limit_crossed_at_s"]) == (7.0, None)
    # watched from the start (the ledger said so before the run): measured, at 4 ms (7.6)
    watched = Approvals.of(
        [approval(3, 1.9, ms) for ms in (1, 2, 3, 4, 5)], budget_watch(scenario(), state)
    )
    section = budget_section(watched, scenario(), START, state)
    assert section is not None and section["soft_limit_crossed_at_s"] == 0.004


@pytest.mark.parametrize(
    ("losers", "winners", "share"),
    [
        ([1, 2], [3], 1.0),
        ([3], [1], 0.0),
        ([3, 1], [2], 0.5),
        ([2, 2, 5], [2, 4], 0.666667),
        ([], [1], None),
        ([1], [], None),
    ],
)
def test_priority_pair_share(losers: list[int], winners: list[int], share: float | None) -> None:
    assert priority_pair_share(losers, winners) == share


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [([], 50, None), ([5.0], 99, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), ([3.0, 1.0, 2.0], 99, 3.0)],
)
def test_nearest_rank(values: list[float], pct: float, expected: float | None) -> None:
    assert nearest_rank(values, pct) == expected


def test_run_notes_keep_the_run_and_read_utc() -> None:
    state = {
        "notifications": [
            note(1, "budget_soft_limit", -5.0),  # before the run: not ours
            note(3, "model_restored", 2.5),
            {"id": 2, "kind": "model_downgraded", "created_at": "2023-11-14T22:13:21"},  # naive
            {"kind": "broken"},
        ]
    }
    notes = run_notes(state, START)
    assert notes is not None
    assert [(n.id, n.kind, n.at_s) for n in notes] == [
        (2, "model_downgraded", 1.0),
        (3, "model_restored", 2.5),
    ]
    assert run_notes({"notifications": None}, START) is None


STORM_SUMMARY: dict[str, Any] = {
    "phases": [{"sent": 10, "ran_s": 2.0}, {"sent": 6, "ran_s": 2.0}],
    "priority_adherence": 0.97,
    "recovery_time_s": 2.0,
    "accounting": {"sent": 16, "error": 1, "timeout": 0, "transport": 0},
    "stability": {"probes": 10, "answered": 10, "ratio": 1.0},
}
STORM = """
name = "s"
[[mixes.m]]
op = "approval"
priority = 3
task = "t"
[[phases]]
name = "calm"
role = "baseline"
duration = "2s"
[[phases.streams]]
rate = "5/s"
mix = "m"
[[phases]]
name = "storm"
role = "storm"
duration = "2s"
[[phases.streams]]
rate = "3/s"
mix = "m"
"""


def test_storm_section() -> None:
    obs = Observations()
    for priority, outcome, reason in [
        (5, "ok", None),
        (5, "ok", None),
        (1, "refused", "overloaded"),
        (5, "refused", "overloaded"),
        (3, "ok", None),
        (2, "error", None),
    ]:
        obs.approvals.add(1, priority, 0.1, outcome, reason, 0)
    obs.approvals.add(0, 1, 0.1, "refused", "overloaded", 0)  # not the storm
    section = storm_section(obs, scenario(STORM), STORM_SUMMARY)
    assert section == {
        "tasks_sent": 6,
        "tasks_processed": 3,
        "execution_time_s": 2.0,
        "processing_rate": 1.5,
        "priority_adherence": 0.97,
        # shed {1, 5} against admitted {5, 5, 3}: 1<=all three; 5<=5 twice, not 5<=3
        "priority_based_shedding": 0.833333,
        "refusal_rate_by_priority": {"1": 1.0, "2": 0.0, "3": 0.0, "5": 0.333333},
        "system_stability": 0.9375,  # 1 failure in 16 sent; every probe answered
        "health_probes": 10,
        "health_probes_answered": 10,
        "failed_requests": 1,
        "recovery_time": 2.0,
    }
    assert storm_section(obs, scenario(), STORM_SUMMARY) is None
    # interrupted 0.5 s into the storm: its rate is over the time it ran
    interrupted = {
        **STORM_SUMMARY,
        "phases": [{"sent": 10, "ran_s": 2.0}, {"sent": 6, "ran_s": 0.5}],
    }
    cut = storm_section(obs, scenario(STORM), interrupted)
    assert cut is not None and (cut["execution_time_s"], cut["processing_rate"]) == (0.5, 6.0)
    never = {**STORM_SUMMARY, "phases": [{"sent": 10, "ran_s": 1.0}, {"sent": 0, "ran_s": 0.0}]}
    cut = storm_section(Observations(), scenario(STORM), never)
    assert cut is not None and (cut["execution_time_s"], cut["processing_rate"]) == (0.0, None)


def test_metrics_time_to_detect_and_resilience() -> None:
    obs = Observations(approvals=budget_obs())
    summary = {"start_epoch_s": START, "target_state": budget_state()}
    validation = validate(obs, scenario(), summary)
    assert set(validation) == {
        "budget",
        "time_to_detect_s",
        "time_to_detect_by_section",
        "resilience",
    }
    assert (
        validation["time_to_detect_s"] == 0.0
    )  # detected at once: the raw delay stays in the budget section
    assert validation["resilience"] == {
        "factors": {
            "budget_respected": 1.0,
            "detection_accuracy": 1.0,
            "conflict_resolution": 1.0,
            "system_stability": 1.0,
            "service_continuity": 1.0,
        },
        "score": 1.0,
    }
    metrics = validation_metrics({"validation": validation})
    assert metrics["budget.respected"] == 1.0
    assert metrics["budget.notified"] == 1.0
    assert metrics["budget.priority_based_denial"] == 1.0
    assert metrics["budget.notification_delay_s"] == -0.0005
    assert metrics["time_to_detect_s"] == 0.0
    assert "hallucination.recall" not in metrics  # no section, no metric
    assert validation_metrics({}) == {}


def test_undetected_stress_leaves_time_to_detect_without_value() -> None:
    obs = Observations(approvals=budget_obs())
    summary = {"start_epoch_s": START, "target_state": budget_state(notes=[])}
    validation = validate(obs, scenario(), summary)
    assert validation["time_to_detect_s"] is None
    assert validation_metrics({"validation": validation})["time_to_detect_s"] is None


def test_resilience_factors_follow_the_seed() -> None:
    validation = {
        "budget": {"budget_respected": False},
        "hallucination": {"detection_accuracy": 0.75},
        "conflicts": {"conflicts_injected": 4, "conflicts_detected": 0, "conflicts_resolved": 0},
        "storm": {"system_stability": 0.99},
        "downgrade": {"service_continuity": None},
    }
    factors = resilience_factors(validation)
    assert factors == {
        "budget_respected": 0.0,
        "detection_accuracy": 0.75,
        "conflict_resolution": 0.0,  # resolved / max(detected, 1)
        "system_stability": 0.99,
        "service_continuity": 0.0,  # applied but not measured
    }
    assert resilience_score(factors) == 0.348
    assert resilience_factors({})["conflict_resolution"] == 1.0


def test_render_prints_every_field() -> None:
    obs = Observations(approvals=budget_obs())
    validation = validate(obs, scenario(), {"start_epoch_s": START, "target_state": budget_state()})
    text = render_validation(validation)
    for field in validation["budget"]:
        assert f"  {field} " in text
    assert "priority_based_denial           1\n" in text
    assert "approved_by_priority            3=5\n" in text
    assert "time to detect  0 s (budget=0)" in text
    silent = validate(obs, scenario(), {"start_epoch_s": START, "target_state": {}})
    assert "notification_delay_s            n/a\n" in render_validation(silent)


def test_validation_is_pure_core() -> None:
    code = (
        "import sys, zg_load.validation, zg_load.validation_render;"
        "print(sorted(m for m in ('aiohttp', 'anyio', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
