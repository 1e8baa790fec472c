"""Alerts raised to the service: de-duplication and the actions each one triggers.

Rules, in order, for an alert that is not a duplicate:
- always `notify` (an `anomaly_received` notification);
- `details.model` names a known model: `cool_down:<model>` (its breaker opens);
- otherwise severity `high`: `shed_priority:1`; `critical`: `shed_priority:1` and
  `shed_priority:2` (approvals at that priority are refused for `shed_for_s`).
An alert with the same (type, severity) as one accepted less than `dedupe_s` ago is a
duplicate: it answers with that alert's id, no actions, and `deduplicated: true`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from zg_load.aiops.models import MODELS

SEVERITIES = ("low", "medium", "high", "critical")
SHED_BY_SEVERITY: dict[str, tuple[int, ...]] = {"high": (1,), "critical": (1, 2)}
NOTIFY = "notify"


@dataclass(frozen=True, slots=True)
class Decision:
    anomaly_id: str
    actions: list[str]
    deduplicated: bool
    cool_down: str | None
    shed_priorities: tuple[int, ...]


class AnomalyDesk:
    """Decides what to do with each alert; the caller carries the actions out."""

    def __init__(self, dedupe_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._dedupe_s = dedupe_s
        self._clock = clock
        self._ids = itertools.count(1)
        self._seen: dict[tuple[str, str], tuple[float, str]] = {}

    def receive(self, anomaly_type: str, severity: str, details: dict[str, object]) -> Decision:
        now_s = self._clock()
        seen = self._seen.get((anomaly_type, severity))
        if seen is not None and now_s - seen[0] < self._dedupe_s:
            return Decision(seen[1], [], True, None, ())
        anomaly_id = f"anm_{next(self._ids)}"
        self._forget_before(now_s - self._dedupe_s)
        self._seen[(anomaly_type, severity)] = (now_s, anomaly_id)
        model = details.get("model")
        if isinstance(model, str) and model in MODELS:
            return Decision(anomaly_id, [NOTIFY, f"cool_down:{model}"], False, model, ())
        shed = SHED_BY_SEVERITY.get(severity, ())
        actions = [NOTIFY, *(f"shed_priority:{p}" for p in shed)]
        return Decision(anomaly_id, actions, False, None, shed)

    def reset(self) -> None:
        self._seen.clear()

    def _forget_before(self, oldest_s: float) -> None:
        if len(self._seen) > 1000:
            self._seen = {k: v for k, v in self._seen.items() if v[0] >= oldest_s}
