"""The models behind tasks: calls through circuit breakers, faults and a fallback chain.

Guarantees:
- a chain is tried in order and stops at the first model that answers; each try is an
  attempt with an outcome: ok, unavailable (marked down by a fault: fails at once),
  error (a drawn failure after the model's latency), timeout (the attempt outlived
  `timeout_s`, which bounds each attempt), or breaker_open (not called at all);
- every called attempt counts in its model's breaker; breaker_open attempts do not;
- a model that a task fell back from is "downgraded" (one `model_downgraded` notice,
  naming the model answered instead) until a call to it succeeds again (one
  `model_restored` notice);
- latencies are simulated milliseconds times `time_scale`, awaited for real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from zg_load.aiops.breaker import Breaker, BreakerPolicy
from zg_load.aiops.faults import Faults
from zg_load.aiops.models import MODELS, LatencyDraws, ModelSpec
from zg_load.aiops.notify import Notice, downgraded_notice, restored_notice

OK = "ok"
UNAVAILABLE = "unavailable"
ERROR = "error"
TIMEOUT = "timeout"
BREAKER_OPEN = "breaker_open"


@dataclass(frozen=True, slots=True)
class Attempt:
    model: str
    outcome: str
    latency_ms: float

    def as_json(self) -> dict[str, object]:
        return {"model": self.model, "outcome": self.outcome, "latency_ms": self.latency_ms}


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The model that answered (None: none did), its place in the chain, every attempt."""

    used: ModelSpec | None
    fallback_index: int
    attempts: list[Attempt]


class ModelPool:
    """Every model's breaker and the calls through them; see the module docstring."""

    def __init__(
        self,
        faults: Faults,
        notify: Callable[[Notice], None],
        *,
        seed: int,
        time_scale: float,
    ) -> None:
        self._faults = faults
        self._notify = notify
        self._time_scale = time_scale
        self._draws = LatencyDraws(seed)
        policy = BreakerPolicy().scaled(time_scale)
        self.breakers = {name: Breaker(policy) for name in MODELS}
        self._downgraded: set[str] = set()

    async def run_chain(self, chain: tuple[str, ...], timeout_s: float | None) -> ChainResult:
        attempts: list[Attempt] = []
        for index, name in enumerate(chain):
            attempt = await self.call(name, timeout_s)
            attempts.append(attempt)
            if attempt.outcome == OK:
                self._note_answer(name, attempts)
                return ChainResult(MODELS[name], index, attempts)
        return ChainResult(None, -1, attempts)

    async def call(self, name: str, timeout_s: float | None) -> Attempt:
        """One attempt at model `name`, through its breaker."""
        breaker = self.breakers[name]
        started_s = time.perf_counter()
        if not breaker.acquire():
            return Attempt(name, BREAKER_OPEN, _ms_since(started_s))
        try:
            outcome = await self._call_model(MODELS[name], timeout_s)
        except BaseException:
            breaker.abandon()
            raise
        breaker.record(outcome == OK)
        return Attempt(name, outcome, _ms_since(started_s))

    def cool_down(self, name: str) -> None:
        """Open a model's breaker now (an anomaly's order); it recovers through half-open."""
        self.breakers[name].trip()

    def models_json(self) -> list[dict[str, object]]:
        return [
            {
                "name": spec.name,
                "tier": spec.tier,
                "state": self.breakers[name].state,
                "available": self._faults.model_available(name),
                "failure_rate": self.breakers[name].failure_rate(),
                "recovery_attempts": self.breakers[name].recovery_attempts,
            }
            for name, spec in MODELS.items()
        ]

    def reset(self) -> None:
        for breaker in self.breakers.values():
            breaker.reset()
        self._downgraded.clear()
        self._draws.reset()

    async def _call_model(self, spec: ModelSpec, timeout_s: float | None) -> str:
        if not self._faults.model_available(spec.name):
            return UNAVAILABLE
        latency_s = self._draws.latency_ms(spec) * self._time_scale / 1000
        fails = self._draws.fails(spec, self._faults.model_error_rate(spec.name))
        if timeout_s is not None and latency_s > timeout_s:
            await anyio.sleep(timeout_s)
            return TIMEOUT
        await anyio.sleep(latency_s)
        return ERROR if fails else OK

    def _note_answer(self, used: str, attempts: list[Attempt]) -> None:
        if used in self._downgraded:
            self._downgraded.discard(used)
            self._notify(restored_notice(used))
        for attempt in attempts[:-1]:
            if attempt.model not in self._downgraded:
                self._downgraded.add(attempt.model)
                self._notify(downgraded_notice(attempt.model, used))


def _ms_since(started_s: float) -> float:
    return round((time.perf_counter() - started_s) * 1000, 3)
