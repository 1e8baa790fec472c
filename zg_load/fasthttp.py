"""The fast HTTP/1.1 transport: keep-alive connections on the event loop's raw protocol,
answers parsed by httptools, requests encoded once per route.

Owns a pool of at most ``max_connections`` connections to one origin, opened lazily (at
most ``MAX_OPENING`` at once) and reused; each carries one request at a time (no
pipelining). Guarantees:
- every request given to ``send`` completes its callback exactly once, with the HTTP status
  and body, or with ``STATUS_TIMEOUT`` / ``STATUS_TRANSPORT`` and a short ASCII reason;
- nothing the network does raises; a connection the server closes is dropped and replaced,
  and a request that meets a reused connection's close before any byte of its answer
  arrived is sent once more on a fresh connection (the idle keep-alive race);
- bodies framed by content-length, chunked encoding or the server's close are all read;
- one sweep timer enforces timeouts, not one timer per request: a request (its wait for a
  connection included) times out between ``timeout_s`` and ``timeout_s`` plus one tick
  (``timeout_s / 20``, between 1 ms and 50 ms) after it was given to ``send``.
``FastHttpClient`` speaks the AI Ops API over it with the same ``Answer`` semantics as
``zg_load.client.HttpClient``; ``route`` + ``send`` are the callback-level hot path.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson

from zg_load.client import AIOpsCalls, Answer, answer_for_response
from zg_load.outcome import Outcome

STATUS_TIMEOUT = -1  # no answer within timeout_s
STATUS_TRANSPORT = -2  # connection refused, reset, closed mid-answer, unparsable answer

Callback = Callable[[int, bytes], None]
Callback2 = Callable[[bytes, Callback], None]  # send(request, on_done)
_Job = tuple[bytes, Callback, float, bool]  # request, callback, deadline, already retried
_USER_AGENT = b"zg-load"
# Connections opened at once, at most. At a high rate's start every waiting request would
# otherwise open its own: ~1,000 connects in the first milliseconds stalled the loop ~30 ms,
# more connections than the rate ever needed once they answer.
MAX_OPENING = 64


class Route:
    """One method and path with its header block encoded once; ``encode`` adds a body."""

    __slots__ = ("bare", "body_prefix")

    def __init__(self, method: str, target: str, headers: list[tuple[str, str]]) -> None:
        lines = [f"{method} {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in headers]
        head = "\r\n".join(lines).encode("latin-1")
        self.bare = head + b"\r\n\r\n"  # the whole request when there is no body
        # the request up to its content-length value; ``encode`` adds the length and body
        self.body_prefix = head + b"\r\ncontent-type: application/json\r\ncontent-length: "

    def encode(self, body: bytes) -> bytes:
        """The whole request with ``body`` (JSON) as its payload."""
        return b"%s%d\r\n\r\n%s" % (self.body_prefix, len(body), body)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._chunks: list[bytes] = []  # the current answer's body; cleared, never replaced
        # httptools looks its callbacks up once, here: a C method is called with no Python frame
        self.on_body = self._chunks.append
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.on_done: Callback | None = None
        self.deadline = 0.0
        self._request = b""
        self._retried = False
        self._head = b""  # first bytes of the current answer; empty until one arrives
        self._status = 0  # set by on_message_complete, consumed after feed_data returns
        self._used = False  # has completed an answer, so a close may be the idle race
        self._keep_alive = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def start(self, request: bytes, on_done: Callback, deadline: float, retried: bool) -> None:
        self.on_done, self.deadline = on_done, deadline
        self._request, self._retried, self._head = request, retried, b""
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.on_done is None:  # bytes nobody asked for: the stream can't be trusted
            self.abort()
            return
        if not self._head:
            self._head = data
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.fail(STATUS_TRANSPORT, type(exc).__name__)
            return
        if self._status:
            self._finish()

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status >= 200:  # an interim 1xx answer is not the answer
            self._status = status
            # must be read here: the parser forgets the message's flags once it returns
            self._keep_alive = self._parser.should_keep_alive()
        else:
            self._chunks.clear()

    def _finish(self) -> None:
        status, self._status = self._status, 0
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        on_done, self.on_done = self.on_done, None
        self._used = True
        if not self._keep_alive:
            self.abort()
        elif self._pool._queue:  # _pool.release, inlined: this is the hot path
            self.start(*self._pool._queue.popleft())
        else:
            self._pool._idle.append(self)
        try:
            on_done(status, body)  # type: ignore[misc]  # set while a request is in flight
        except Exception as exc:  # a caller's bug must not take the connection down
            self._pool.report(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.lost(self)
        if self.on_done is None:
            return
        if self._head and _framed_by_close(self._head):
            self._status, self._keep_alive = self._parser.get_status_code(), False
            self._finish()
        elif not self._head and self._used and not self._retried:
            on_done, self.on_done = self.on_done, None
            self._pool.retry((self._request, on_done, self.deadline, True))
        else:
            self.fail(STATUS_TRANSPORT, type(exc).__name__ if exc else "ServerDisconnected")

    def fail(self, status: int, reason: str) -> None:
        """Fail the current request (if any) and drop the connection, in that order."""
        on_done, self.on_done = self.on_done, None
        self._chunks.clear()
        self.abort()
        if on_done is not None:
            self._pool.complete(on_done, status, reason.encode())

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _framed_by_close(head: bytes) -> bool:
    """True when a complete header block declares neither content-length nor chunking."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return False
    names = {line.split(b":", 1)[0].strip().lower() for line in head[:end].split(b"\r\n")[1:]}
    return b"content-length" not in names and b"transfer-encoding" not in names


class _Pool:
    """Connections to one origin, the requests waiting for one, and the timeout sweep."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        timeout_s: float,
        max_connections: int,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._host, self._port, self._ssl = host, port, ssl_context
        self._timeout_s = timeout_s
        self._tick_s = min(0.05, max(0.001, timeout_s / 20))
        self._max = max_connections
        self._conns: set[_Connection] = set()  # open or opening
        self._opening = 0
        self._idle: list[_Connection] = []  # LIFO keeps the warmest connections busy
        self._queue: deque[_Job] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    def send(self, request: bytes, on_done: Callback) -> None:
        if self.closed:
            self.complete(on_done, STATUS_TRANSPORT, b"ClientClosed")
            return
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self._tick_s, self._sweep)
        deadline = time.monotonic() + self._timeout_s
        idle = self._idle
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if transport is not None and not transport.is_closing():
                # conn.start, inlined: this is the hot path
                conn.on_done, conn.deadline, conn._request = on_done, deadline, request
                conn._retried, conn._head = False, b""
                transport.write(request)
                break
        else:
            self._queue.append((request, on_done, deadline, False))
            self._grow()

    def release(self, conn: _Connection) -> None:
        if self._queue:
            conn.start(*self._queue.popleft())
        else:
            self._idle.append(conn)

    def retry(self, job: _Job) -> None:
        if self.closed:
            self.complete(job[1], STATUS_TRANSPORT, b"ClientClosed")
            return
        self._queue.appendleft(job)
        self._grow()

    def lost(self, conn: _Connection) -> None:
        self._conns.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        self._grow()

    def complete(self, on_done: Callback, status: int, body: bytes) -> None:
        try:
            on_done(status, body)
        except Exception as exc:  # a caller's bug must not take the connection down
            self.report(exc)

    def report(self, exc: Exception) -> None:
        self._loop.call_exception_handler({"message": "fasthttp callback failed", "exception": exc})

    def _grow(self) -> None:
        if self.closed:
            return
        while (
            len(self._queue) > self._opening
            and len(self._conns) < self._max
            and self._opening < MAX_OPENING
        ):
            self._open_one()

    def _open_one(self) -> asyncio.Task[None]:
        conn = _Connection(self)
        self._conns.add(conn)
        self._opening += 1
        task = self._loop.create_task(self._connect(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def open_connections(self, n: int) -> int:
        """Open connections until ``n`` (at most the pool's bound) are open, ``MAX_OPENING``
        at a time; stop early when a round opens none. Returns how many are open."""
        target = min(n, self._max)
        while not self.closed and len(self._conns) < target:
            before = len(self._conns)
            room = min(MAX_OPENING - self._opening, target - len(self._conns))
            await asyncio.gather(*(self._open_one() for _ in range(max(1, room))))
            if len(self._conns) <= before:
                break  # the target refuses connections: the run will say so
        return len(self._conns)

    async def _connect(self, conn: _Connection) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._opening -= 1
            self._conns.discard(conn)
            status = STATUS_TIMEOUT if isinstance(exc, TimeoutError) else STATUS_TRANSPORT
            if self._queue:  # each failed attempt answers the request waiting longest
                self.complete(self._queue.popleft()[1], status, type(exc).__name__.encode())
            self._grow()
            return
        self._opening -= 1
        if self.closed:
            conn.abort()
        else:
            self.release(conn)
            self._grow()  # more may wait than the connections opening could take

    def _sweep(self) -> None:
        now = time.monotonic()
        busy = 0
        for conn in [c for c in self._conns if c.on_done is not None]:
            if conn.deadline <= now:
                conn.fail(STATUS_TIMEOUT, "TimeoutError")
            else:
                busy += 1
        queue = self._queue
        while queue and queue[0][2] <= now:
            self.complete(queue.popleft()[1], STATUS_TIMEOUT, b"TimeoutError")
        self._sweeper = None
        if (busy or queue) and not self.closed:
            self._sweeper = self._loop.call_later(self._tick_s, self._sweep)

    def close(self) -> None:
        """Close every connection; requests still waiting or in flight fail as transport."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._conns):
            conn.fail(STATUS_TRANSPORT, "ClientClosed")
        while self._queue:
            self.complete(self._queue.popleft()[1], STATUS_TRANSPORT, b"ClientClosed")


class FastHttpClient(AIOpsCalls):
    """The AI Ops API (DESIGN §3) over the fast transport; same answers as ``HttpClient``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        max_connections: int = 1024,
        admin_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad base URL {base_url!r}: expected http(s)://host[:port][/path]")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._base_path = parts.path.rstrip("/")
        self._ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        self._timeout_s = timeout_s
        # Every call answers TIMEOUT by itself within timeout_s (plus one sweep tick), so
        # the Engine needs no cancel scope of its own around it.
        self.enforces_timeout_s = timeout_s
        self._max_connections = max_connections
        self._admin_token = admin_token
        self._pool: _Pool | None = None
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = f"{host}:{self._port}"
        self._routes: dict[tuple[str, str, bool], Route] = {}

    def route(self, method: str, path: str, *, admin: bool = False) -> Route:
        """The pre-encoded route for ``method path`` (cached); ``admin`` adds the token."""
        key = (method, path, admin)
        found = self._routes.get(key)
        if found is None:
            headers = [("host", self._host_header), ("user-agent", _USER_AGENT.decode())]
            if admin and self._admin_token:
                headers.append(("authorization", f"Bearer {self._admin_token}"))
            found = self._routes[key] = Route(method, self._base_path + path, headers)
        return found

    def send(self, request: bytes, on_done: Callback) -> None:
        """Send a pre-encoded request; ``on_done(status, body)`` runs once, on the loop.

        ``status`` is the HTTP status, or ``STATUS_TIMEOUT`` / ``STATUS_TRANSPORT`` with a
        short reason as ``body``. Must be called on the loop the client is used on.
        """
        pool = self._pool
        if pool is None or pool.closed:
            pool = self._open_pool()
        pool.send(request, on_done)

    def sender(self) -> Callback2:
        """``send`` without this client's own Python frame: the open pool's ``send``, for a
        batch of sends on the hot path (fetch it again after ``aclose``; a closed pool's
        ``send`` answers ``STATUS_TRANSPORT`` at once)."""
        pool = self._pool
        if pool is None or pool.closed:
            pool = self._open_pool()
        return pool.send

    def _open_pool(self) -> _Pool:
        self._pool = _Pool(
            self._host, self._port, self._ssl, self._timeout_s, self._max_connections
        )
        return self._pool

    async def open_connections(self, n: int) -> int:
        """Open up to ``n`` keep-alive connections now (before a run's clock starts, as wrk
        does); returns how many are open."""
        pool = self._pool
        if pool is None or pool.closed:
            pool = self._open_pool()
        return await pool.open_connections(n)

    async def request(self, request: bytes) -> tuple[int, bytes]:
        """Send a pre-encoded request and wait for ``(status, body)`` as ``send`` gives it."""
        done: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        def resolve(status: int, body: bytes) -> None:
            if not done.done():  # the caller may have been cancelled meanwhile
                done.set_result((status, body))

        self.send(request, resolve)
        return await done

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, admin: bool = False
    ) -> Answer:
        route = self.route(method, path, admin=admin)
        request = route.bare if body is None else route.encode(orjson.dumps(body))
        return answer_for(*await self.request(request))


def answer_for(status: int, body: bytes) -> Answer:
    """The ``Answer`` for what ``send`` delivered: the same mapping as ``HttpClient``."""
    if status == STATUS_TIMEOUT:
        return Answer(Outcome.TIMEOUT, 0, body.decode("ascii", "replace"))
    if status == STATUS_TRANSPORT:
        return Answer(Outcome.TRANSPORT, 0, body.decode("ascii", "replace"))
    return answer_for_response(status, body)
