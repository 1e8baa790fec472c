"""Shaping HTTP answers: JSON bodies and the one error shape, `{"error", "request_id"}`."""

from __future__ import annotations

import orjson
from aiohttp import web

from zg_load.aiops import errors
from zg_load.aiops.errors import ApiError

JSON = "application/json"


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def error_response(exc: ApiError, request_id: str) -> web.Response:
    response = json_response(errors.error_body(exc.error_type, exc.message, request_id), exc.status)
    response.headers.update(exc.headers)
    return response
