"""Validation: the seed's five scenario reports, their metrics for checks, and resilience.

Owns what a run proves about the service beyond latency: ``attach`` turns the engine's
observations (``Observations``, the observer that counts what validation needs of each
answer with the ground truth the generator injected, in memory that does not grow with
the run) into ``summary["validation"]`` — a section per stress
that the run exercised (budget, hallucination, conflicts, storm, downgrade), the time
to detect and the resilience factors — and ``validation_metrics`` names its figures for
checks (``budget.respected``, ``hallucination.recall``, ``time_to_detect_s``, ...).
Pure: no I/O, no clock. Guarantees: a section appears only when its data exists; every
figure is counted from the run (None when it could not be measured, never a default);
metrics are derived from the summary alone, so checks re-evaluate from artifacts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from zg_load.scenario import Scenario
from zg_load.validation_admission import (
    budget_detect_s,
    budget_section,
    budget_watch,
    storm_section,
)
from zg_load.validation_common import NS_PER_S
from zg_load.validation_downgrade import (
    DowngradeTally,
    downgrade_detect_s,
    downgrade_section,
    outage,
)
from zg_load.validation_observe import Approvals, Observations
from zg_load.validation_outputs import (
    conflicts_detect_s,
    conflicts_section,
    hallucination_detect_s,
    hallucination_section,
)

__all__ = [
    "SECTIONS",
    "Observations",
    "attach",
    "observations_for",
    "resilience_factors",
    "resilience_score",
    "validate",
    "validation_metrics",
]

SECTIONS = ("budget", "hallucination", "conflicts", "storm", "downgrade")

# metric name -> (section, field, subfield or None); booleans become 1.0 / 0.0.
METRICS: dict[str, tuple[str, str, str | None]] = {
    "budget.respected": ("budget", "budget_respected", None),
    "budget.priority_based_denial": ("budget", "priority_based_denial", None),
    "budget.notification_delay_s": ("budget", "notification_delay_s", None),
    "budget.notified": ("budget", "budget_notification_sent", None),
    "budget.risk_flagged_before_exhaustion": ("budget", "risk_flagged_before_exhaustion", None),
    "budget.approved": ("budget", "approved_operations", None),
    "budget.denied": ("budget", "denied_operations", None),
    "budget.total_cost_usd": ("budget", "total_cost", None),
    "hallucination.recall": ("hallucination", "detection_accuracy", None),
    "hallucination.detection_accuracy": ("hallucination", "detection_accuracy", None),
    "hallucination.precision": ("hallucination", "precision", None),
    "hallucination.false_positives": ("hallucination", "false_positives", None),
    "hallucination.corrections_applied": ("hallucination", "corrections_applied", None),
    "hallucination.time_to_flag_p99_ms": ("hallucination", "time_to_flag", "p99_ms"),
    "conflicts.detection_rate": ("conflicts", "detection_rate", None),
    "conflicts.resolution_quality": ("conflicts", "resolution_quality", None),
    "conflicts.consistency": ("conflicts", "consistency_achieved", None),
    "conflicts.detected": ("conflicts", "conflicts_detected", None),
    "conflicts.resolved": ("conflicts", "conflicts_resolved", None),
    "conflicts.false_conflicts": ("conflicts", "false_conflicts", None),
    "conflicts.notifications": ("conflicts", "notifications", None),
    "conflicts.resolution_time_p99_ms": ("conflicts", "resolution_time", "p99_ms"),
    "storm.tasks_sent": ("storm", "tasks_sent", None),
    "storm.tasks_processed": ("storm", "tasks_processed", None),
    "storm.processing_rate_per_s": ("storm", "processing_rate", None),
    "storm.priority_based_shedding": ("storm", "priority_based_shedding", None),
    "storm.system_stability": ("storm", "system_stability", None),
    "downgrade.service_continuity": ("downgrade", "service_continuity", None),
    "downgrade.fallbacks_used": ("downgrade", "fallbacks_used", None),
    "downgrade.quality_degradation": ("downgrade", "quality_degradation", None),
    "downgrade.user_notifications": ("downgrade", "user_notifications", None),
    "downgrade.recovery_attempts": ("downgrade", "recovery_attempts", None),
    "downgrade.restored": ("downgrade", "premium_restored", None),
    "downgrade.time_to_detect_s": ("downgrade", "time_to_detect_s", None),
    "downgrade.time_to_restore_s": ("downgrade", "time_to_restore_s", None),
}

_DETECT: dict[str, Callable[[Mapping[str, Any]], tuple[bool, float | None]]] = {
    "budget": budget_detect_s,
    "hallucination": hallucination_detect_s,
    "conflicts": conflicts_detect_s,
    "downgrade": downgrade_detect_s,
}


def observations_for(scenario: Scenario, target_state: Mapping[str, Any] | None) -> Observations:
    """The observer of one run, watching the budget sums ``budget_section`` will ask about
    (``target_state``: the target as it was before the run)."""
    return Observations(
        approvals=Approvals(budget_watch(scenario, target_state)),
        downgrade=DowngradeTally(outage(scenario)),
        interval_ns=round(scenario.interval_s * NS_PER_S),
    )


def validate(obs: Observations, scenario: Scenario, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The validation of one run: its sections, time to detect and resilience factors.

    ``summary`` is the run's summary with ``target_state`` (budget, notifications,
    status after the run) already set; ``start_epoch_s`` places notifications in the run.
    """
    state = summary.get("target_state")
    start_s = summary["start_epoch_s"]
    sections = {
        "budget": budget_section(obs.approvals, scenario, start_s, state),
        "hallucination": hallucination_section(obs.hallucination),
        "conflicts": conflicts_section(obs.conflicts, state, start_s),
        "storm": storm_section(obs, scenario, summary),
        "downgrade": downgrade_section(obs.downgrade, scenario, state, start_s),
    }
    out: dict[str, Any] = {k: v for k, v in sections.items() if v is not None}
    out.update(_time_to_detect(out))
    factors = resilience_factors(out)
    out["resilience"] = {"factors": factors, "score": resilience_score(factors)}
    return out


def attach(summary: dict[str, Any], obs: Observations, scenario: Scenario) -> dict[str, Any]:
    """Store the run's validation in ``summary["validation"]`` and return it."""
    validation = summary["validation"] = validate(obs, scenario, summary)
    return validation


def _time_to_detect(sections: Mapping[str, Any]) -> dict[str, Any]:
    """The slowest detection among the stresses the run applied (see README).

    Per section: budget, the soft-limit notification's delay once the limit was
    crossed; hallucination, the slowest flag; conflicts, the slowest detecting answer;
    downgrade, the outage's detection. None when any applicable one was never detected.
    """
    parts: dict[str, float | None] = {}
    for name, detect in _DETECT.items():
        if name in sections:
            applies, seconds = detect(sections[name])
            if applies:
                # A notice written before the client heard of the crossing detected it at
                # once: a time to detect is never negative (the section keeps the raw delay).
                parts[name] = None if seconds is None else max(0.0, seconds)
    if not parts:
        return {}
    values = list(parts.values())
    worst = None if any(v is None for v in values) else max(v for v in values if v is not None)
    return {"time_to_detect_s": worst, "time_to_detect_by_section": parts}


def resilience_factors(validation: Mapping[str, Any]) -> dict[str, float]:
    """The seed's five factors for one run, each 1.0 when its stress was not applied.

    budget_respected (1/0), detection_accuracy (hallucination recall), conflict
    resolution (conflicts resolved / max(detected, 1), when conflicts were injected),
    system_stability (storm), service_continuity (downgrade: share of tasks completed).
    A factor whose stress was applied but could not be measured counts 0.
    """
    budget = validation.get("budget")
    halluc = validation.get("hallucination")
    conflicts = validation.get("conflicts")
    storm = validation.get("storm")
    down = validation.get("downgrade")
    resolution = 1.0
    if conflicts and conflicts["conflicts_injected"]:
        resolution = conflicts["conflicts_resolved"] / max(conflicts["conflicts_detected"], 1)
    return {
        "budget_respected": 1.0 if not budget else float(bool(budget["budget_respected"])),
        "detection_accuracy": 1.0 if not halluc else float(halluc["detection_accuracy"] or 0.0),
        "conflict_resolution": round(resolution, 6),
        "system_stability": 1.0 if not storm else float(storm["system_stability"] or 0.0),
        "service_continuity": 1.0 if not down else float(down["service_continuity"] or 0.0),
    }


def resilience_score(factors: Mapping[str, float]) -> float:
    """The mean of the five factors (the seed's per-scenario score)."""
    return round(sum(factors.values()) / len(factors), 6)


def validation_metrics(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """Named metrics for checks from ``summary["validation"]`` (empty without one)."""
    validation = summary.get("validation")
    if not isinstance(validation, Mapping):
        return {}
    m: dict[str, float | None] = {}
    for name, (section, field, sub) in METRICS.items():
        if section in validation:
            value = validation[section].get(field)
            if sub is not None:
                value = value.get(sub) if isinstance(value, Mapping) else None
            m[name] = _number(value)
    if "time_to_detect_s" in validation:
        m["time_to_detect_s"] = _number(validation["time_to_detect_s"])
    m["resilience_score"] = validation["resilience"]["score"]
    return m


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value) if isinstance(value, int | float) else None
