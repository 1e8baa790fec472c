"""Anomalies and conflict checks on the real server: actions carried out, exact values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from zg_load.aiops import ServiceConfig, serving

pytestmark = pytest.mark.anyio

# time_scale 0.01: de-duplication lasts 0.6 s, shedding orders 0.3 s.
CONFIG = ServiceConfig(approval_service_time_s=0.0, time_scale=0.01)


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: object = None
) -> tuple[int, Any, Any]:
    async with http.request(method, path, json=body) as resp:
        return resp.status, await resp.json(), resp.headers


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with serving(CONFIG) as running, aiohttp.ClientSession(running.url) as session:
        yield session


def alert(kind: str, severity: str, **details: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "severity": severity,
        "details": details,
        "timestamp": "2025-01-01T00:00:00Z",
    }


def approval(priority: int) -> dict[str, Any]:
    return {"task_description": "t", "estimated_cost": 0.01, "priority": priority}


async def test_high_severity_sheds_the_lowest_priority_for_a_while(
    http: aiohttp.ClientSession,
) -> None:
    with anyio.fail_after(10):
        status, answer, _ = await call(
            http, "POST", "/v1/anomalies", alert("queue_backlog", "high")
        )
        assert (status, answer) == (
            202,
            {
                "anomaly_id": "anm_1",
                "actions": ["notify", "shed_priority:1"],
                "deduplicated": False,
            },
        )
        status, error, headers = await call(http, "POST", "/v1/approvals", approval(1))
        assert (status, error["error"]["type"]) == (503, "overloaded")
        assert int(headers["Retry-After"]) >= 1
        assert (await call(http, "POST", "/v1/approvals", approval(2)))[0] == 201
        _, status_body, _ = await call(http, "GET", "/v1/status")
        assert status_body["shed_by_priority"]["1"] == 1
        await anyio.sleep(0.35)
        assert (await call(http, "POST", "/v1/approvals", approval(1)))[0] == 201


async def test_duplicates_within_the_window(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        first = (await call(http, "POST", "/v1/anomalies", alert("error_spike", "low")))[1]
        again = (await call(http, "POST", "/v1/anomalies", alert("error_spike", "low")))[1]
        other = (await call(http, "POST", "/v1/anomalies", alert("error_spike", "medium")))[1]
        assert (first["actions"], again, other["anomaly_id"]) == (
            ["notify"],
            {"anomaly_id": first["anomaly_id"], "actions": [], "deduplicated": True},
            "anm_2",
        )
        _, notes, _ = await call(http, "GET", "/v1/notifications")
        assert [(n["kind"], n["details"]["type"]) for n in notes] == [
            ("anomaly_received", "error_spike"),
            ("anomaly_received", "error_spike"),
        ]
        await anyio.sleep(0.65)
        later = (await call(http, "POST", "/v1/anomalies", alert("error_spike", "low")))[1]
        assert (later["anomaly_id"], later["deduplicated"]) == ("anm_3", False)


async def test_cool_down_opens_the_model_breaker(http: aiohttp.ClientSession) -> None:
    with anyio.fail_after(10):
        body = alert("model_errors", "critical", model="premium")
        _, answer, _ = await call(http, "POST", "/v1/anomalies", body)
        assert answer["actions"] == ["notify", "cool_down:premium"]
        _, status, _ = await call(http, "GET", "/v1/status")
        assert [m["state"] for m in status["models"]] == ["open", "closed", "closed"]
        task = {"task": {"type": "t", "description": "d"}}
        _, result, _ = await call(http, "POST", "/v1/tasks", task)
        assert [(a["model"], a["outcome"]) for a in result["attempts"]] == [
            ("premium", "breaker_open"),
            ("standard", "ok"),
        ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "x"}, "severity"),
        ({"type": "x", "severity": "urgent"}, "severity"),
        ({"severity": "low"}, "type"),
        ({"type": "x", "severity": "low", "details": [1]}, "details"),
        ({"type": "x", "severity": "low", "source": "m"}, "source"),
    ],
)
async def test_bad_anomaly_names_the_field(
    http: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    with anyio.fail_after(10):
        status, error, _ = await call(http, "POST", "/v1/anomalies", body)
        assert status == 400 and error["error"]["message"].startswith(f"{field}: ")


async def test_conflicts_resolve_exactly(http: aiohttp.ClientSession) -> None:
    results = {
        "a": {"claims": {"revenue_musd": 100, "region": "EMEA", "capital_japan": "Tokyo"}},
        "b": {"claims": {"revenue_musd": 100.4, "region": "emea", "capital_japan": "Tokyo"}},
        "c": {"claims": {"revenue_musd": 130, "region": "APAC", "only_c": 1}, "output": "x"},
    }
    with anyio.fail_after(10):
        status, report, _ = await call(
            http, "POST", "/v1/conflicts/check", {"results": results, "tolerance": 0.01}
        )
        assert status == 200
        assert report["resolution_time_ms"] >= 0
        del report["resolution_time_ms"]
        assert report == {
            "conflicts_count": 2,
            "resolved_count": 2,
            "conflicts": [
                {
                    "key": "region",
                    "values": {"a": "EMEA", "b": "emea", "c": "APAC"},
                    "resolved_value": "EMEA",
                    "dissenting_agents": ["c"],
                    "method": "majority",
                },
                {
                    "key": "revenue_musd",
                    "values": {"a": 100, "b": 100.4, "c": 130},
                    "resolved_value": 100.4,
                    "dissenting_agents": ["c"],
                    "method": "median",
                },
            ],
            "agreement_ratio": 1 / 3,
        }
        _, notes, _ = await call(http, "GET", "/v1/notifications")
        assert [(n["kind"], n["details"]) for n in notes] == [
            ("conflict_detected", {"keys": ["region", "revenue_musd"], "agents": ["a", "b", "c"]})
        ]


async def test_three_agents_hundred_hundred_130(http: aiohttp.ClientSession) -> None:
    results = {
        agent: {"claims": {"latency_ms": v}}
        for agent, v in zip("abc", (100, 100, 130), strict=True)
    }
    with anyio.fail_after(10):
        _, report, _ = await call(http, "POST", "/v1/conflicts/check", {"results": results})
        (conflict,) = report["conflicts"]
        assert (conflict["resolved_value"], conflict["dissenting_agents"]) == (100, ["c"])
        assert report["agreement_ratio"] == 0.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "results"),
        ({"results": {"a": {"claims": {"k": [1]}}}}, "results.a.claims.k"),
        ({"results": {"a": {}}}, "results.a.claims"),
        ({"results": {}, "tolerance": 2}, "tolerance"),
    ],
)
async def test_bad_conflict_check_names_the_field(
    http: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    with anyio.fail_after(10):
        status, error, _ = await call(http, "POST", "/v1/conflicts/check", body)
        assert status == 400 and error["error"]["message"].startswith(f"{field}: ")
