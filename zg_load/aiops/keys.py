"""The keys under which the application and each request keep the service's state."""

from __future__ import annotations

from aiohttp import web

from zg_load.aiops.config import ServiceConfig
from zg_load.aiops.service import Service

CONFIG = web.AppKey("config", ServiceConfig)
TOKEN = web.AppKey("token", str)
SERVICE = web.AppKey("service", Service)
REQUEST_ID = web.RequestKey("request_id", str)
