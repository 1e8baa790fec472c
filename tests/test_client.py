"""One client test suite, run over every transport against real servers on 127.0.0.1.

Both transports must give the same ``Answer`` (outcome, status, reason, body) for the same
exchange: the reference service for the designed answers, small raw servers for the
network's failures.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from zg_load.aiops import ServiceConfig, serving
from zg_load.aiops.server import start, stop
from zg_load.client import AIOpsClient, Answer
from zg_load.outcome import Outcome
from zg_load.transport import (
    DEFAULT_TRANSPORT,
    TRANSPORTS,
    ServiceClient,
    TransportKind,
    make_client,
)

pytestmark = pytest.mark.anyio

FAST = ServiceConfig(approval_service_time_s=0.0, admin_token="secret-token")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=TRANSPORTS)
def kind(request: pytest.FixtureRequest) -> TransportKind:
    value: TransportKind = request.param
    return value


@asynccontextmanager
async def client(
    kind: TransportKind, url: str, timeout_s: float = 5.0
) -> AsyncIterator[ServiceClient]:
    made = make_client(
        kind, url, timeout_s=timeout_s, max_connections=16, admin_token="secret-token"
    )
    try:
        yield made
    finally:
        await made.aclose()


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A scripted HTTP server on 127.0.0.1; yields its base URL."""

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_both_transports_are_made_and_the_default_is_one_of_them() -> None:
    assert DEFAULT_TRANSPORT in TRANSPORTS
    for kind in TRANSPORTS:
        assert isinstance(make_client(kind, "http://127.0.0.1:1"), AIOpsClient)
    with pytest.raises(ValueError, match="unknown transport 'carrier-pigeon'"):
        make_client("carrier-pigeon", "http://127.0.0.1:1")  # type: ignore[arg-type]


async def test_health_is_ok(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url) as c:
            assert await c.health() == Answer(Outcome.OK, 200, None, {"status": "ok"})


async def test_set_and_get_budget_exact_values(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url) as c:
            put = await c.set_budget_limit(10.0, 6.5, "12h")
            assert (put.outcome, put.status) == (Outcome.OK, 200)
            got = await c.get_budget()
            assert got.ok and isinstance(got.body, dict)
            wanted = {"max_usd": 10.0, "soft_usd": 6.5, "window": "12h", "spent_usd": 0.0}
            assert {k: got.body[k] for k in wanted} == wanted
            assert (got.body["reserved_usd"], got.body["remaining_usd"]) == (0.0, 10.0)


async def test_approval_ok_with_its_fields(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url) as c:
            await c.set_budget_limit(10.0)
            answer = await c.request_approval("summarise", 2.5, 4, agent_id="agent-7")
            assert (answer.outcome, answer.status, answer.reason) == (Outcome.OK, 201, None)
            assert answer.body == {
                "approval_id": "apr_1",
                "approved": True,
                "reserved_usd": 2.5,
                "remaining_usd": 7.5,
                "priority": 4,
            }


async def test_budget_exhaustion_is_a_refusal(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url) as c:
            await c.set_budget_limit(10.0)
            answers = [await c.request_approval("t", 4.0, 3) for _ in range(3)]
            assert [a.outcome for a in answers] == [Outcome.OK, Outcome.OK, Outcome.REFUSED]
            assert (answers[2].status, answers[2].reason) == (429, "budget_exceeded")
            assert answers[2].body["error"]["type"] == "budget_exceeded"


async def test_shedding_is_a_refusal(kind: TransportKind) -> None:
    config = ServiceConfig(
        approval_workers=1, approval_service_time_s=0.4, queue_bound=1, max_queue_wait_s=5.0
    )
    answers: list[Answer] = []

    async def approve() -> None:
        answers.append(await c.request_approval("t", 0.01, 3))

    with anyio.fail_after(10):
        async with serving(config) as running, client(kind, running.url) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(approve)
                await anyio.sleep(0.15)  # the first is in service before the others arrive
                for _ in range(3):
                    tg.start_soon(approve)
    # one in service, one waiting, and the two that made the queue overflow are shed
    assert sorted(a.outcome for a in answers) == [Outcome.OK] * 2 + [Outcome.REFUSED] * 2, answers
    shed = [a for a in answers if a.outcome is Outcome.REFUSED]
    assert {(a.status, a.reason) for a in shed} == {(503, "overloaded")}


async def test_unknown_path_is_an_error_with_its_type(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url + "/nowhere") as c:
            answer = await c.health()
            assert (answer.outcome, answer.status, answer.reason) == (
                Outcome.ERROR,
                404,
                "not_found",
            )


async def test_admin_reset_needs_the_token(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url) as c:
            assert (await c.reset()).ok
            anonymous = make_client(kind, running.url)
            try:
                denied = await anonymous.reset()
            finally:
                await anonymous.aclose()
            assert (denied.outcome, denied.status, denied.reason) == (
                Outcome.ERROR,
                401,
                "unauthorized",
            )


async def test_status_and_notifications(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url) as c:
            status = await c.get_system_status()
            assert status.ok and status.body["queue_depth"] == 0
            notes = await c.notifications(since=0)
            assert (notes.outcome, notes.status, notes.body) == (Outcome.OK, 200, [])
            bad = await c.notifications(since=-1)
            assert (bad.outcome, bad.status, bad.reason) == (Outcome.ERROR, 400, "invalid_request")


async def test_connection_refused_is_transport(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with client(kind, f"http://127.0.0.1:{closed_port()}") as c:
            answer = await c.health()
    assert (answer.outcome, answer.status) == (Outcome.TRANSPORT, 0)
    assert answer.reason


async def test_no_answer_is_a_timeout_after_timeout_s(kind: TransportKind) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # until the client gives up and closes

    with anyio.fail_after(10):
        async with raw_server(silent) as url, client(kind, url, timeout_s=0.3) as c:
            started = time.perf_counter()
            answer = await c.request_approval("t", 1.0, 3)
            elapsed_s = time.perf_counter() - started
    assert (answer.outcome, answer.status) == (Outcome.TIMEOUT, 0)
    assert answer.reason
    assert 0.29 <= elapsed_s < 0.6


async def test_an_answer_that_stalls_mid_body_is_a_timeout_after_timeout_s(
    kind: TransportKind,
) -> None:
    # Both clients say they time every call out themselves (the Engine then adds no
    # timer): the body's read is covered too, not only the wait for the headers.
    async def stalling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"status": ')
        await writer.drain()
        await reader.read()  # until the client gives up and closes

    with anyio.fail_after(10):
        async with raw_server(stalling) as url, client(kind, url, timeout_s=0.3) as c:
            assert getattr(c, "enforces_timeout_s", None) == 0.3
            started = time.perf_counter()
            answer = await c.request_approval("t", 1.0, 3)
            elapsed_s = time.perf_counter() - started
    assert (answer.outcome, answer.status) == (Outcome.TIMEOUT, 0)
    assert 0.29 <= elapsed_s < 0.6


@pytest.mark.slow
async def test_a_timeout_of_5_s_or_more_is_not_rounded_up(kind: TransportKind) -> None:
    # aiohttp rounds such timeouts up to the loop's next whole second unless told not to;
    # started just past a whole second, a rounded 5 s timeout would fire after ~5.98 s.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    with anyio.fail_after(20):
        async with raw_server(silent) as url, client(kind, url, timeout_s=5.0) as c:
            loop_s = asyncio.get_running_loop().time()
            await anyio.sleep(math.ceil(loop_s) - loop_s + 0.02)
            started = time.perf_counter()
            answer = await c.request_approval("t", 1.0, 3)
            elapsed_s = time.perf_counter() - started
    assert answer.outcome is Outcome.TIMEOUT
    assert 4.99 <= elapsed_s < 5.4  # the fast transport's sweep adds at most 50 ms


async def test_close_mid_answer_is_transport(kind: TransportKind) -> None:
    async def truncating(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"status": ')
        await writer.drain()

    with anyio.fail_after(10):
        async with raw_server(truncating) as url, client(kind, url) as c:
            answer = await c.health()
    assert (answer.outcome, answer.status) == (Outcome.TRANSPORT, 0)
    assert answer.reason


async def test_reconnects_after_the_server_restarts_on_the_same_port(kind: TransportKind) -> None:
    with anyio.fail_after(20):
        running = await start(FAST)
        async with client(kind, running.url) as c:
            try:
                assert (await c.health()).ok
            finally:
                await stop(running)
            assert (await c.health()).outcome is Outcome.TRANSPORT
            again = await start(ServiceConfig(port=running.port, admin_token="secret-token"))
            try:
                answers = [await c.health() for _ in range(3)]
            finally:
                await stop(again)
    assert [a.outcome for a in answers] == [Outcome.OK] * 3


async def test_conflict_check_anomaly_and_faults(kind: TransportKind) -> None:
    with anyio.fail_after(10):
        async with serving(FAST) as running, client(kind, running.url) as c:
            checked = await c.check_for_conflicts(
                {"a": {"claims": {"k": 1}}, "b": {"claims": {"k": 2}}}
            )
            anomaly = await c.handle_anomaly(
                {
                    "type": "latency",
                    "severity": "high",
                    "details": {},
                    "timestamp": "2026-01-01T00:00:00Z",
                }
            )
            bad_fault = await c.set_faults({"no_such_fault": 1})
            cleared = await c.clear_faults()
            bad_task = await c.execute_task_with_fallback(
                {"type": "summarize", "description": "d"}, ["no-such-model"]
            )
    assert (checked.outcome, checked.status) == (Outcome.OK, 200)
    assert (checked.body["conflicts_count"], checked.body["resolved_count"]) == (1, 1)
    assert checked.body["conflicts"][0]["values"] == {"a": 1, "b": 2}
    assert (anomaly.outcome, anomaly.status) == (Outcome.OK, 202)
    assert "anomaly_id" in anomaly.body
    assert (bad_fault.outcome, bad_fault.status, bad_fault.reason) == (
        Outcome.ERROR,
        400,
        "invalid_request",
    )
    assert cleared == Answer(Outcome.OK, 200, None, {"faults": {}})
    assert (bad_task.outcome, bad_task.status, bad_task.reason) == (
        Outcome.ERROR,
        400,
        "invalid_request",
    )
