"""Test doubles shipped with the package: a manual clock and a scripted client.

``ManualClock`` gives the running asyncio loop virtual time that jumps straight to the
next timer whenever nothing is ready (autojump), so "10 s at 1,000/s with a 2 s stall"
runs in milliseconds and every latency is exact. It drives the loop's own timers, so
``anyio.sleep`` and ``anyio.move_on_after`` follow it. Use only with clients that do
no real I/O, such as ``ScriptedClient``.

``ScriptedClient`` answers approvals after a fixed service time; during a stall
window the service is frozen and answers only when the stall ends.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from zg_load.client import Answer
from zg_load.outcome import Outcome

NS_PER_S = 1_000_000_000


class ManualClock:
    """Virtual nanoseconds for the running loop; starts at ``start_ns``."""

    def __init__(self, start_ns: int = 0, epoch0_s: float = 1_700_000_000.0) -> None:
        self._t_ns = start_ns
        self._epoch0_s = epoch0_s

    def now_ns(self) -> int:
        return self._t_ns

    def epoch_s(self, at_ns: int) -> float:
        return self._epoch0_s + at_ns / NS_PER_S

    async def sleep_until(self, deadline_ns: int) -> None:
        await anyio.sleep(max(0, deadline_ns - self._t_ns) / NS_PER_S)
        # Float seconds in the loop's timers can land a nanosecond short; snap exactly.
        self._t_ns = max(self._t_ns, deadline_ns)

    def _time(self) -> float:
        return self._t_ns / NS_PER_S

    def _select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("ManualClock: every task is waiting and no timer is set (deadlock)")
        # Jump to (at least) the earliest timer, so it fires on this iteration.
        self._t_ns += math.ceil(timeout * NS_PER_S)
        return []

    @contextmanager
    def installed(self) -> Iterator[ManualClock]:
        """Install virtual time on the running asyncio loop for the duration."""
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        loop.time = self._time  # type: ignore[method-assign]
        selector.select = self._select
        try:
            yield self
        finally:
            del loop.time
            del selector.select


@dataclass
class ScriptedClient:
    """Answers approvals after ``service_time_s``; frozen during ``stalls`` (start_s, end_s).

    ``refuse(priority, now_s)`` may return a refusal reason ("overloaded",
    "budget_exceeded", "rate_limited") to refuse that request instead of admitting it.
    """

    clock: ManualClock
    service_time_s: float = 0.001
    stalls: Sequence[tuple[float, float]] = ()
    refuse: Callable[[int, float], str | None] | None = None
    calls: list[tuple[float, int]] = field(default_factory=list)

    def _done_at_ns(self) -> int:
        now_s = self.clock.now_ns() / NS_PER_S
        begin_s = now_s
        for a, b in self.stalls:
            if a <= begin_s < b:
                begin_s = b
        return round((begin_s + self.service_time_s) * NS_PER_S)

    async def request_approval(
        self,
        task_description: str,
        estimated_cost: float,
        priority: int,
        agent_id: str | None = None,
    ) -> Answer:
        now_s = self.clock.now_ns() / NS_PER_S
        self.calls.append((now_s, priority))
        await self.clock.sleep_until(self._done_at_ns())
        reason = self.refuse(priority, now_s) if self.refuse else None
        if reason is not None:
            return Answer(Outcome.REFUSED, 503 if reason == "overloaded" else 429, reason)
        return Answer(Outcome.OK, 201, None, {"approved": True})

    async def set_budget_limit(
        self, max_usd: float, soft_usd: float | None = None, window: str | None = None
    ) -> Answer:
        return Answer(Outcome.OK, 200, None, {"max_usd": max_usd})

    async def get_budget(self) -> Answer:
        return Answer(Outcome.OK, 200, None, {})

    async def get_system_status(self) -> Answer:
        return Answer(Outcome.OK, 200, None, {})

    async def health(self) -> Answer:
        now_s = self.clock.now_ns() / NS_PER_S
        if any(a <= now_s < b for a, b in self.stalls):
            await self.clock.sleep_until(self._done_at_ns())
        return Answer(Outcome.OK, 200, None, {"status": "ok"})

    async def notifications(self, since: int = 0) -> Answer:
        return Answer(Outcome.OK, 200, None, [])

    async def _task(self, task: Mapping[str, Any]) -> Answer:
        await self.clock.sleep_until(self._done_at_ns())
        flagged = bool(task.get("hallucinate"))
        checks = {"hallucination": {"flagged": flagged, "score": 0.0 if flagged else 1.0}}
        body = {
            "status": "completed",
            "model_used": "premium",
            "fallback_index": 0,
            "checks": checks,
        }
        return Answer(Outcome.OK, 200, None, body)

    async def execute_task_with_monitoring(
        self, task: Mapping[str, Any], *, agent_id: str | None = None, **options: Any
    ) -> Answer:
        return await self._task(task)

    async def execute_task_for_agent(
        self, agent_id: str, task: Mapping[str, Any], **options: Any
    ) -> Answer:
        return await self._task(task)

    async def execute_task_with_fallback(
        self, task: Mapping[str, Any], fallbacks: Sequence[str] | None = None, **options: Any
    ) -> Answer:
        return await self._task(task)

    async def check_for_conflicts(self, results: Mapping[str, Any]) -> Answer:
        await self.clock.sleep_until(self._done_at_ns())
        return Answer(Outcome.OK, 200, None, {"conflicts_count": 0, "resolved_count": 0})

    async def handle_anomaly(self, alert: Mapping[str, Any]) -> Answer:
        return Answer(
            Outcome.OK, 202, None, {"anomaly_id": "an_1", "actions": [], "deduplicated": False}
        )

    async def aclose(self) -> None:
        return None
