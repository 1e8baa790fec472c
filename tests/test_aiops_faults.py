"""Faults and admin on the real server: latency, errors, stall, rate limits, merging, auth."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from zg_load.aiops import ServiceConfig, serving
from zg_load.outcome import Outcome, classify

pytestmark = pytest.mark.anyio

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = ServiceConfig(approval_service_time_s=0.0, admin_token=TOKEN, time_scale=0.01)
APPROVAL = {"task_description": "t", "estimated_cost": 0.01, "priority": 3}


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: object = None, **kw: Any
) -> tuple[int, Any, Any]:
    async with http.request(method, path, json=body, **kw) as resp:
        return resp.status, await resp.json(), resp.headers


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with serving(CONFIG) as running, aiohttp.ClientSession(running.url) as session:
        yield session


async def put_faults(http: aiohttp.ClientSession, faults: dict[str, Any]) -> Any:
    status, body, _ = await call(http, "PUT", "/v1/admin/faults", faults, headers=AUTH)
    assert status == 200, body
    return body["faults"]


async def timed(http: aiohttp.ClientSession, path: str) -> float:
    started = time.perf_counter()
    assert (await call(http, "GET", path))[0] == 200
    return time.perf_counter() - started


async def test_faults_need_the_token(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        for method in ("GET", "PUT", "DELETE"):
            status, body, headers = await call(http, method, "/v1/admin/faults", {})
            assert status == 401 and body["error"]["type"] == "unauthorized"
            assert headers["x-request-id"] == body["request_id"]


async def test_latency_adds_delay_but_not_to_health(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await put_faults(http, {"latency": {"ms": 150, "jitter_ms": 10}})
        assert await timed(http, "/v1/status") >= 0.14
        assert await timed(http, "/health") < 0.1
        await call(http, "DELETE", "/v1/admin/faults", headers=AUTH)
        assert await timed(http, "/v1/status") < 0.1


async def test_error_rate_one_fails_every_request(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await put_faults(http, {"error_rate": 1.0})
        for method, path, body in (
            ("POST", "/v1/approvals", APPROVAL),
            ("GET", "/v1/status", None),
            ("GET", "/v1/budget", None),
        ):
            status, answer, _ = await call(http, method, path, body)
            assert (status, answer["error"]["type"]) == (500, "injected_error")
            assert classify(status, answer["error"]["type"])[0] is Outcome.ERROR
        assert (await call(http, "GET", "/health"))[0] == 200
        status, current, _ = await call(http, "GET", "/v1/admin/faults", headers=AUTH)
        assert (status, current) == (200, {"faults": {"error_rate": 1.0}})
        await call(http, "DELETE", "/v1/admin/faults", headers=AUTH)
        assert (await call(http, "POST", "/v1/approvals", APPROVAL))[0] == 201


async def test_stall_holds_requests_until_cleared(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await put_faults(http, {"stall": {"path_prefix": "/v1/approvals", "probability": 1.0}})
        answers: list[int] = []

        async def approve() -> None:
            answers.append((await call(http, "POST", "/v1/approvals", APPROVAL))[0])

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(approve)
            await anyio.sleep(0.3)
            assert answers == [], "stalled requests never answer while the stall is set"
            assert (await call(http, "GET", "/v1/status"))[0] == 200, "other paths go on"
            await call(http, "DELETE", "/v1/admin/faults", headers=AUTH)
        assert answers == [201, 201, 201]


async def test_faults_merge_and_null_removes(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await put_faults(http, {"latency": {"ms": 1}, "models": {"premium": {"available": False}}})
        merged = await put_faults(
            http, {"error_rate": 0.0, "models": {"economy": {"available": False}}}
        )
        assert merged == {
            "latency": {"ms": 1},
            "models": {"premium": {"available": False}, "economy": {"available": False}},
            "error_rate": 0.0,
        }
        merged = await put_faults(http, {"latency": None, "models": {"premium": None}})
        assert merged == {"models": {"economy": {"available": False}}, "error_rate": 0.0}
        _, status, _ = await call(http, "GET", "/v1/status")
        assert [m["available"] for m in status["models"]] == [True, True, False]


@pytest.mark.parametrize(
    ("faults", "field"),
    [
        ({"jitter": 1}, "jitter"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": True}, "error_rate"),
        ({"latency": {"ms": -1}}, "latency.ms"),
        ({"latency": {"seconds": 1}}, "latency.seconds"),
        ({"stall": {"path_prefix": "v1"}}, "stall.path_prefix"),
        ({"models": {"nano": {"available": False}}}, "models.nano"),
        ({"models": {"premium": {"available": "no"}}}, "models.premium.available"),
        ({"agents": {"a": {"hallucination_rate": 2}}}, "agents.a.hallucination_rate"),
        ({"rate_limit": {"burst": 3}}, "rate_limit.per_agent_per_s"),
    ],
)
async def test_bad_faults_name_the_field(
    http: aiohttp.ClientSession, faults: dict[str, Any], field: str
) -> None:
    with anyio.fail_after(10):
        status, body, _ = await call(http, "PUT", "/v1/admin/faults", faults, headers=AUTH)
        assert status == 400 and body["error"]["message"].startswith(f"{field}: ")
        assert (await call(http, "GET", "/v1/admin/faults", headers=AUTH))[1] == {"faults": {}}


async def test_rate_limit_per_agent(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await put_faults(http, {"rate_limit": {"per_agent_per_s": 2}})
        body = {**APPROVAL, "agent_id": "agent-a"}
        answers = [await call(http, "POST", "/v1/approvals", body) for _ in range(3)]
        assert [status for status, _, _ in answers] == [201, 201, 429]
        status, error, headers = answers[2]
        assert error["error"]["type"] == "rate_limit" and int(headers["Retry-After"]) >= 1
        assert classify(status, error["error"]["type"]) == (Outcome.REFUSED, "rate_limited")
        assert (await call(http, "POST", "/v1/approvals", {**body, "agent_id": "b"}))[0] == 201
        assert (await call(http, "POST", "/v1/approvals", APPROVAL))[0] == 201
        task = {"task": {"type": "t", "description": "d"}, "model": "economy"}
        status, _, headers = await call(http, "POST", "/v1/agents/agent-a/tasks", task)
        assert status == 429 and "Retry-After" in headers


async def test_reset_clears_faults_breakers_and_counters(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await put_faults(http, {"models": {"premium": {"available": False}}})
        task = {"task": {"type": "t", "description": "d"}}
        for _ in range(5):
            await call(http, "POST", "/v1/tasks", task)
        _, status, _ = await call(http, "GET", "/v1/status")
        assert status["models"][0]["state"] == "open" and status["tasks"]["fallbacks"] == 5
        assert (await call(http, "POST", "/v1/admin/reset", headers=AUTH))[0] == 200
        _, status, _ = await call(http, "GET", "/v1/status")
        assert [m["state"] for m in status["models"]] == ["closed"] * 3
        assert status["models"][0]["available"] and status["tasks"]["fallbacks"] == 0
        assert (await call(http, "GET", "/v1/notifications"))[1] == []
        assert (await call(http, "GET", "/v1/admin/faults", headers=AUTH))[1] == {"faults": {}}
