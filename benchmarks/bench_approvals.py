"""Approvals per second per core of the reference AI Ops service, with its durable ledger.

Starts `python -m zg_load.aiops` (a SQLite ledger file in WAL mode, no simulated service
time, many approval workers) in a subprocess pinned to one core, and drives it from this
process, pinned to another core, with a keep-alive HTTP/1.1 client built on an asyncio
protocol and httptools: each connection sends its next approval as soon as the previous
answer arrives. Every approval is a real reservation committed to the ledger file.

    python benchmarks/bench_approvals.py [--duration-s 5] [--connections 64]

Prints approvals/s and approvals/s per server core (the server is one process: one core).
All load goes to 127.0.0.1 and stops after the warm-up plus the measured duration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import cast

import httptools

READY = "zg-load serve: listening on "
BODY = b'{"task_description":"bench","estimated_cost":0.0001,"priority":3,"agent_id":"bench"}'


def request_bytes(host: str, port: int) -> bytes:
    head = (
        f"POST /v1/approvals HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    return head.encode() + BODY


class Connection(asyncio.Protocol):
    """One keep-alive connection that sends the next request when an answer completes."""

    def __init__(self, request: bytes, counts: Counter[int], stop_at: list[float]) -> None:
        self.request = request
        self.counts = counts
        self.stop_at = stop_at
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same API.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.counts[self.parser.get_status_code()] += 1
        assert self.transport is not None
        if time.perf_counter() < self.stop_at[0]:
            self.transport.write(self.request)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def drive(
    host: str, port: int, connections: int, warmup_s: float, duration_s: float
) -> tuple[Counter[int], float]:
    loop = asyncio.get_running_loop()
    request = request_bytes(host, port)
    counts: Counter[int] = Counter()
    stop_at = [time.perf_counter() + warmup_s + duration_s + 60]
    conns = []
    for _ in range(connections):
        _, conn = await loop.create_connection(
            lambda: Connection(request, counts, stop_at), host, port
        )
        conns.append(conn)
    await asyncio.sleep(warmup_s)
    counts.clear()
    started = time.perf_counter()
    stop_at[0] = started + duration_s
    await asyncio.wait([c.closed for c in conns], timeout=duration_s + 10)
    elapsed = time.perf_counter() - started
    return counts, elapsed


def start_service(db: Path, workers: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "zg_load.aiops",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db),
        "--token",
        "bench",
        "--workers",
        str(workers),
        "--service-time-ms",
        "0",
        "--queue-bound",
        "100000",
        "--max-queue-wait-ms",
        "60000",
        "--budget-usd",
        "1000000",
    ]
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(READY):
        proc.kill()
        raise SystemExit(f"the service did not start: {line!r}")
    return proc, line[len(READY) :].strip()


def pin(server_pid: int) -> str:
    """Server on one core, this client on another, when the platform allows it."""
    try:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            return "not pinned (one core available)"
        os.sched_setaffinity(server_pid, {cores[0]})
        os.sched_setaffinity(0, {cores[1]})
        return f"server on core {cores[0]}, client on core {cores[1]}"
    except (AttributeError, OSError) as exc:
        return f"not pinned ({exc})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with tempfile.TemporaryDirectory(prefix="zg-load-bench-") as tmp:
        proc, url = start_service(Path(tmp) / "ledger.sqlite3", args.workers)
        try:
            placement = pin(proc.pid)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            with runner:
                counts, elapsed_s = runner.run(
                    drive(host, int(port), args.connections, args.warmup_s, args.duration_s)
                )
        finally:
            proc.terminate()
            proc.wait(10)
    approved = counts.get(201, 0)
    rate = approved / elapsed_s
    print(f"placement: {placement}")
    print(f"answers by status: {dict(sorted(counts.items()))} in {elapsed_s:.2f} s")
    print(f"approvals/s: {rate:,.0f}")
    print(f"approvals/s per server core: {rate:,.0f} (durable SQLite ledger, WAL)")


if __name__ == "__main__":
    main()
