"""Validation of a forced model downgrade: fallback, quality, notices, restoration.

Pure: observed tasks, folded one by one into a ``DowngradeTally`` (counts, sums and first
moments, so memory does not grow with the run), the scenario's phase setups and the
target's notifications and status in; one JSON-ready dict out (None when no phase setup
marks a model unavailable). The outage runs from the start of the first phase whose setup sets
``models.<name>.available = false`` to the start of the first later phase that clears
the faults or makes that model available again (else to the end of the run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zg_load.scenario import Scenario
from zg_load.validation_common import NS_PER_S, Note, ratio, run_notes
from zg_load.validation_records import TaskSeen


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


class _Mean:
    """The mean of floats added one by one, equal to ``statistics.fmean`` of them all: the
    sum is kept exactly (each float as an integer count of 2**-1074, the smallest float
    step) and rounded once, as ``fmean``'s ``fsum`` does; int / int division rounds
    correctly."""

    __slots__ = ("n", "_scaled_sum")
    _SCALE = 1 << 1074

    def __init__(self) -> None:
        self.n = 0
        self._scaled_sum = 0

    def add(self, value: float) -> None:
        numerator, denominator = value.as_integer_ratio()  # denominator: a power of two
        self.n += 1
        self._scaled_sum += numerator * (self._SCALE // denominator)

    def value(self) -> float | None:
        return self._scaled_sum / self._SCALE / self.n if self.n else None


class DowngradeTally:
    """What ``downgrade_section`` reports of the tasks, counted task by task (``add``),
    for one outage (``span``; None: no outage, nothing is counted)."""

    def __init__(self, span: Outage | None = None) -> None:
        self.span = span
        self.attempted = 0
        self.answered = 0
        self.during = 0  # tasks intended during the outage
        self.fallbacks_used = 0
        self.models_during: Counter[str] = Counter()
        self.before = _Mean()  # first-choice quality, intended before the outage
        self.outage = _Mean()  # quality of answers to tasks intended during it
        self.best_quality: float | None = None
        self.first_fallback_s: float | None = None  # answered after the outage began
        self.first_restored_s: float | None = None  # a downed model, after it ended

    def add(self, t: TaskSeen) -> None:
        span = self.span
        if span is None:
            return
        self.attempted += 1
        intended_s, done_s = t.intended_ns / NS_PER_S, t.done_ns / NS_PER_S
        during = span.start_s <= intended_s < span.end_s
        if during:
            self.during += 1
            if t.model is not None:
                self.models_during[t.model] += 1
        if t.outcome != "ok":
            return
        self.answered += 1
        fallback = (t.fallback_index or 0) > 0
        self.fallbacks_used += fallback
        if fallback and done_s >= span.start_s:
            self.first_fallback_s = _earlier(self.first_fallback_s, done_s)
        if t.model in span.models and done_s >= span.end_s:
            self.first_restored_s = _earlier(self.first_restored_s, done_s)
        if t.quality is None:
            return
        if self.best_quality is None or t.quality > self.best_quality:
            self.best_quality = t.quality
        if t.fallback_index == 0 and intended_s < span.start_s:
            self.before.add(t.quality)
        if during:
            self.outage.add(t.quality)


def _earlier(a: float | None, b: float) -> float:
    return b if a is None or b < a else a


def downgrade_section(
    tally: DowngradeTally,
    scenario: Scenario,
    target_state: Mapping[str, Any] | None,
    start_epoch_s: float,
) -> dict[str, Any] | None:
    """The seed's downgrade validation, measured; None without a model outage.

    Over the tasks of the run (any task operation):
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

    ``tally`` must have been kept for this scenario's outage (``outage(scenario)``).
    """
    span = outage(scenario)
    if span is None:
        return None
    if tally.span != span:
        raise ValueError(f"the tasks were counted for outage {tally.span}, not {span}")
    notes = run_notes(target_state, start_epoch_s)
    kinds = Counter(n.kind for n in notes or ())
    restored_s = tally.first_restored_s
    return {
        "models_down": list(span.models),
        "outage_start_s": span.start_s,
        "outage_end_s": span.end_s if span.cleared else None,
        "tasks_attempted": tally.attempted,
        "tasks_during_outage": tally.during,
        "fallbacks_used": tally.fallbacks_used,
        "models_used_during_outage": dict(sorted(tally.models_during.items())),
        **_quality(tally),
        "user_notifications": None
        if notes is None
        else kinds["model_downgraded"] + kinds["model_restored"],
        "downgrade_notified": None if notes is None else kinds["model_downgraded"] > 0,
        "restore_notified": None if notes is None else kinds["model_restored"] > 0,
        "recovery_attempts": _recovery_attempts(target_state, span.models),
        "service_continuity": ratio(tally.answered, tally.attempted),
        "all_tasks_completed": tally.answered == tally.attempted,
        **_detection(tally.first_fallback_s, notes, span),
        "premium_restored": None if not span.cleared else restored_s is not None,
        "time_to_restore_s": None if restored_s is None else round(restored_s - span.end_s, 6),
    }


def _quality(tally: DowngradeTally) -> dict[str, Any]:
    before = tally.before.value()
    reference = before if before is not None else tally.best_quality
    out = tally.outage.value()
    degraded = None
    if reference and out is not None:
        degraded = round(max(0.0, 1 - out / reference), 6)
    return {
        "reference_quality": None if reference is None else round(reference, 6),
        "outage_quality": None if out is None else round(out, 6),
        "quality_degradation": degraded,
    }


def _detection(
    fallback_s: float | None, notes: Sequence[Note] | None, span: Outage
) -> dict[str, Any]:
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
