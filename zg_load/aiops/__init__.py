"""The reference AI Ops service: the embedded default target of zg_load.

A real aiohttp server with a SQLite budget ledger, priority admission with shedding,
and notifications, serving the REST API of the design's section 3 on 127.0.0.1.
"""

from __future__ import annotations

from zg_load.aiops.app import build_app
from zg_load.aiops.config import ServiceConfig
from zg_load.aiops.server import Running, serve, serving, start, stop

__all__ = ["Running", "ServiceConfig", "build_app", "serve", "serving", "start", "stop"]
