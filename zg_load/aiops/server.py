"""Running the reference service: `start`/`stop`/`serving` for tests and embedding, `serve` for a CLI.

`serve` prints exactly one line, `zg-load serve: listening on http://HOST:PORT` with the
real bound port, flushed, before it serves (and a second line with the admin token when
it generated one); it stops cleanly on SIGTERM or SIGINT, closing the ledger.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from zg_load.aiops.app import TOKEN, build_app
from zg_load.aiops.config import ServiceConfig


@dataclass(frozen=True, slots=True)
class Running:
    """A started service: its URL, bound port, admin token and runner."""

    url: str
    host: str
    port: int
    token: str
    runner: web.AppRunner


async def start(config: ServiceConfig) -> Running:
    """Start serving `config` on the running loop; returns once the port is bound."""
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, backlog=config.backlog)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    host, port = runner.addresses[0][:2]
    return Running(_url(host, port), host, port, app[TOKEN], runner)


async def stop(running: Running) -> None:
    """Stop accepting, answer waiting approvals with 503, finish, close the ledger."""
    await running.runner.cleanup()


@asynccontextmanager
async def serving(config: ServiceConfig) -> AsyncIterator[Running]:
    """`start` on entry, `stop` on exit."""
    running = await start(config)
    try:
        yield running
    finally:
        await stop(running)


def serve(config: ServiceConfig) -> None:
    """Serve `config` until SIGTERM or SIGINT (blocking); uses uvloop when installed."""
    _run(_serve_until_signal(config))


async def _serve_until_signal(config: ServiceConfig) -> None:
    running = await start(config)
    try:
        print(f"zg-load serve: listening on {running.url}", flush=True)
        if config.admin_token is None:
            print(f"zg-load serve: admin token {running.token}", flush=True)
        await _wait_for_signal()
    finally:
        await stop(running)


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    # A signal ignored when we started stays ignored (as with nohup): zg-load starts its
    # embedded service with SIGINT ignored, so that a Ctrl-C meant for it does not stop us.
    signums = [s for s in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(s) != signal.SIG_IGN]
    for signum in signums:
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        for signum in signums:
            loop.remove_signal_handler(signum)


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
