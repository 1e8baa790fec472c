"""The service as a process: entry point, clean exit on SIGTERM, spend kept across restarts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from anyio.abc import Process

from zg_load.aiops import ServiceConfig, serving

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"zg-load serve: listening on (http://127\.0\.0\.1:(\d+))\n")


async def read_lines(process: Process, count: int) -> list[str]:
    assert process.stdout is not None
    buffer = b""
    while buffer.count(b"\n") < count:
        buffer += await process.stdout.receive()
    return [line + "\n" for line in buffer.decode().split("\n")[:count]]


async def read_rest(stream: anyio.abc.ByteReceiveStream | None) -> bytes:
    assert stream is not None
    chunks = []
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
        while True:
            chunks.append(await stream.receive())
    return b"".join(chunks)


async def get_json(url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(url=url, **kwargs) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_module_entry_prints_port_serves_and_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # ``python -m zg_load.aiops`` as started from a terminal: SIGINT at Python's own handler.
    # (A test run started in the background inherits SIGINT ignored, and the service keeps
    # an inherited ignore by design, so it would not hear this test's SIGINT.)
    entry = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('zg_load.aiops', run_name='__main__', alter_sys=True)"
    )
    command = [sys.executable, "-c", entry, "--port", "0", "--db", str(tmp_path / "l.db")]
    with anyio.fail_after(30):
        async with await anyio.open_process(command, cwd=REPO, env=env) as process:
            try:
                listening, token_line = await read_lines(process, 2)
                match = LISTENING.fullmatch(listening)
                assert match, listening
                url = match.group(1)
                assert int(match.group(2)) > 0
                token = token_line.removeprefix("zg-load serve: admin token ").strip()
                assert await get_json(f"{url}/health", method="GET") == (200, {"status": "ok"})
                auth = {"Authorization": f"Bearer {token}"}
                status, _ = await get_json(f"{url}/v1/admin/reset", method="POST", headers=auth)
                assert status == 200
            finally:
                process.send_signal(signum)
            assert await process.wait() == 0
            assert await read_rest(process.stdout) == b""
            assert await read_rest(process.stderr) == b""


async def test_restart_keeps_spend(tmp_path: Path) -> None:
    config = ServiceConfig(db_path=str(tmp_path / "ledger.db"), approval_service_time_s=0.0)
    body = {"task_description": "t", "estimated_cost": 3.0, "priority": 2}
    with anyio.fail_after(20):
        async with serving(config) as running, aiohttp.ClientSession(running.url) as http:
            async with http.put("/v1/budget", json={"max_usd": 10.0}) as resp:
                assert resp.status == 200
            for _ in range(2):
                async with http.post("/v1/approvals", json=body) as resp:
                    assert resp.status == 201
        async with serving(config) as running, aiohttp.ClientSession(running.url) as http:
            async with http.get("/v1/budget") as resp:
                budget = await resp.json()
            async with http.post("/v1/approvals", json=body) as resp:
                third = await resp.json()
            async with http.post("/v1/approvals", json=body) as resp:
                assert resp.status == 429
    assert (budget["max_usd"], budget["reserved_usd"], budget["remaining_usd"]) == (10.0, 6.0, 4.0)
    assert third["approval_id"] == "apr_3" and third["remaining_usd"] == 1.0


async def test_budget_usd_at_start_sets_the_limit_and_keeps_spend(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.db")
    body = {"task_description": "t", "estimated_cost": 30.0, "priority": 2}
    with anyio.fail_after(20):
        async with serving(ServiceConfig(db_path=path, approval_service_time_s=0.0)) as running:
            assert (await get_json(f"{running.url}/v1/approvals", method="POST", json=body))[
                0
            ] == 201
        config = ServiceConfig(db_path=path, approval_service_time_s=0.0, budget_usd=40.0)
        async with serving(config) as running:
            _, budget = await get_json(f"{running.url}/v1/budget", method="GET")
    assert (budget["max_usd"], budget["soft_usd"], budget["reserved_usd"]) == (40.0, 32.0, 30.0)


async def test_restart_keeps_settled_spend(tmp_path: Path) -> None:
    config = ServiceConfig(db_path=str(tmp_path / "ledger.db"), approval_service_time_s=0.0)
    body = {"task_description": "t", "estimated_cost": 3.0, "priority": 2}
    with anyio.fail_after(20):
        async with serving(config) as running:
            await get_json(f"{running.url}/v1/budget", method="PUT", json={"max_usd": 10.0})
            _, approved = await get_json(f"{running.url}/v1/approvals", method="POST", json=body)
            settle = f"{running.url}/v1/approvals/{approved['approval_id']}/settle"
            assert (await get_json(settle, method="POST", json={"actual_cost": 2.5}))[0] == 200
        async with serving(config) as running:
            _, budget = await get_json(f"{running.url}/v1/budget", method="GET")
    assert (budget["spent_usd"], budget["reserved_usd"], budget["remaining_usd"]) == (2.5, 0.0, 7.5)


def test_parse_args_reads_the_new_flags() -> None:
    from zg_load.aiops.__main__ import parse_args

    config = parse_args(["--time-scale", "0.01", "--seed", "7", "--rate-limit-per-agent", "5"])
    assert (config.time_scale, config.seed, config.rate_limit_per_agent_per_s) == (0.01, 7, 5.0)
    assert parse_args([]) == ServiceConfig()
