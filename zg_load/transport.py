"""Choosing the HTTP transport: ``fast`` (uvloop protocol + httptools) or ``aiohttp``.

Both give the same ``Answer`` for the same exchange and pass one shared test suite.
``DEFAULT_TRANSPORT`` is the one that measures faster (see benchmarks/README.md); aiohttp
stays for what the fast transport does not do (proxies, client certificates, redirects).
"""

from __future__ import annotations

from typing import Literal, get_args

import anyio

from zg_load.client import HttpClient, TargetClient
from zg_load.fasthttp import FastHttpClient

TransportKind = Literal["fast", "aiohttp"]
TRANSPORTS: tuple[TransportKind, ...] = get_args(TransportKind)
DEFAULT_TRANSPORT: TransportKind = "fast"


# What both transports give: the AI Ops calls and the admin calls.
ServiceClient = TargetClient


def make_client(
    kind: TransportKind,
    base_url: str,
    *,
    timeout_s: float = 5.0,
    max_connections: int = 1024,
    admin_token: str | None = None,
) -> ServiceClient:
    """A client for ``base_url`` over the ``kind`` transport; ValueError for an unknown kind."""
    if kind == "fast":
        return FastHttpClient(
            base_url, timeout_s=timeout_s, max_connections=max_connections, admin_token=admin_token
        )
    if kind == "aiohttp":
        return HttpClient(
            base_url, timeout_s=timeout_s, max_connections=max_connections, admin_token=admin_token
        )
    raise ValueError(f"unknown transport {kind!r}; expected one of {', '.join(TRANSPORTS)}")


# Connections a run opens before its clock starts (at most its in-flight bound).
WARM_CONNECTIONS = 256


async def warm(client: TargetClient, connections: int) -> None:
    """Open the connection pool before the clock starts, as wrk does, so a storm's first
    second measures the service, not our TCP handshakes. The fast transport opens the
    connections themselves; any other client gets as many concurrent health calls."""
    if isinstance(client, FastHttpClient):
        await client.open_connections(connections)
        return
    async with anyio.create_task_group() as tg:
        for _ in range(connections):
            tg.start_soon(client.health)
