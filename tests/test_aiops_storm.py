"""Admission under load: budget safety with 1000 concurrent approvals, shedding order."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from zg_load.aiops import ServiceConfig, serving, start, stop

pytestmark = pytest.mark.anyio


async def approve(
    http: aiohttp.ClientSession, cost_usd: float, priority: int, label: str = "t"
) -> tuple[int, Any, str | None]:
    body = {"task_description": label, "estimated_cost": cost_usd, "priority": priority}
    async with http.post("/v1/approvals", json=body) as resp:
        return resp.status, await resp.json(), resp.headers.get("Retry-After")


async def status_of(http: aiohttp.ClientSession) -> Any:
    async with http.get("/v1/status") as resp:
        return await resp.json()


async def storm(
    http: aiohttp.ClientSession, costs: list[tuple[float, int]]
) -> list[tuple[int, Any, str | None]]:
    results: list[tuple[int, Any, str | None]] = [(0, None, None)] * len(costs)

    async def one(i: int) -> None:
        results[i] = await approve(http, *costs[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(costs)):
            tg.start_soon(one, i)
    return results


def reserved_micros(db_path: Path) -> tuple[int, int]:
    with sqlite3.connect(db_path) as db:
        count, total = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_micros), 0) FROM reservations"
        ).fetchone()
    return int(count), int(total)


def storm_config(db_path: Path) -> ServiceConfig:
    return ServiceConfig(
        db_path=str(db_path),
        approval_workers=4,
        approval_service_time_s=0.001,
        queue_bound=2000,
        max_queue_wait_s=30.0,
        budget_usd=100.0,
    )


async def test_1000_concurrent_approvals_never_cross_the_limit(tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    with anyio.fail_after(60):
        async with (
            serving(storm_config(db_path)) as running,
            aiohttp.ClientSession(running.url, connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            results = await storm(http, [(0.3, random.randint(1, 5)) for _ in range(1000)])
            status = await status_of(http)
    statuses = Counter(s for s, _, _ in results)
    assert statuses == {201: 333, 429: 667}  # floor(100 / 0.3) = 333
    assert reserved_micros(db_path) == (333, 333 * 300_000)
    assert status["approvals"] == {"admitted": 333, "refused_budget": 667, "shed": 0}
    assert status["budget"]["reserved_usd"] == pytest.approx(99.9)
    ids = {a["approval_id"] for s, a, _ in results if s == 201}
    assert len(ids) == 333


async def test_mixed_costs_refuse_only_what_no_longer_fits(tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    rng = random.Random(7)
    costs = [(round(rng.uniform(0.01, 2.0), 2), rng.randint(1, 5)) for _ in range(600)]
    with anyio.fail_after(60):
        async with (
            serving(storm_config(db_path)) as running,
            aiohttp.ClientSession(running.url, connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            results = await storm(http, costs)
            remaining_usd = (await status_of(http))["budget"]["remaining_usd"]
    admitted = [cost for (cost, _), (s, _, _) in zip(costs, results, strict=True) if s == 201]
    refused = [cost for (cost, _), (s, _, _) in zip(costs, results, strict=True) if s == 429]
    assert len(admitted) + len(refused) == len(costs) and refused
    count, total_micros = reserved_micros(db_path)
    assert count == len(admitted) and total_micros <= 100_000_000
    assert total_micros == sum(round(c * 1_000_000) for c in admitted)
    assert min(refused) > remaining_usd, "a refusal must be for more than ever remained"


def one_worker(
    queue_bound: int, service_time_s: float, max_queue_wait_s: float = 30.0
) -> ServiceConfig:
    return ServiceConfig(
        approval_workers=1,
        approval_service_time_s=service_time_s,
        queue_bound=queue_bound,
        max_queue_wait_s=max_queue_wait_s,
    )


async def wait_until(http: aiohttp.ClientSession, key: str, value: Any) -> None:
    """Poll GET /v1/status until `status[key] == value` (bounded by the test's fail_after)."""
    for _ in range(100_000):
        if (await status_of(http))[key] == value:
            return
        await anyio.sleep(0.002)


async def test_shedding_takes_the_lowest_priorities(tmp_path: Path) -> None:
    mix = [1, 2, 5, 1, 3, 2, 5, 1, 3, 2]  # 3 x p1, 3 x p2, 2 x p3, 2 x p5 into 4 places
    with anyio.fail_after(20):
        async with (
            serving(one_worker(4, 0.3)) as running,
            aiohttp.ClientSession(running.url) as http,
        ):
            async with anyio.create_task_group() as tg:
                tg.start_soon(approve, http, 0.01, 5, "blocker")
                await wait_until(http, "inflight", 1)
                results = await storm(http, [(0.01, p) for p in mix])
            status = await status_of(http)
    shed = Counter(p for p, (s, _, _) in zip(mix, results, strict=True) if s == 503)
    assert shed == {1: 3, 2: 3}
    assert status["shed_by_priority"] == {"1": 3, "2": 3, "3": 0, "4": 0, "5": 0}
    assert status["approvals"]["shed"] == 6
    for s, answer, retry_after in results:
        if s == 503:
            assert answer["error"]["type"] == "overloaded"
            assert retry_after is not None and int(retry_after) >= 1
    served = sorted((int(a["approval_id"][4:]), a["priority"]) for s, a, _ in results if s == 201)
    assert [p for _, p in served] == [5, 5, 3, 3], "highest priority is served first"


async def test_equal_lowest_priority_sheds_the_newest() -> None:
    labels: dict[str, tuple[int, Any, str | None]] = {}
    with anyio.fail_after(20):
        async with (
            serving(one_worker(2, 0.5)) as running,
            aiohttp.ClientSession(running.url) as http,
        ):

            async def send(label: str, priority: int) -> None:
                labels[label] = await approve(http, 0.01, priority, label)

            async with anyio.create_task_group() as tg:
                tg.start_soon(send, "blocker", 5)
                await wait_until(http, "inflight", 1)
                tg.start_soon(send, "A", 2)
                await wait_until(http, "queue_depth", 1)
                tg.start_soon(send, "B", 2)
                await wait_until(http, "queue_depth", 2)
                await send("C", 2)  # ties the lowest and is the newest: shed at once
                tg.start_soon(send, "D", 3)  # B is now the newest of the lowest: shed
                shed = {"1": 0, "2": 2, "3": 0, "4": 0, "5": 0}
                await wait_until(http, "shed_by_priority", shed)
    assert {k: v[0] for k, v in labels.items()} == {
        "blocker": 201,
        "A": 201,
        "B": 503,
        "C": 503,
        "D": 201,
    }
    assert approval_number(labels["D"]) < approval_number(labels["A"]), "p3 is served before p2"


def approval_number(result: tuple[int, Any, str | None]) -> int:
    return int(result[1]["approval_id"][4:])


async def test_long_waits_are_shed() -> None:
    with anyio.fail_after(20):
        async with (
            serving(one_worker(10, 0.4, max_queue_wait_s=0.1)) as running,
            aiohttp.ClientSession(running.url) as http,
        ):
            async with anyio.create_task_group() as tg:
                tg.start_soon(approve, http, 0.01, 1, "blocker")
                await wait_until(http, "inflight", 1)
                status, answer, retry_after = await approve(http, 0.01, 5)
            final = await status_of(http)
    assert status == 503 and "queue_wait" in answer["error"]["message"]
    assert retry_after is not None and int(retry_after) >= 1
    assert final["shed_by_priority"]["5"] == 1


async def test_health_answers_during_a_storm() -> None:
    with anyio.fail_after(20):
        config = ServiceConfig(approval_workers=1, approval_service_time_s=0.05, queue_bound=500)
        async with (
            serving(config) as running,
            aiohttp.ClientSession(running.url, connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(approve, http, 0.0, 1)
                await wait_until(http, "inflight", 1)
                started = anyio.current_time()
                async with http.get("/health") as resp:
                    assert resp.status == 200 and await resp.json() == {"status": "ok"}
                assert anyio.current_time() - started < 0.5
                assert (await status_of(http))["queue_depth"] > 50
                tg.cancel_scope.cancel()


async def test_stop_answers_waiting_approvals_at_once() -> None:
    with anyio.fail_after(20):
        config = ServiceConfig(approval_workers=1, approval_service_time_s=10.0)
        running = await start(config)
        try:
            async with aiohttp.ClientSession(running.url) as http:
                results: list[int] = []

                async def send(priority: int) -> None:
                    results.append((await approve(http, 0.01, priority))[0])

                async with anyio.create_task_group() as tg:
                    for priority in (1, 2, 3, 4, 5):
                        tg.start_soon(send, priority)
                    await wait_until(http, "queue_depth", 4)
                    started = anyio.current_time()
                    await stop(running)
        finally:
            await stop(running)  # stop is idempotent; this one only matters on failure
    assert anyio.current_time() - started < 2.0
    assert results == [503] * 5
