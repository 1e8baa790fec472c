"""Validation of a forced model downgrade: fallback, quality, notices, restoration.

Pure: observed tasks, the scenario's phase setups and the target's notifications and
status in; one JSON-ready dict out (None when no phase setup marks a model
unavailable). The outage runs from the start of the first phase whose setup sets
``models.<name>.available = false`` to the start of the first later phase that clears
the faults or makes that model available again (else to the end of the run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from zg_load.scenario import Scenario
from zg_load.validation_common import NS_PER_S, Note, ratio, run_notes
from zg_load.validation_observe import TaskSeen


@dataclass(frozen=True)
class Outage:
    models: tuple[str, ...]
    start_s: float
    end_s: float
    cleared: bool  # a later phase ended it within the run


def outage(scenario: Scenario) -> Outage | None:
    """The first span in which the scenario's phase setups hold a model unavailable."""
    bounds = scenario.phase_bounds()
    for i, phase in enumerate(scenario.phases):
        down = _downed(phase.setup.faults if phase.setup else None)
        if not down:
            continue
        for j in range(i + 1, len(scenario.phases)):
            setup = scenario.phases[j].setup
            if setup is not None and (setup.clear_faults or _revived(setup.faults, down)):
                return Outage(down, bounds[i][0], bounds[j][0], True)
        return Outage(down, bounds[i][0], scenario.duration_s, False)
    return None


def _models(faults: Mapping[str, Any] | None) -> Mapping[str, Any]:
    models = (faults or {}).get("models")
    return models if isinstance(models, dict) else {}


def _downed(faults: Mapping[str, Any] | None) -> tuple[str, ...]:
    return tuple(
        sorted(
            name
            for name, state in _models(faults).items()
            if isinstance(state, dict) and state.get("available") is False
        )
    )


def _revived(faults: Mapping[str, Any] | None, down: tuple[str, ...]) -> bool:
    models = _models(faults)
    return any(
        name in models
        and (
            models[name] is None
            or (isinstance(models[name], dict) and models[name].get("available"))
        )
        for name in down
    )


def downgrade_section(
    tasks: Sequence[TaskSeen],
    scenario: Scenario,
    target_state: Mapping[str, Any] | None,
    start_epoch_s: float,
) -> dict[str, Any] | None:
    """The seed's downgrade validation, measured; None without a model outage.

    - ``fallbacks_used``: answers with ``fallback_index > 0``;
    - ``quality_degradation``: 1 - (mean tier quality of answers to tasks intended during
      the outage) / (mean quality of first-choice answers before it; else the best seen);
    - ``user_notifications``: ``model_downgraded`` + ``model_restored`` notices written
      during the run; ``recovery_attempts``: the service's count of trial calls to the
      downed models (``GET /v1/status`` models[].recovery_attempts, after the run);
    - ``service_continuity``: tasks answered ok over tasks sent (1.0: every task completed);
    - ``time_to_detect_s``: from the outage's start to the earlier of the first answer
      with ``fallback_index > 0`` and the first ``model_downgraded`` notice
      (``detected_by`` says which); None when neither came;
    - ``time_to_restore_s``: from the outage's end to the first answer by a downed model.
    """
    span = outage(scenario)
    if span is None:
        return None
    answered = [t for t in tasks if t.outcome == "ok"]
    during = [t for t in tasks if span.start_s <= t.intended_ns / NS_PER_S < span.end_s]
    notes = run_notes(target_state, start_epoch_s)
    kinds = Counter(n.kind for n in notes or ())
    restored_s = _first_s(
        t for t in answered if t.model in span.models and _done_s(t) >= span.end_s
    )
    return {
        "models_down": list(span.models),
        "outage_start_s": span.start_s,
        "outage_end_s": span.end_s if span.cleared else None,
        "tasks_attempted": len(tasks),
        "tasks_during_outage": len(during),
        "fallbacks_used": sum(1 for t in answered if (t.fallback_index or 0) > 0),
        "models_used_during_outage": dict(
            sorted(Counter(t.model for t in during if t.model is not None).items())
        ),
        **_quality(answered, during, span),
        "user_notifications": None
        if notes is None
        else kinds["model_downgraded"] + kinds["model_restored"],
        "downgrade_notified": None if notes is None else kinds["model_downgraded"] > 0,
        "restore_notified": None if notes is None else kinds["model_restored"] > 0,
        "recovery_attempts": _recovery_attempts(target_state, span.models),
        "service_continuity": ratio(len(answered), len(tasks)),
        "all_tasks_completed": len(answered) == len(tasks),
        **_detection(answered, notes, span),
        "premium_restored": None if not span.cleared else restored_s is not None,
        "time_to_restore_s": None if restored_s is None else round(restored_s - span.end_s, 6),
    }


def _done_s(task: TaskSeen) -> float:
    return task.done_ns / NS_PER_S


def _first_s(tasks: Any) -> float | None:
    times = [_done_s(t) for t in tasks]
    return min(times) if times else None


def _quality(
    answered: Sequence[TaskSeen], during: Sequence[TaskSeen], span: Outage
) -> dict[str, Any]:
    before = [
        t.quality
        for t in answered
        if t.quality is not None
        and t.fallback_index == 0
        and t.intended_ns / NS_PER_S < span.start_s
    ]
    seen = [t.quality for t in answered if t.quality is not None]
    reference = fmean(before) if before else max(seen, default=None)
    out = [t.quality for t in during if t.outcome == "ok" and t.quality is not None]
    degraded = None
    if reference and out:
        degraded = round(max(0.0, 1 - fmean(out) / reference), 6)
    return {
        "reference_quality": None if reference is None else round(reference, 6),
        "outage_quality": round(fmean(out), 6) if out else None,
        "quality_degradation": degraded,
    }


def _detection(
    answered: Sequence[TaskSeen], notes: Sequence[Note] | None, span: Outage
) -> dict[str, Any]:
    fallback_s = _first_s(
        t for t in answered if (t.fallback_index or 0) > 0 and _done_s(t) >= span.start_s
    )
    note_s = next(
        (n.at_s for n in notes or () if n.kind == "model_downgraded" and n.at_s >= span.start_s),
        None,
    )
    found = [
        (s, by)
        for s, by in ((fallback_s, "fallback answer"), (note_s, "notification"))
        if s is not None
    ]
    if not found:
        return {"time_to_detect_s": None, "detected_by": None}
    at_s, by = min(found)
    return {"time_to_detect_s": round(at_s - span.start_s, 6), "detected_by": by}


def _recovery_attempts(target_state: Mapping[str, Any] | None, models: Sequence[str]) -> int | None:
    status = (target_state or {}).get("status")
    rows = status.get("models") if isinstance(status, dict) else None
    if not isinstance(rows, list):
        return None
    counts = [
        r["recovery_attempts"]
        for r in rows
        if isinstance(r, dict)
        and r.get("name") in models
        and isinstance(r.get("recovery_attempts"), int)
    ]
    return sum(counts) if counts else None


def downgrade_detect_s(section: Mapping[str, Any]) -> tuple[bool, float | None]:
    """(applies, seconds): the outage must be detected once it began."""
    return True, section["time_to_detect_s"]
