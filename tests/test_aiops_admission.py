"""The admission queue on its own: order, shedding rule, callers that go away."""

from __future__ import annotations

import anyio
import pytest

from zg_load.aiops.admission import QUEUE_FULL, SHUTDOWN, Admission, Shed

pytestmark = pytest.mark.anyio


def admission(
    handled: list[str], *, queue_bound: int, service_time_s: float
) -> Admission[str, str]:
    def handle(job: str) -> str:
        handled.append(job)
        return f"done {job}"

    return Admission(
        handle,
        workers=1,
        service_time_s=service_time_s,
        queue_bound=queue_bound,
        max_queue_wait_s=30.0,
    )


async def test_highest_priority_first_fifo_within() -> None:
    handled: list[str] = []
    queue = admission(handled, queue_bound=100, service_time_s=0.0)
    jobs = [("a1", 1), ("b3", 3), ("c5", 5), ("d3", 3), ("e1", 1), ("f5", 5)]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for job, priority in jobs:  # all queued before the worker starts
                tg.start_soon(queue.submit, job, priority)
            await anyio.sleep(0.01)
            queue.start()
        await queue.stop()
    assert handled == ["c5", "f5", "b3", "d3", "a1", "e1"]


async def test_overflow_sheds_lowest_then_newest() -> None:
    handled: list[str] = []
    queue = admission(handled, queue_bound=3, service_time_s=0.0)
    results: dict[str, str | Shed] = {}

    async def submit(job: str, priority: int) -> None:
        results[job] = await queue.submit(job, priority)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for job, priority in [("a2", 2), ("b1", 1), ("c2", 2), ("d1", 1), ("e4", 4), ("f2", 2)]:
                tg.start_soon(submit, job, priority)
                await anyio.sleep(0.001)  # keeps arrival order
            queue.start()
        await queue.stop()
    shed = sorted(job for job, r in results.items() if isinstance(r, Shed))
    # d1 ties the lowest and is newest; then b1 is the lowest; then f2 is the newest p2.
    assert shed == ["b1", "d1", "f2"]
    assert all(r.reason == QUEUE_FULL for r in results.values() if isinstance(r, Shed))
    assert handled == ["e4", "a2", "c2"]
    assert queue.shed_by_priority == {1: 2, 2: 1, 3: 0, 4: 0, 5: 0}


async def test_a_caller_that_goes_away_is_never_handled() -> None:
    handled: list[str] = []
    queue = admission(handled, queue_bound=10, service_time_s=0.2)
    queue.start()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.submit, "first", 3)
            await anyio.sleep(0.01)
            with anyio.move_on_after(0.05):
                await queue.submit("gone", 5)
            assert queue.queue_depth == 0
        await queue.stop()
    assert handled == ["first"]


async def test_stop_sheds_waiting_and_in_service() -> None:
    handled: list[str] = []
    queue = admission(handled, queue_bound=10, service_time_s=5.0)
    queue.start()
    results: list[str | Shed] = []

    async def submit(job: str) -> None:
        results.append(await queue.submit(job, 3))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for job in ("a", "b", "c"):
                tg.start_soon(submit, job)
            await anyio.sleep(0.05)
            assert (queue.inflight, queue.queue_depth) == (1, 2)
            await queue.stop()
        after = await queue.submit("late", 5)
    assert handled == []
    assert [r.reason for r in results if isinstance(r, Shed)] == [SHUTDOWN] * 3
    assert isinstance(after, Shed) and after.reason == SHUTDOWN
