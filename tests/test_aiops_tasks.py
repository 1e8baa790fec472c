"""Tasks on the real server: fallback order, breakers, settlement, hallucination flags."""

from __future__ import annotations

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
# time_scale 0.01: premium answers in ~8 ms, breakers wait 50 ms before half-open.
CONFIG = ServiceConfig(approval_service_time_s=0.0, admin_token=TOKEN, time_scale=0.01)


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: object = None, **kw: Any
) -> tuple[int, Any]:
    async with http.request(method, path, json=body, **kw) as resp:
        return resp.status, await resp.json()


def task(description: str = "summarise the quarter", **extra: Any) -> dict[str, Any]:
    return {"task": {"type": "analysis", "description": description}, **extra}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with serving(CONFIG) as running, aiohttp.ClientSession(running.url) as session:
        yield session


async def set_faults(http: aiohttp.ClientSession, faults: dict[str, Any]) -> None:
    assert (await call(http, "PUT", "/v1/admin/faults", faults, headers=AUTH))[0] == 200


def outcomes(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["model"], a["outcome"]) for a in answer["attempts"]]


async def model_states(http: aiohttp.ClientSession) -> dict[str, str]:
    _, status = await call(http, "GET", "/v1/status")
    return {m["name"]: m["state"] for m in status["models"]}


async def test_premium_down_falls_back_to_standard(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        status, healthy = await call(http, "POST", "/v1/tasks", task())
        assert status == 200 and outcomes(healthy) == [("premium", "ok")]
        assert (healthy["model_used"], healthy["fallback_index"]) == ("premium", 0)
        await set_faults(http, {"models": {"premium": {"available": False}}})
        status, answer = await call(http, "POST", "/v1/tasks", task())
        assert status == 200 and answer["status"] == "completed"
        assert outcomes(answer) == [("premium", "unavailable"), ("standard", "ok")]
        assert (answer["model_used"], answer["tier"], answer["fallback_index"]) == (
            "standard",
            "standard",
            1,
        )
        assert (answer["quality"], answer["actual_cost_usd"]) == (0.85, 0.01)
        assert answer["attempts"][1]["latency_ms"] > 0
        _, notes = await call(http, "GET", "/v1/notifications")
        assert [(n["kind"], n["details"]) for n in notes] == [
            ("model_downgraded", {"model": "premium", "fallback_to": "standard"})
        ]
        _, status_body = await call(http, "GET", "/v1/status")
        assert status_body["tasks"] == {"completed": 2, "failed": 0, "fallbacks": 1, "inflight": 0}


async def test_explicit_chain_order_and_no_model_left(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        down = {"available": False}
        await set_faults(http, {"models": {"economy": down, "standard": down}})
        body = task(model="economy", fallbacks=["standard", "premium"])
        _, answer = await call(http, "POST", "/v1/tasks", body)
        assert outcomes(answer) == [
            ("economy", "unavailable"),
            ("standard", "unavailable"),
            ("premium", "ok"),
        ]
        assert answer["fallback_index"] == 2
        status, error = await call(http, "POST", "/v1/tasks", task(model="standard"))
        assert status == 503 and error["error"]["type"] == "models_unavailable"
        assert classify(status, error["error"]["type"])[0] is Outcome.ERROR
        _, status_body = await call(http, "GET", "/v1/status")
        assert (status_body["tasks"]["failed"], status_body["error_rate"]) == (1, 0.5)


async def test_breaker_closed_open_half_open_closed(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await set_faults(http, {"models": {"premium": {"available": False}}})
        premium_only = task(model="premium")
        for _ in range(5):
            _, error = await call(http, "POST", "/v1/tasks", premium_only)
        assert error["error"]["message"].endswith("(premium: unavailable)")
        assert (await model_states(http))["premium"] == "open"
        _, answer = await call(http, "POST", "/v1/tasks", task())
        assert outcomes(answer) == [("premium", "breaker_open"), ("standard", "ok")]
        await anyio.sleep(0.06)  # open_wait 5 s x 0.01
        assert (await model_states(http))["premium"] == "half_open"
        _, error = await call(http, "POST", "/v1/tasks", premium_only)  # failed trial
        assert error["error"]["message"].endswith("(premium: unavailable)")
        assert (await model_states(http))["premium"] == "open"
        await set_faults(http, {"models": {"premium": {"available": True}}})
        await anyio.sleep(0.06)
        _, answer = await call(http, "POST", "/v1/tasks", task())  # successful trial
        assert outcomes(answer) == [("premium", "ok")]
        _, status = await call(http, "GET", "/v1/status")
        premium = status["models"][0]
        assert (premium["state"], premium["recovery_attempts"], premium["available"]) == (
            "closed",
            2,
            True,
        )
        _, notes = await call(http, "GET", "/v1/notifications")
        assert [n["kind"] for n in notes] == ["model_downgraded", "model_restored"]


async def test_per_attempt_timeout(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        body = task(model="premium", fallbacks=["economy"], timeout_s=0.003)
        _, answer = await call(http, "POST", "/v1/tasks", body)
        assert outcomes(answer) == [("premium", "timeout"), ("economy", "ok")]
        assert 3.0 <= answer["attempts"][0]["latency_ms"] < 50.0


async def test_task_settles_its_approval(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await call(http, "PUT", "/v1/budget", {"max_usd": 10.0})
        approval = {"task_description": "t", "estimated_cost": 3.0, "priority": 3}
        _, approved = await call(http, "POST", "/v1/approvals", approval)
        body = task(approval_id=approved["approval_id"], model="economy")
        status, answer = await call(http, "POST", "/v1/tasks", body)
        assert status == 200 and answer["actual_cost_usd"] == 0.002
        _, budget = await call(http, "GET", "/v1/budget")
        assert (budget["spent_usd"], budget["reserved_usd"], budget["remaining_usd"]) == (
            0.002,
            0.0,
            9.998,
        )
        for approval_id in (approved["approval_id"], "apr_999", "nope"):
            status, error = await call(http, "POST", "/v1/tasks", task(approval_id=approval_id))
            assert status == 409 and error["error"]["type"] == "invalid_approval"


async def test_failed_task_releases_its_approval(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await set_faults(http, {"models": {"economy": {"available": False}}})
        approval = {"task_description": "t", "estimated_cost": 3.0, "priority": 3}
        _, approved = await call(http, "POST", "/v1/approvals", approval)
        body = task(approval_id=approved["approval_id"], model="economy")
        assert (await call(http, "POST", "/v1/tasks", body))[0] == 503
        _, budget = await call(http, "GET", "/v1/budget")
        assert (budget["spent_usd"], budget["reserved_usd"]) == (0.0, 0.0)


async def test_settle_endpoint_replaces_the_reservation(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        await call(http, "PUT", "/v1/budget", {"max_usd": 10.0})
        approval = {"task_description": "t", "estimated_cost": 3.0, "priority": 3}
        _, approved = await call(http, "POST", "/v1/approvals", approval)
        path = f"/v1/approvals/{approved['approval_id']}/settle"
        status, settled = await call(http, "POST", path, {"actual_cost": 2.5})
        assert status == 200 and settled["settled_usd"] == 2.5
        budget = settled["budget"]
        assert (budget["spent_usd"], budget["reserved_usd"], budget["remaining_usd"]) == (
            2.5,
            0.0,
            7.5,
        )
        status, error = await call(http, "POST", path, {"actual_cost": 2.5})
        assert status == 409 and error["error"]["type"] == "invalid_approval"


SEEDED_SET = [
    ("capital cities", False),
    ("capital cities", True),
    ("network ports", False),
    ("planet sizes", True),
    ("chemistry basics", True),
    ("quarterly revenue", False),
]


async def test_hallucination_flags_on_a_seeded_set(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        flags, scores = [], []
        for description, forced in SEEDED_SET:
            body = {"task": {"type": "research", "description": description, "hallucinate": forced}}
            _, answer = await call(http, "POST", "/v1/tasks", {**body, "correct": True})
            check = answer["checks"]["hallucination"]
            flags.append(check["flagged"])
            scores.append(check["score"])
            assert check["supported"] + check["contradicted"] + check["unverifiable"] == len(
                answer["claims"]
            )
            fixed = answer["corrected_claims"]
            assert set(fixed) <= set(answer["claims"]) and len(fixed) >= 3
            assert all(k.replace("_", " ") in answer["corrected_output"] for k in fixed)
        assert flags == [False, True, False, True, True, False]
        assert [s == 1.0 for s in scores] == [True, False, True, False, False, True]
        assert all(s <= 0.25 for s, (_, forced) in zip(scores, SEEDED_SET, strict=True) if forced)


async def test_seeded_hallucination_rate_and_agent_faults(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):

        async def flags(path: str, count: int) -> list[bool]:
            found = []
            for i in range(count):
                _, answer = await call(http, "POST", path, task(f"item {i}"))
                found.append(answer["checks"]["hallucination"]["flagged"])
            return found

        await set_faults(http, {"hallucination_rate": 0.5})
        first = await flags("/v1/tasks", 10)
        assert first == [True, True, False, False, False, False, True, False, True, True]
        assert (await call(http, "POST", "/v1/admin/reset", headers=AUTH))[0] == 200
        await set_faults(http, {"hallucination_rate": 0.5})
        assert await flags("/v1/tasks", 10) == first, "the same seed draws the same flags"
        await set_faults(
            http, {"hallucination_rate": 0.0, "agents": {"agent-x": {"hallucination_rate": 1.0}}}
        )
        assert await flags("/v1/agents/agent-x/tasks", 3) == [True] * 3
        assert await flags("/v1/agents/agent-y/tasks", 3) == [False] * 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "task"),
        ({"task": {"description": "d"}}, "task.type"),
        ({"task": {"type": "t", "description": "d", "extra": 1}}, "task.extra"),
        ({"task": {"type": "t", "description": "d", "hallucinate": "yes"}}, "task.hallucinate"),
        (task(model="gpt-9"), "model"),
        (task(fallbacks=["economy", "nano"]), "fallbacks[1]"),
        (task(fallbacks=["premium"]), "fallbacks"),
        (task(timeout_s=0), "timeout_s"),
        (task(correct=1), "correct"),
        (task(priority=3), "priority"),
    ],
)
async def test_bad_task_names_the_field(
    http: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    with anyio.fail_after(10):
        status, error = await call(http, "POST", "/v1/tasks", body)
        assert status == 400 and error["error"]["message"].startswith(f"{field}: ")
