from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest
from multidict import CIMultiDictProxy

from zg_load.aiops import Running, ServiceConfig, serving
from zg_load.outcome import Outcome, classify

pytestmark = pytest.mark.anyio

FAST = ServiceConfig(approval_service_time_s=0.0, admin_token="secret-token")


@dataclass
class Api:
    running: Running
    http: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, body: object = None, **kwargs: object
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        async with self.http.request(method, path, json=body, **kwargs) as resp:  # type: ignore[arg-type]
            assert resp.headers.get("x-request-id"), f"{method} {path} has no x-request-id"
            return resp.status, await resp.json(), resp.headers

    async def approve(self, cost_usd: float, priority: int = 3) -> tuple[int, Any]:
        body = {"task_description": "t", "estimated_cost": cost_usd, "priority": priority}
        status, answer, _ = await self.call("POST", "/v1/approvals", body)
        return status, answer


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with serving(FAST) as running, aiohttp.ClientSession(running.url) as http:
        yield Api(running, http)


async def test_budget_put_get_arithmetic(api: Api) -> None:
    with anyio.fail_after(10):
        status, put, _ = await api.call("PUT", "/v1/budget", {"max_usd": 10.0, "window": "12h"})
        assert status == 200
        assert {k: put[k] for k in ("max_usd", "soft_usd", "window")} == {
            "max_usd": 10.0,
            "soft_usd": 8.0,
            "window": "12h",
        }
        assert (await api.approve(2.5))[0] == 201
        status, got, _ = await api.call("GET", "/v1/budget")
        assert status == 200 and isinstance(got, dict)
        assert {k: got[k] for k in ("spent_usd", "reserved_usd", "remaining_usd")} == {
            "spent_usd": 0.0,
            "reserved_usd": 2.5,
            "remaining_usd": 7.5,
        }
        assert got["resets_at"].endswith(("T00:00:00Z", "T12:00:00Z"))


async def test_exhaustion_admits_exactly_floor_of_limit_over_cost(api: Api) -> None:
    with anyio.fail_after(10):
        await api.call("PUT", "/v1/budget", {"max_usd": 10.0})
        answers = [await api.approve(3.0, priority=4) for _ in range(4)]
        assert [status for status, _ in answers] == [201, 201, 201, 429]
        assert answers[0][1] == {
            "approval_id": "apr_1",
            "approved": True,
            "reserved_usd": 3.0,
            "remaining_usd": 7.0,
            "priority": 4,
        }
        assert [a["remaining_usd"] for _, a in answers[:3]] == [7.0, 4.0, 1.0]
        refused = answers[3][1]
        assert isinstance(refused, dict) and refused["error"]["type"] == "budget_exceeded"
        assert classify(429, refused["error"]["type"]) == (Outcome.REFUSED, "budget_exceeded")


async def test_budget_refusal_has_no_retry_after(api: Api) -> None:
    with anyio.fail_after(10):
        await api.call("PUT", "/v1/budget", {"max_usd": 1.0})
        body = {"task_description": "t", "estimated_cost": 2.0, "priority": 5}
        status, _, headers = await api.call("POST", "/v1/approvals", body)
        assert status == 429 and "Retry-After" not in headers


async def test_soft_limit_notification_once_and_since(api: Api) -> None:
    with anyio.fail_after(10):
        await api.call("PUT", "/v1/budget", {"max_usd": 10.0, "soft_usd": 5.0})
        for _ in range(4):
            await api.approve(2.0)
        status, notes, _ = await api.call("GET", "/v1/notifications")
        assert status == 200 and isinstance(notes, list)
        assert [(n["id"], n["kind"]) for n in notes] == [(1, "budget_soft_limit")]
        assert notes[0]["details"]["committed_usd"] == 6.0
        for _ in range(2):
            await api.approve(2.0)  # 10.0 committed, then a refusal
        _, notes, _ = await api.call("GET", "/v1/notifications?since=1")
        assert [(n["id"], n["kind"]) for n in notes] == [(2, "budget_exhausted")]
        _, notes, _ = await api.call("GET", "/v1/notifications?since=2")
        assert notes == []


async def test_new_limit_rearms_soft_limit(api: Api) -> None:
    with anyio.fail_after(10):
        await api.call("PUT", "/v1/budget", {"max_usd": 10.0})
        for _ in range(5):
            await api.approve(2.0)
        await api.call("PUT", "/v1/budget", {"max_usd": 20.0})
        await api.approve(6.0)  # 16 of 20: the new soft limit
        _, notes, _ = await api.call("GET", "/v1/notifications")
        assert [n["kind"] for n in notes] == ["budget_soft_limit"] * 2


APPROVAL = {"task_description": "t", "estimated_cost": 1.0, "priority": 3}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**APPROVAL, "priority": 0}, "priority"),
        ({**APPROVAL, "priority": 6}, "priority"),
        ({**APPROVAL, "priority": 2.5}, "priority"),
        ({**APPROVAL, "priority": True}, "priority"),
        ({**APPROVAL, "priority": "3"}, "priority"),
        ({k: v for k, v in APPROVAL.items() if k != "priority"}, "priority"),
        ({**APPROVAL, "estimated_cost": -0.01}, "estimated_cost"),
        ({**APPROVAL, "estimated_cost": "1"}, "estimated_cost"),
        ({**APPROVAL, "estimated_cost": 1e300}, "estimated_cost"),
        ({**APPROVAL, "estimated_cost": False}, "estimated_cost"),
        ({**APPROVAL, "task_description": 7}, "task_description"),
        ({"estimated_cost": 1.0, "priority": 3}, "task_description"),
        ({**APPROVAL, "agent_id": 5}, "agent_id"),
        ({**APPROVAL, "model": "x"}, "model"),
        ([1, 2], "body"),
    ],
)
async def test_bad_approval_names_the_field(api: Api, body: object, field: str) -> None:
    with anyio.fail_after(10):
        status, answer, _ = await api.call("POST", "/v1/approvals", body)
        assert status == 400 and isinstance(answer, dict)
        assert answer["error"]["type"] == "invalid_request"
        assert answer["error"]["message"].startswith(f"{field}: ")
        assert answer["request_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "max_usd"),
        ({"max_usd": 5.0, "soft_usd": 6.0}, "soft_usd"),
        ({"max_usd": 5.0, "window": "1x"}, "window"),
        ({"max_usd": 5.0, "limit": 1}, "limit"),
    ],
)
async def test_bad_budget_names_the_field(api: Api, body: object, field: str) -> None:
    with anyio.fail_after(10):
        status, answer, _ = await api.call("PUT", "/v1/budget", body)
        assert status == 400
        assert answer["error"]["message"].startswith(f"{field}: ")


async def test_invalid_json_and_bad_since(api: Api) -> None:
    with anyio.fail_after(10):
        status, answer, _ = await api.call("POST", "/v1/approvals", data=b"{nope")
        assert status == 400 and answer["error"]["message"].startswith("body: ")
        status, answer, _ = await api.call("GET", "/v1/notifications?since=-1")
        assert status == 400 and answer["error"]["message"].startswith("since: ")


async def test_body_limit_is_413(api: Api) -> None:
    with anyio.fail_after(10):
        body = {**APPROVAL, "task_description": "x" * (70 * 1024)}
        status, answer, _ = await api.call("POST", "/v1/approvals", body)
        assert status == 413 and answer["error"]["type"] == "payload_too_large"
        assert answer["error"]["message"] == "body: must be at most 65536 bytes"


async def test_router_errors_are_json_with_request_id(api: Api) -> None:
    with anyio.fail_after(10):
        status, answer, _ = await api.call("GET", "/v1/nowhere")
        assert status == 404 and answer["error"]["type"] == "not_found"
        status, answer, headers = await api.call("GET", "/v1/approvals")
        assert status == 405 and "POST" in headers["Allow"]


async def test_request_id_is_echoed_or_generated(api: Api) -> None:
    with anyio.fail_after(10):
        _, _, headers = await api.call("GET", "/health", headers={"x-request-id": "abc-123"})
        assert headers["x-request-id"] == "abc-123"
        ids = {(await api.call("GET", "/health"))[2]["x-request-id"] for _ in range(3)}
        assert len(ids) == 3


async def test_admin_reset_needs_the_token(api: Api) -> None:
    with anyio.fail_after(10):
        await api.call("PUT", "/v1/budget", {"max_usd": 10.0})
        for _ in range(5):
            await api.approve(2.0)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "secret-token"}):
            status, answer, _ = await api.call("POST", "/v1/admin/reset", headers=headers)
            assert status == 401 and answer["error"]["type"] == "unauthorized"
        auth = {"Authorization": "Bearer secret-token"}
        status, answer, _ = await api.call("POST", "/v1/admin/reset", headers=auth)
        assert status == 200
        _, budget, _ = await api.call("GET", "/v1/budget")
        assert budget["reserved_usd"] == 0.0 and budget["max_usd"] == 10.0
        _, notes, _ = await api.call("GET", "/v1/notifications")
        assert notes == []
        _, status_body, _ = await api.call("GET", "/v1/status")
        assert status_body["approvals"] == {"admitted": 0, "refused_budget": 0, "shed": 0}


async def test_status_shape_and_counts(api: Api) -> None:
    with anyio.fail_after(10):
        await api.call("PUT", "/v1/budget", {"max_usd": 4.0})
        for _ in range(3):
            await api.approve(2.0)
        status, body, _ = await api.call("GET", "/v1/status")
        assert status == 200 and isinstance(body, dict)
        assert body["approvals"] == {"admitted": 2, "refused_budget": 1, "shed": 0}
        assert body["shed_by_priority"] == {str(p): 0 for p in range(1, 6)}
        assert (body["queue_depth"], body["inflight"]) == (0, 0)
        assert [(m["name"], m["state"], m["available"]) for m in body["models"]] == [
            ("premium", "closed", True),
            ("standard", "closed", True),
            ("economy", "closed", True),
        ]
        assert body["tasks"] == {"completed": 0, "failed": 0, "fallbacks": 0, "inflight": 0}
        assert (body["error_rate"], body["task_completion_rate"]) == (0.0, 1.0)
        assert body["avg_response_time_ms"] > 0
        assert 0.0 <= body["resource_utilization"] <= 1.0
        assert body["budget"]["reserved_usd"] == 4.0
