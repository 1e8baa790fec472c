"""Idempotency keys and reservation expiry on the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from zg_load.aiops import ServiceConfig, serving

pytestmark = pytest.mark.anyio

# time_scale 0.001: a reservation lives 0.9 s.
CONFIG = ServiceConfig(approval_service_time_s=0.0, time_scale=0.001)
APPROVAL = {"task_description": "t", "estimated_cost": 3.0, "priority": 3}


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: object = None, key: str | None = None
) -> tuple[int, Any, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    async with http.request(method, path, json=body, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with serving(CONFIG) as running, aiohttp.ClientSession(running.url) as session:
        yield session


async def reserved_usd(http: aiohttp.ClientSession) -> float:
    return float((await call(http, "GET", "/v1/budget"))[1]["reserved_usd"])


async def test_same_key_same_body_replays(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        first = await call(http, "POST", "/v1/approvals", APPROVAL, key="k-1")
        again = await call(http, "POST", "/v1/approvals", APPROVAL, key="k-1")
        assert first[0] == again[0] == 201 and first[1] == again[1]
        assert again[2]["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first[2]
        assert await reserved_usd(http) == 3.0
        other = await call(http, "POST", "/v1/approvals", APPROVAL, key="k-2")
        assert other[1]["approval_id"] != first[1]["approval_id"]


async def test_same_key_different_body_is_409(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await call(http, "POST", "/v1/approvals", APPROVAL, key="k-1")
        status, error, _ = await call(
            http, "POST", "/v1/approvals", {**APPROVAL, "priority": 4}, key="k-1"
        )
        assert (status, error["error"]["type"]) == (409, "idempotency_conflict")


async def test_concurrent_duplicates_reserve_once(http: aiohttp.ClientSession) -> None:
    answers: list[Any] = []

    async def send() -> None:
        answers.append(await call(http, "POST", "/v1/approvals", APPROVAL, key="storm"))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(send)
        assert {a[1]["approval_id"] for a in answers} == {"apr_1"}
        assert await reserved_usd(http) == 3.0


async def test_refusals_replay_but_bad_keys_are_400(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await call(http, "PUT", "/v1/budget", {"max_usd": 1.0})
        first = await call(http, "POST", "/v1/approvals", APPROVAL, key="r")
        again = await call(http, "POST", "/v1/approvals", APPROVAL, key="r")
        assert (first[0], again[0], again[2]["Idempotent-Replayed"]) == (429, 429, "true")
        status, error, _ = await call(http, "POST", "/v1/approvals", APPROVAL, key="x" * 300)
        assert status == 400 and error["error"]["message"].startswith("Idempotency-Key: ")


async def test_unused_reservations_expire(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await call(http, "PUT", "/v1/budget", {"max_usd": 10.0})
        _, approved, _ = await call(http, "POST", "/v1/approvals", APPROVAL)
        assert await reserved_usd(http) == 3.0
        await anyio.sleep(0.5)
        assert await reserved_usd(http) == 3.0
        for _ in range(100):
            if await reserved_usd(http) == 0.0:
                break
            await anyio.sleep(0.05)
        _, budget, _ = await call(http, "GET", "/v1/budget")
        assert (budget["reserved_usd"], budget["spent_usd"], budget["remaining_usd"]) == (
            0.0,
            0.0,
            10.0,
        )
        task = {"approval_id": approved["approval_id"], "task": {"type": "t", "description": "d"}}
        status, error, _ = await call(http, "POST", "/v1/tasks", task)
        assert (status, error["error"]["type"]) == (409, "invalid_approval")
