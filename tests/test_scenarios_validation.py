"""The five stress scenarios against the real reference service, in both directions.

Each scenario's checks pass against the default service, and the matching deliberately
broken service (``[service] defects``) fails exactly the checks that measure what it
broke (and, where noted, may fail checks that the broken behaviour makes a matter of
timing). Generator-health checks (``generator.*``) judge the load generator on a shared
machine, not the service, so they are left out of the comparison.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from zg_load.runner import execute
from zg_load.scenario import Scenario, parse_scenario

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).parent.parent / "scenarios"

# scenario -> (defect, the checks that must fail with it)
BROKEN: dict[str, tuple[str, set[str]]] = {
    "budget_exhaustion": (
        "reservation",
        {"budget.respected == 1", "budget.priority_based_denial >= 0.95"},
    ),
    "agent_hallucination": (
        "checks",
        {
            "hallucination.recall >= 0.99",
            "hallucination.precision >= 0.99",
            "hallucination.corrections_applied > 0",
            "hallucination.time_to_flag_p99_ms < 1000",
            "time_to_detect_s < 30",
        },
    ),
    "conflicting_outputs": (
        "conflicts",
        {
            "conflicts.detection_rate >= 0.99",
            "conflicts.resolution_quality >= 0.99",
            "conflicts.consistency >= 0.99",
            "conflicts.notifications > 0",
            "conflicts.resolution_time_p99_ms < 250",
            "time_to_detect_s < 30",
        },
    ),
    "high_priority_storm": ("shedding", {"storm.priority_based_shedding >= 0.98"}),
    "model_downgrade": (
        "fallback",
        {
            "downgrade.service_continuity >= 0.999",
            "downgrade.fallbacks_used > 0",
            "downgrade.quality_degradation < 0.2",
            "downgrade.user_notifications >= 2",
            "downgrade.time_to_detect_s < 1",
            "completion_rate > 0.95",
            "time_to_detect_s < 30",
        },
    ),
}
# A FIFO queue gives every priority the same wait: whether priority 5's p99 crosses 250 ms,
# and adherence its tolerance, depends on how the waits fall in that run.
MAY_ALSO_FAIL = {
    "high_priority_storm": {
        "priority_adherence >= 0.95",
        "latency.p99_ms{op=approval,priority=5} < 250",
    }
}
# More defects the budget scenario must notice.
BUDGET_ALSO = {
    "shedding": {"budget.priority_based_denial >= 0.95"},
    "notifications": {
        "budget.notified == 1",
        "budget.notification_delay_s < 1",
        "budget.risk_flagged_before_exhaustion == 1",
        "time_to_detect_s < 30",
    },
}

# A first-come service spends in whatever order the burst reaches its free worker: when a cost
# that no longer fits comes before the sum crosses the soft limit ($7.00 committed, $4.20
# refused, then $1.90 approved: $8.90), the first budget refusal precedes the warning, and
# the warning did come too late. Which costs come first varies with timing from run to run.
BUDGET_MAY_ALSO_FAIL = {"shedding": {"budget.risk_flagged_before_exhaustion == 1"}}


def load(name: str, *defects: str) -> Scenario:
    path = SCENARIOS / f"{name}.toml"
    scenario = parse_scenario(path.read_text(encoding="utf-8"), str(path))
    service = dataclasses.replace(scenario.service, defects=defects)
    return dataclasses.replace(scenario, service=service)


def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scenario: Scenario) -> dict[str, Any]:
    summary = execute(scenario, out=tmp_path / "run").summary
    assert summary["accounting"]["identity_holds"] and not summary["setup_errors"]
    return summary


def failed(summary: dict[str, Any]) -> set[str]:
    return {
        c["name"]
        for c in summary["checks"]
        if c["passed"] is False and not c["metric"].startswith("generator.")
    }


@pytest.mark.parametrize("name", list(BROKEN))
def test_default_service_passes(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    summary = run(monkeypatch, tmp_path, load(name))
    assert failed(summary) == set()
    validation = summary["validation"]
    assert validation["resilience"]["score"] == 1.0
    section = {
        "budget_exhaustion": "budget",
        "agent_hallucination": "hallucination",
        "conflicting_outputs": "conflicts",
        "high_priority_storm": "storm",
        "model_downgrade": "downgrade",
    }[name]
    assert section in validation


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_service_fails_the_matching_checks(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defect, expected = BROKEN[name]
    summary = run(monkeypatch, tmp_path, load(name, defect))
    found = failed(summary)
    assert expected <= found <= expected | MAY_ALSO_FAIL.get(name, set())
    assert summary["passed"] is False


@pytest.mark.parametrize("defect", list(BUDGET_ALSO))
def test_budget_scenario_notices_other_defects(
    defect: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    summary = run(monkeypatch, tmp_path, load("budget_exhaustion", defect))
    found = failed(summary)
    may = BUDGET_MAY_ALSO_FAIL.get(defect, set())
    assert BUDGET_ALSO[defect] <= found <= BUDGET_ALSO[defect] | may
    if found & may:  # for the reason given with BUDGET_MAY_ALSO_FAIL, and no other
        budget = summary["validation"]["budget"]
        assert budget["exhausted_at_s"] < budget["notification_at_s"]
        assert budget["exhausted_at_s"] < budget["soft_limit_crossed_at_s"]


def test_budget_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The seed's budget fields on the default service: the $10 goes to priority 3."""
    budget = run(monkeypatch, tmp_path, load("budget_exhaustion"))["validation"]["budget"]
    assert budget["total_operations"] == 2000 and budget["free_operations"] == 200
    assert budget["approved_by_priority"] == {"3": 5}  # 5 x $1.90: nothing else fits
    assert budget["total_cost"] == 9.5 == budget["ledger_committed_usd"]
    assert (
        budget["approved_operations"] + budget["denied_operations"] + budget["shed_operations"]
        == 2000
    )
    assert budget["notification_delay_s"] is not None and abs(budget["notification_delay_s"]) < 1
