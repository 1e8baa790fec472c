"""The reference service's deliberate defects: each breaks exactly the behaviour it names.

The validation scenarios run against these to prove their checks can fail; here each
defect is shown on the real server (or the admission queue alone) next to the default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest

from zg_load.aiops import ServiceConfig, serving
from zg_load.aiops.__main__ import parse_args
from zg_load.aiops.admission import QUEUE_FULL, Admission, Shed
from zg_load.aiops.config import DEFECTS

pytestmark = pytest.mark.anyio

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config(*defects: str) -> ServiceConfig:
    return ServiceConfig(
        approval_service_time_s=0.0,
        admin_token=TOKEN,
        time_scale=0.01,
        defects=frozenset(defects),
    )


@asynccontextmanager
async def session(*defects: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with serving(config(*defects)) as running, aiohttp.ClientSession(running.url) as http:
        yield http


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: object = None, **kw: Any
) -> tuple[int, Any]:
    async with http.request(method, path, json=body, **kw) as resp:
        return resp.status, await resp.json()


def approval(cost: float, priority: int = 3) -> dict[str, Any]:
    return {"task_description": "t", "estimated_cost": cost, "priority": priority}


def test_defect_names_parse_and_unknown_ones_are_refused() -> None:
    assert set(DEFECTS) == {
        "reservation",
        "shedding",
        "fallback",
        "checks",
        "conflicts",
        "notifications",
    }
    parsed = parse_args(["--defect", "checks", "--defect", "fallback"])
    assert parsed.defects == frozenset({"checks", "fallback"})
    assert parse_args([]).defects == frozenset()
    with pytest.raises(SystemExit):
        parse_args(["--defect", "everything"])
    with pytest.raises(ValueError, match="unknown defect everything"):
        ServiceConfig(defects=frozenset({"everything"}))


@pytest.mark.parametrize(("defects", "second"), [((), 429), (("reservation",), 201)])
async def test_reservation_defect_admits_past_the_budget(
    defects: tuple[str, ...], second: int
) -> None:
    with anyio.fail_after(10):
        async with session(*defects) as http:
            assert (await call(http, "PUT", "/v1/budget", {"max_usd": 10.0}))[0] == 200
            assert (await call(http, "POST", "/v1/approvals", approval(6.0)))[0] == 201
            assert (await call(http, "POST", "/v1/approvals", approval(6.0)))[0] == second
            _, budget = await call(http, "GET", "/v1/budget")
    assert budget["reserved_usd"] == (6.0 if second == 429 else 12.0)


@pytest.mark.parametrize(
    ("defects", "kinds"), [((), ["budget_soft_limit"]), (("notifications",), [])]
)
async def test_notifications_defect_writes_none(defects: tuple[str, ...], kinds: list[str]) -> None:
    with anyio.fail_after(10):
        async with session(*defects) as http:
            await call(http, "PUT", "/v1/budget", {"max_usd": 10.0, "soft_usd": 8.0})
            assert (await call(http, "POST", "/v1/approvals", approval(9.0)))[0] == 201
            _, notes = await call(http, "GET", "/v1/notifications")
    assert [n["kind"] for n in notes] == kinds


def task(**extra: Any) -> dict[str, Any]:
    return {"task": {"type": "analysis", "description": "q3", **extra}}


@pytest.mark.parametrize(("defects", "status"), [((), 200), (("fallback",), 503)])
async def test_fallback_defect_fails_on_the_first_model(
    defects: tuple[str, ...], status: int
) -> None:
    with anyio.fail_after(10):
        async with session(*defects) as http:
            down = {"models": {"premium": {"available": False}}}
            assert (await call(http, "PUT", "/v1/admin/faults", down, headers=AUTH))[0] == 200
            got, answer = await call(http, "POST", "/v1/tasks", task())
    assert got == status
    if status == 200:
        assert (answer["model_used"], answer["fallback_index"]) == ("standard", 1)
    else:
        assert answer["error"]["type"] == "models_unavailable"
        assert answer["error"]["message"].endswith("(premium: unavailable)")


@pytest.mark.parametrize(("defects", "flagged"), [((), True), (("checks",), False)])
async def test_checks_defect_never_flags(defects: tuple[str, ...], flagged: bool) -> None:
    with anyio.fail_after(10):
        async with session(*defects) as http:
            status, answer = await call(http, "POST", "/v1/tasks", task(hallucinate=True))
    assert status == 200
    check = answer["checks"]["hallucination"]
    assert check["flagged"] is flagged
    assert (check["unsupported_claims"] == []) is not flagged


@pytest.mark.parametrize(("defects", "count"), [((), 1), (("conflicts",), 0)])
async def test_conflicts_defect_reports_none(defects: tuple[str, ...], count: int) -> None:
    results = {
        "a": {"claims": {"risk_level": "low", "headcount": 12}},
        "b": {"claims": {"risk_level": "low", "headcount": 12}},
        "c": {"claims": {"risk_level": "high", "headcount": 12}},
    }
    with anyio.fail_after(10):
        async with session(*defects) as http:
            status, answer = await call(http, "POST", "/v1/conflicts/check", {"results": results})
            _, notes = await call(http, "GET", "/v1/notifications")
    assert status == 200
    assert (answer["conflicts_count"], answer["resolved_count"]) == (count, count)
    assert answer["agreement_ratio"] == (0.5 if count else 1.0)
    assert len([n for n in notes if n["kind"] == "conflict_detected"]) == count


def fifo_admission(handled: list[str], bound: int) -> Admission[str, str]:
    handle: Callable[[str], str] = lambda job: handled.append(job) or job  # noqa: E731
    return Admission(
        handle, workers=1, service_time_s=0.0, queue_bound=bound, max_queue_wait_s=30.0, fifo=True
    )


async def test_shedding_defect_is_fifo_and_sheds_the_newest() -> None:
    handled: list[str] = []
    queue = fifo_admission(handled, bound=3)
    results: dict[str, str | Shed] = {}

    async def submit(job: str, priority: int) -> None:
        results[job] = await queue.submit(job, priority)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for job, priority in [("a2", 2), ("b1", 1), ("c5", 5), ("d1", 1), ("e5", 5)]:
                tg.start_soon(submit, job, priority)
                await anyio.sleep(0.001)  # keeps arrival order
            queue.start()
        await queue.stop()
    # Priority plays no part: served oldest first, and each arrival past the bound is shed.
    assert handled == ["a2", "b1", "c5"]
    assert sorted(job for job, r in results.items() if isinstance(r, Shed)) == ["d1", "e5"]
    assert all(r.reason == QUEUE_FULL for r in results.values() if isinstance(r, Shed))
