"""What GET /v1/status reports: rolling-window rates and cumulative counters.

Approvals and tasks both feed the window (a task is completed when it answered, an
error when every model failed); each has its own cumulative counters.

The window is split into `buckets` slots of equal length; a slot is cleared when the
clock comes back round to it, so the figures cover the last window (to within one slot)
and recording costs O(1). Rates over an empty window are defined, never a division by
zero: no requests means error rate 0, completion rate 1, and no average latency (None).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from zg_load.outcome import Outcome, classify

# Slot fields, by index.
_REQUESTS, _ERRORS, _COMPLETED, _LATENCY_S, _BUSY_S = range(5)


@dataclass(frozen=True, slots=True)
class WindowFigures:
    avg_response_time_ms: float | None
    error_rate: float
    task_completion_rate: float
    busy_s: float
    span_s: float


@dataclass(slots=True)
class ApprovalCounters:
    """Approvals answered since start or the last reset."""

    admitted: int = 0
    refused_budget: int = 0
    shed: int = 0
    errors: int = 0


@dataclass(slots=True)
class TaskCounters:
    """Tasks answered since start or the last reset; `fallbacks` did not use the first model."""

    completed: int = 0
    failed: int = 0
    fallbacks: int = 0


class Metrics:
    """Rolling-window figures and cumulative counters of one service instance."""

    def __init__(
        self, window_s: float, buckets: int = 10, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._slot_s = window_s / buckets
        self._clock = clock
        self._started_s = clock()
        self._epochs = [-1] * buckets
        self._slots = [[0.0] * 5 for _ in range(buckets)]
        self.counters = ApprovalCounters()
        self.tasks = TaskCounters()

    def record_task(self, completed: bool, fell_back: bool, latency_s: float) -> None:
        """Count one task answer: completed, or failed because no model answered."""
        slot = self._slot()
        slot[_REQUESTS] += 1
        slot[_LATENCY_S] += latency_s
        slot[_COMPLETED if completed else _ERRORS] += 1
        self.tasks.completed += completed
        self.tasks.failed += not completed
        self.tasks.fallbacks += fell_back

    def record_answer(self, status: int, error_type: str | None, latency_s: float) -> None:
        """Count one approval answer. Errors are non-refusal failures; a completed request
        is one the service decided (admitted or refused for budget)."""
        outcome, reason = classify(status, error_type)
        slot = self._slot()
        slot[_REQUESTS] += 1
        slot[_LATENCY_S] += latency_s
        if outcome is Outcome.ERROR:
            slot[_ERRORS] += 1
            self.counters.errors += 1
        elif outcome is Outcome.OK or reason == "budget_exceeded":
            slot[_COMPLETED] += 1
        self._count(outcome, reason)

    def record_busy(self, busy_s: float) -> None:
        """Worker time spent on one job, counted in the slot where the job ended."""
        self._slot()[_BUSY_S] += busy_s

    def figures(self) -> WindowFigures:
        now_slot = int(self._clock() / self._slot_s)
        live = [
            s
            for e, s in zip(self._epochs, self._slots, strict=True)
            if now_slot - e < len(self._slots)
        ]
        total = [sum(s[i] for s in live) for i in range(5)]
        span_s = min(self._slot_s * len(self._slots), self._clock() - self._started_s)
        requests = total[_REQUESTS]
        return WindowFigures(
            avg_response_time_ms=1000 * total[_LATENCY_S] / requests if requests else None,
            error_rate=total[_ERRORS] / requests if requests else 0.0,
            task_completion_rate=total[_COMPLETED] / requests if requests else 1.0,
            busy_s=total[_BUSY_S],
            span_s=max(span_s, 1e-3),
        )

    def reset(self) -> None:
        self._started_s = self._clock()
        self._epochs = [-1] * len(self._epochs)
        self.counters = ApprovalCounters()
        self.tasks = TaskCounters()

    def _slot(self) -> list[float]:
        epoch = int(self._clock() / self._slot_s)
        index = epoch % len(self._slots)
        if self._epochs[index] != epoch:
            self._epochs[index] = epoch
            self._slots[index] = [0.0] * 5
        return self._slots[index]

    def _count(self, outcome: Outcome, reason: str | None) -> None:
        if outcome is Outcome.OK:
            self.counters.admitted += 1
        elif reason == "budget_exceeded":
            self.counters.refused_budget += 1
        elif reason == "overloaded":
            self.counters.shed += 1
