"""The fast transport's HTTP/1.1 details, against scripted servers on 127.0.0.1: body
framing, keep-alive and reconnects, the idle-close retry, the pool bound, timeouts, TLS.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

import anyio
import pytest

from zg_load.client import Answer
from zg_load.fasthttp import (
    MAX_OPENING,
    STATUS_TIMEOUT,
    STATUS_TRANSPORT,
    FastHttpClient,
    Route,
    answer_for,
)
from zg_load.outcome import Outcome

pytestmark = pytest.mark.anyio

Reader: TypeAlias = asyncio.StreamReader
Writer: TypeAlias = asyncio.StreamWriter
OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"


class Server:
    """A scripted server: ``handle(server, reader, writer, n)`` serves connection number n."""

    def __init__(self, handle: Callable[[Server, Reader, Writer, int], Awaitable[None]]) -> None:
        self.handle = handle
        self.connections = 0
        self.requests: list[bytes] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        self.connections += 1
        try:
            await self.handle(self, reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read(self, reader: Reader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        body = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                body = await reader.readexactly(int(line.split(b":")[1]))
        self.requests.append(head + body)
        self.arrived.set()
        return head + body


@asynccontextmanager
async def scripted(
    handle: Callable[[Server, Reader, Writer, int], Awaitable[None]],
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Server]:
    server = Server(handle)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


@asynccontextmanager
async def fast(url: str, **kwargs: Any) -> AsyncIterator[FastHttpClient]:
    client = FastHttpClient(url, **kwargs)
    try:
        yield client
    finally:
        await client.aclose()


def length_answer(body: bytes, extra: bytes = b"") -> bytes:
    return OK_HEAD + b"content-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def answer_every_request(server: Server, reader: Reader, writer: Writer, n: int) -> None:
    while True:
        await server.read(reader)
        writer.write(length_answer(b'{"n": %d}' % n))


def test_route_encodes_the_request_once_and_the_body_per_call() -> None:
    route = Route("POST", "/v1/approvals", [("host", "127.0.0.1:8080")])
    assert route.bare == b"POST /v1/approvals HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n"
    assert route.encode(b'{"a":1}') == (
        b"POST /v1/approvals HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n"
        b'content-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}'
    )


def test_client_routes_carry_host_base_path_and_token() -> None:
    client = FastHttpClient("http://[::1]:9000/api/", admin_token="tok")
    assert client.route("GET", "/health").bare.startswith(
        b"GET /api/health HTTP/1.1\r\nhost: [::1]:9000\r\nuser-agent: zg-load\r\n"
    )
    assert b"authorization: Bearer tok\r\n" in client.route("POST", "/x", admin=True).bare
    assert client.route("GET", "/health") is client.route("GET", "/health")


@pytest.mark.parametrize("url", ["ftp://h/", "127.0.0.1:80", "http://"])
def test_a_bad_base_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="bad base URL"):
        FastHttpClient(url)


def test_failures_map_onto_the_same_answers_as_the_aiohttp_client() -> None:
    assert answer_for(STATUS_TIMEOUT, b"TimeoutError") == Answer(Outcome.TIMEOUT, 0, "TimeoutError")
    assert answer_for(STATUS_TRANSPORT, b"ConnectionResetError") == Answer(
        Outcome.TRANSPORT, 0, "ConnectionResetError"
    )
    assert answer_for(503, b'{"error": {"type": "overloaded"}}').reason == "overloaded"
    assert answer_for(502, b"<html>bad gateway</html>") == Answer(
        Outcome.ERROR, 502, "http_502", "<html>bad gateway</html>"
    )


async def test_keep_alive_reuses_one_connection() -> None:
    with anyio.fail_after(10):
        async with scripted(answer_every_request) as server, fast(server.url) as client:
            answers = [await client.health() for _ in range(5)]
    assert answers == [Answer(Outcome.OK, 200, None, {"n": 1})] * 5
    assert (server.connections, len(server.requests)) == (1, 5)
    assert server.requests[0].startswith(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1:")


async def test_chunked_body_split_across_writes() -> None:
    async def chunked(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)
        writer.write(OK_HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\n[1, 2\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"3\r\n, 3\r\n1\r\n]\r\n0\r\n\r\n")
        await answer_every_request(server, reader, writer, n)

    with anyio.fail_after(10):
        async with scripted(chunked) as server, fast(server.url) as client:
            first, second = await client.health(), await client.health()
    assert first == Answer(Outcome.OK, 200, None, [1, 2, 3])
    assert second.body == {"n": 1} and server.connections == 1


async def test_content_length_body_split_across_writes_and_a_large_one() -> None:
    big = b'"' + b"x" * 1_000_000 + b'"'

    async def slow(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)
        answer = length_answer(b'{"status": "ok"}')
        for i in range(0, len(answer), 7):
            writer.write(answer[i : i + 7])
            await writer.drain()
        await server.read(reader)
        writer.write(length_answer(big))

    with anyio.fail_after(10):
        async with scripted(slow) as server, fast(server.url) as client:
            small, large = await client.health(), await client.health()
    assert small == Answer(Outcome.OK, 200, None, {"status": "ok"})
    assert large.ok and large.body == "x" * 1_000_000


async def test_body_framed_by_the_server_closing() -> None:
    async def until_close(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)
        writer.write(OK_HEAD + b'connection: close\r\n\r\n{"framed": "by close"}')

    with anyio.fail_after(10):
        async with scripted(until_close) as server, fast(server.url) as client:
            answers = [await client.health() for _ in range(2)]
    assert answers == [Answer(Outcome.OK, 200, None, {"framed": "by close"})] * 2
    assert server.connections == 2


async def test_connection_close_answer_opens_a_new_connection() -> None:
    async def once(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)
        writer.write(length_answer(b'{"n": %d}' % n, b"connection: close\r\n"))
        await reader.read()

    with anyio.fail_after(10):
        async with scripted(once) as server, fast(server.url) as client:
            answers = [(await client.health()).body for _ in range(3)]
    assert answers == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_a_reused_connection_closed_before_answering_is_retried_once() -> None:
    async def one_per_connection(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)
        writer.write(length_answer(b'{"n": %d}' % n))
        await server.read(reader)  # the next request on this connection: close, no answer

    with anyio.fail_after(10):
        async with scripted(one_per_connection) as server, fast(server.url) as client:
            answers = [(await client.health()).body for _ in range(3)]
    assert answers == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert (server.connections, len(server.requests)) == (3, 5)


async def test_a_fresh_connection_closed_before_answering_is_not_retried() -> None:
    async def hang_up(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)

    with anyio.fail_after(10):
        async with scripted(hang_up) as server, fast(server.url) as client:
            answer = await client.request_approval("t", 1.0, 3)
    assert answer == Answer(Outcome.TRANSPORT, 0, "ServerDisconnected")
    assert server.connections == 1


async def test_an_unparsable_answer_is_transport() -> None:
    async def garbage(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await reader.read()

    with anyio.fail_after(10):
        async with scripted(garbage) as server, fast(server.url) as client:
            answer = await client.health()
    assert (answer.outcome, answer.status) == (Outcome.TRANSPORT, 0)
    assert answer.reason and answer.reason.startswith("HttpParser")


async def test_the_pool_never_exceeds_max_connections() -> None:
    async def slow(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        while True:
            await server.read(reader)
            await asyncio.sleep(0.05)
            writer.write(length_answer(b"{}"))

    answers: list[Answer] = []

    async def one() -> None:
        answers.append(await client.health())

    with anyio.fail_after(10):
        async with scripted(slow) as server, fast(server.url, max_connections=2) as client:
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(one)
    assert [a.outcome for a in answers] == [Outcome.OK] * 6
    assert server.connections == 2


async def test_at_most_max_opening_connections_are_opened_at_once() -> None:
    """A burst of requests opens MAX_OPENING connections, then more as those connect, up
    to what the requests need: every request is answered."""

    async def slow(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        while True:
            await server.read(reader)
            await asyncio.sleep(0.05)
            writer.write(length_answer(b"{}"))

    statuses: list[int] = []
    burst = 3 * MAX_OPENING
    all_answered = asyncio.Event()

    def on_done(status: int, body: bytes) -> None:
        statuses.append(status)
        if len(statuses) == burst:
            all_answered.set()

    with anyio.fail_after(10):
        async with scripted(slow) as server, fast(server.url, max_connections=1000) as client:
            request = client.route("GET", "/health").bare
            for _ in range(burst):
                client.send(request, on_done)
            assert client._pool is not None
            assert client._pool._opening == MAX_OPENING  # not one per waiting request
            await all_answered.wait()
    assert statuses == [200] * burst
    assert MAX_OPENING < server.connections <= burst


async def test_open_connections_opens_them_all_before_any_request() -> None:
    n = 2 * MAX_OPENING + 22
    with anyio.fail_after(10):
        async with scripted(answer_every_request) as server, fast(server.url) as client:
            assert await client.open_connections(n) == n
            await asyncio.sleep(0.05)  # the server side sees every accept
            assert server.connections == n and server.requests == []
            answers = await asyncio.gather(*(client.health() for _ in range(n)))
            assert [a.outcome for a in answers] == [Outcome.OK] * n
            assert server.connections == n  # the requests reused them


async def test_open_connections_stops_when_the_target_refuses() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    with anyio.fail_after(10):
        async with fast(f"http://127.0.0.1:{port}") as client:
            assert await client.open_connections(500) == 0


async def test_sender_sends_through_the_pool_and_a_closed_ones_answers_at_once() -> None:
    with anyio.fail_after(10):
        async with scripted(answer_every_request) as server, fast(server.url) as client:
            send = client.sender()
            request = client.route("GET", "/health").bare
            got: list[tuple[int, bytes]] = []
            answered = asyncio.Event()

            def on_done(status: int, body: bytes) -> None:
                got.append((status, body))
                answered.set()

            send(request, on_done)
            await answered.wait()
            assert got == [(200, b'{"n": 1}')]
            await client.aclose()
            send(request, on_done)  # the pool it belonged to is closed
            assert got[1:] == [(STATUS_TRANSPORT, b"ClientClosed")]
            answered.clear()
            client.sender()(request, on_done)  # a new pool, a new connection
            await answered.wait()
            assert got[2:] == [(200, b'{"n": 2}')]


async def test_timeouts_cover_the_wait_for_a_connection_and_drop_the_connection() -> None:
    async def silent_first(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        if n == 1:
            await server.read(reader)
            await reader.read()
        await answer_every_request(server, reader, writer, n)

    answers: list[Answer] = []

    async def one() -> None:
        answers.append(await client.health())

    with anyio.fail_after(10):
        async with scripted(silent_first) as server:
            async with fast(server.url, max_connections=1, timeout_s=0.2) as client:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(one)
                    tg.start_soon(one)  # waits for the only connection, and times out there
                after = await client.health()
    assert [a.outcome for a in answers] == [Outcome.TIMEOUT] * 2
    assert after == Answer(Outcome.OK, 200, None, {"n": 2})


async def test_a_callback_that_raises_does_not_break_the_connection() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))

    def broken(status: int, body: bytes) -> None:
        raise RuntimeError("caller bug")

    try:
        with anyio.fail_after(10):
            async with scripted(answer_every_request) as server, fast(server.url) as client:
                client.send(client.route("GET", "/health").bare, broken)
                await anyio.sleep(0.1)
                after = await client.request(client.route("GET", "/health").bare)
    finally:
        loop.set_exception_handler(None)
    assert after == (200, b'{"n": 1}')
    assert [str(r["exception"]) for r in reported] == ["caller bug"]


async def test_aclose_fails_what_is_in_flight() -> None:
    async def silent(server: Server, reader: Reader, writer: Writer, n: int) -> None:
        await server.read(reader)
        await reader.read()

    got: list[tuple[int, bytes]] = []
    with anyio.fail_after(10):
        async with scripted(silent) as server:
            client = FastHttpClient(server.url)
            client.send(client.route("GET", "/health").bare, lambda s, b: got.append((s, b)))
            await server.arrived.wait()
            await client.aclose()
    assert got == [(STATUS_TRANSPORT, b"ClientClosed")]


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return key, cert


async def test_tls(self_signed: tuple[Path, Path]) -> None:
    key, cert = self_signed
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    with anyio.fail_after(10):
        async with scripted(answer_every_request, tls=server_side) as server:
            async with fast(server.url, ssl_context=trusting) as client:
                answers = [await client.health() for _ in range(2)]
            async with fast(server.url) as untrusting:
                refused = await untrusting.health()
    assert answers == [Answer(Outcome.OK, 200, None, {"n": 1})] * 2
    assert (refused.outcome, refused.reason) == (Outcome.TRANSPORT, "SSLCertVerificationError")
