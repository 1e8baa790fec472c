"""Priority admission: a bounded waiting queue in front of a fixed pool of workers.

Guarantees:
- workers take the highest priority first (5 before 1), FIFO within a priority;
- shedding rule: when an arrival makes more than `queue_bound` requests wait, the waiting
  request with the lowest priority is shed, and among equals the newest one. An arrival
  that ties the lowest waiting priority is therefore itself shed; older requests keep
  their place;
- a request that has waited `max_queue_wait_s` is shed, when a worker reaches it or when
  the sweeper (every few ms) finds it, whichever comes first;
- a priority under a shedding order (`shed_priority`, from an anomaly's action) is shed
  on arrival until the order ends, with Retry-After the seconds left;
- each submitted job gets exactly one result: the handler's result, a `Shed`, or the
  handler's exception; a job whose caller went away is never handled.
Each job holds a worker for `service_time_s` (an awaited sleep, so storms queue for real)
before the synchronous handler decides it.
With `fifo=True` (the "shedding" defect) priority is ignored: workers take the oldest
waiting job and a full queue sheds the newest one, whatever the priorities.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")

PRIORITIES = (1, 2, 3, 4, 5)
QUEUE_FULL = "queue_full"
QUEUE_WAIT = "queue_wait"
SHUTDOWN = "shutdown"
ORDERED = "shed_order"
MAX_RETRY_AFTER_S = 60


@dataclass(frozen=True, slots=True)
class Shed:
    """A job refused without being handled; `reason` is one of the constants above."""

    reason: str
    priority: int
    retry_after_s: int


@dataclass(slots=True, eq=False)
class _Ticket(Generic[J, R]):
    job: J
    priority: int
    enqueued_s: float
    future: asyncio.Future[R | Shed]


class Admission(Generic[J, R]):
    """Admits jobs by priority through `workers` concurrent slots; see the module docstring."""

    def __init__(
        self,
        handle: Callable[[J], R],
        *,
        workers: int,
        service_time_s: float,
        queue_bound: int,
        max_queue_wait_s: float,
        on_busy: Callable[[float], None] | None = None,
        fifo: bool = False,
    ) -> None:
        self._handle = handle
        self._workers = workers
        self._service_time_s = service_time_s
        self._queue_bound = queue_bound
        self._max_wait_s = max_queue_wait_s
        self._on_busy = on_busy
        self._fifo = fifo
        self._queues: dict[int, deque[_Ticket[J, R]]] = {p: deque() for p in PRIORITIES}
        self._waiting = 0
        self._inflight = 0
        self._idle: deque[asyncio.Future[None]] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._shed_until_s: dict[int, float] = {}
        self.shed_by_priority: dict[int, int] = dict.fromkeys(PRIORITIES, 0)

    @property
    def queue_depth(self) -> int:
        return self._waiting

    @property
    def inflight(self) -> int:
        return self._inflight

    def start(self) -> None:
        """Start the workers and the wait sweeper on the running loop."""
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._sweep()))

    async def stop(self) -> None:
        """Shed every waiting job, stop the workers; jobs in service are shed too."""
        self._closing = True
        self._shed_all(SHUTDOWN)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def reset_counters(self) -> None:
        self.shed_by_priority = dict.fromkeys(PRIORITIES, 0)
        self._shed_until_s = {}

    def shed_priority(self, priority: int, for_s: float) -> None:
        """Shed every arrival at `priority` for the next `for_s` seconds."""
        self._shed_until_s[priority] = time.monotonic() + for_s

    async def submit(self, job: J, priority: int) -> R | Shed:
        """Queue `job` at `priority` (1..5) and wait for its result."""
        if self._closing:
            return self._count_shed(SHUTDOWN, priority)
        ordered_s = self._shed_until_s.get(priority, 0.0) - time.monotonic()
        if ordered_s > 0:
            self.shed_by_priority[priority] += 1
            return Shed(ORDERED, priority, min(MAX_RETRY_AFTER_S, max(1, math.ceil(ordered_s))))
        ticket: _Ticket[J, R] = _Ticket(
            job, priority, time.monotonic(), asyncio.get_running_loop().create_future()
        )
        self._queues[priority].append(ticket)
        self._waiting += 1
        if self._waiting > self._queue_bound:
            self._shed(self._pop_victim(), QUEUE_FULL)
        self._wake_worker()
        try:
            return await ticket.future
        except asyncio.CancelledError:
            self._forget(ticket)
            raise

    def _pop_victim(self) -> _Ticket[J, R]:
        if self._fifo:
            return self._pop_by_age(newest=True)
        for priority in PRIORITIES:
            queue = self._queues[priority]
            if queue:
                self._waiting -= 1
                return queue.pop()
        raise AssertionError("no waiting ticket to shed")

    def _pop_next(self) -> _Ticket[J, R] | None:
        if self._fifo:
            return self._pop_by_age(newest=False) if self._waiting else None
        for priority in reversed(PRIORITIES):
            queue = self._queues[priority]
            if queue:
                self._waiting -= 1
                return queue.popleft()
        return None

    def _pop_by_age(self, newest: bool) -> _Ticket[J, R]:
        """The newest (tail) or oldest (head) waiting ticket of any priority."""
        queues = [q for q in self._queues.values() if q]
        if newest:
            queue = max(queues, key=lambda q: q[-1].enqueued_s)
            ticket = queue.pop()
        else:
            queue = min(queues, key=lambda q: q[0].enqueued_s)
            ticket = queue.popleft()
        self._waiting -= 1
        return ticket

    def _forget(self, ticket: _Ticket[J, R]) -> None:
        queue = self._queues[ticket.priority]
        if ticket in queue:
            queue.remove(ticket)
            self._waiting -= 1

    def _wake_worker(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _work(self) -> None:
        while True:
            ticket = await self._take()
            self._inflight += 1
            started_s = time.perf_counter()
            try:
                await self._serve(ticket)
            finally:
                self._inflight -= 1
                if self._on_busy is not None:
                    self._on_busy(time.perf_counter() - started_s)

    async def _take(self) -> _Ticket[J, R]:
        while True:
            ticket = self._pop_next()
            if ticket is None:
                waiter = asyncio.get_running_loop().create_future()
                self._idle.append(waiter)
                await waiter
            elif time.monotonic() - ticket.enqueued_s >= self._max_wait_s:
                self._shed(ticket, QUEUE_WAIT)
            else:
                return ticket

    async def _serve(self, ticket: _Ticket[J, R]) -> None:
        try:
            await asyncio.sleep(self._service_time_s)
        except asyncio.CancelledError:
            self._shed(ticket, SHUTDOWN)
            raise
        if ticket.future.done():  # the caller went away: never spend for nobody
            return
        try:
            ticket.future.set_result(self._handle(ticket.job))
        except Exception as exc:
            ticket.future.set_exception(exc)

    async def _sweep(self) -> None:
        interval_s = min(0.05, max(0.002, self._max_wait_s / 20))
        while True:
            await asyncio.sleep(interval_s)
            self._shed_expired(time.monotonic() - self._max_wait_s)

    def _shed_expired(self, deadline_s: float) -> None:
        for queue in self._queues.values():
            while queue and queue[0].enqueued_s <= deadline_s:
                self._waiting -= 1
                self._shed(queue.popleft(), QUEUE_WAIT)

    def _shed_all(self, reason: str) -> None:
        for queue in self._queues.values():
            while queue:
                self._waiting -= 1
                self._shed(queue.popleft(), reason)

    def _shed(self, ticket: _Ticket[J, R], reason: str) -> None:
        if not ticket.future.done():
            ticket.future.set_result(self._count_shed(reason, ticket.priority))

    def _count_shed(self, reason: str, priority: int) -> Shed:
        self.shed_by_priority[priority] += 1
        return Shed(reason, priority, self._retry_after_s())

    def _retry_after_s(self) -> int:
        drain_s = (self._waiting + self._inflight) * self._service_time_s / self._workers
        return min(MAX_RETRY_AFTER_S, max(1, math.ceil(drain_s)))
