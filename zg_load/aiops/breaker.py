"""A circuit breaker per model: closed, open, half-open, as resilience4j counts them.

Guarantees:
- closed: outcomes are counted over the last `window_calls` calls no older than
  `window_s`; the breaker opens when at least `min_calls` of them are counted and the
  failure rate is at least `failure_threshold`;
- open: every call is refused until `open_wait_s` has passed; the state then reads
  half-open;
- half-open: exactly one trial call at a time (a "recovery attempt"); its success
  closes the breaker with an empty window, its failure opens it again for a new wait;
- a trial that ends without an outcome (the caller went away) frees the trial slot.
The clock is injected, so the transitions are tested without sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window_calls: int = 20
    window_s: float = 10.0
    min_calls: int = 5
    failure_threshold: float = 0.5
    open_wait_s: float = 5.0

    def scaled(self, time_scale: float) -> BreakerPolicy:
        return BreakerPolicy(
            self.window_calls,
            self.window_s * time_scale,
            self.min_calls,
            self.failure_threshold,
            self.open_wait_s * time_scale,
        )


class Breaker:
    """The breaker of one model; see the module docstring."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._calls: deque[tuple[float, bool]] = deque(maxlen=policy.window_calls)
        self._opened_at_s: float | None = None
        self._trial_running = False
        self.recovery_attempts = 0

    @property
    def state(self) -> str:
        if self._opened_at_s is None:
            return CLOSED
        if self._clock() - self._opened_at_s < self._policy.open_wait_s:
            return OPEN
        return HALF_OPEN

    def failure_rate(self) -> float:
        """Failures over counted calls in the window (0.0 when none are counted)."""
        calls = self._live_calls()
        return sum(1 for _, ok in calls if not ok) / len(calls) if calls else 0.0

    def acquire(self) -> bool:
        """Whether a call may go ahead now; in half-open this takes the one trial slot."""
        state = self.state
        if state == CLOSED:
            return True
        if state == OPEN or self._trial_running:
            return False
        self._trial_running = True
        self.recovery_attempts += 1
        return True

    def record(self, ok: bool) -> None:
        """The outcome of a call that `acquire` let through."""
        if self._trial_running:
            self._trial_running = False
            self._close() if ok else self.trip()
            return
        if self._opened_at_s is not None:
            return  # a call started before the breaker opened: already counted enough
        self._calls.append((self._clock(), ok))
        if self._should_open():
            self.trip()

    def abandon(self) -> None:
        """A call that `acquire` let through ended without an outcome."""
        self._trial_running = False

    def trip(self) -> None:
        """Open now (a failure threshold crossed, a failed trial, or a cool-down order)."""
        self._opened_at_s = self._clock()
        self._calls.clear()

    def reset(self) -> None:
        self._close()
        self._trial_running = False
        self.recovery_attempts = 0

    def _close(self) -> None:
        self._opened_at_s = None
        self._calls.clear()

    def _live_calls(self) -> list[tuple[float, bool]]:
        oldest_s = self._clock() - self._policy.window_s
        return [call for call in self._calls if call[0] >= oldest_s]

    def _should_open(self) -> bool:
        calls = self._live_calls()
        if len(calls) < self._policy.min_calls:
            return False
        return self.failure_rate() >= self._policy.failure_threshold
