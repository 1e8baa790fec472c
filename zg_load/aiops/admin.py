"""Admin endpoints behind the bearer token: faults and reset.

`PUT /v1/admin/faults` merges (see `faults`), `GET` shows the current set, `DELETE`
clears it and lets stalled requests go on; `POST /v1/admin/reset` returns the service to
its state at start (keeping the budget's limit and window). Without a valid token: 401.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from zg_load.aiops import errors
from zg_load.aiops.errors import ApiError
from zg_load.aiops.keys import SERVICE, TOKEN
from zg_load.aiops.replies import json_response
from zg_load.aiops.schema import decode_object


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/admin/faults", _get_faults)
    router.add_put("/v1/admin/faults", _put_faults)
    router.add_delete("/v1/admin/faults", _delete_faults)
    router.add_post("/v1/admin/reset", _reset)


async def _get_faults(request: web.Request) -> web.Response:
    _authorize(request)
    return json_response({"faults": request.app[SERVICE].faults.current})


async def _put_faults(request: web.Request) -> web.Response:
    _authorize(request)
    merged = request.app[SERVICE].faults.merge(decode_object(await request.read()))
    return json_response({"faults": merged})


async def _delete_faults(request: web.Request) -> web.Response:
    _authorize(request)
    request.app[SERVICE].faults.clear()
    return json_response({"faults": {}})


async def _reset(request: web.Request) -> web.Response:
    _authorize(request)
    budget = request.app[SERVICE].reset()
    return json_response({"reset": True, "budget": budget.as_json()})


def _authorize(request: web.Request) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[TOKEN].encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise ApiError(
            401,
            errors.UNAUTHORIZED,
            "a valid bearer token is required",
            {"WWW-Authenticate": "Bearer"},
        )
