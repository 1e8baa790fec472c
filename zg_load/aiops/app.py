"""The reference service's HTTP surface: routes, middleware, request ids, lifecycle.

Guarantees: every response (including router and body-limit errors) carries an
`x-request-id` (the caller's, if it sent a sane one); every error body is
`{"error": {"type", "message"}, "request_id"}`; approvals pass through admission, while
/health and the read endpoints never wait in the approval queue; injected faults never
touch /health or /v1/admin (so faults can always be cleared); POSTs honour
`Idempotency-Key`.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
from aiohttp import web

from zg_load.aiops import admin, errors, routes, task_routes
from zg_load.aiops.config import ServiceConfig
from zg_load.aiops.errors import ApiError
from zg_load.aiops.idempotency import HEADER as IDEMPOTENCY_HEADER
from zg_load.aiops.keys import CONFIG, REQUEST_ID, SERVICE, TOKEN
from zg_load.aiops.replies import error_response
from zg_load.aiops.service import new_service, open_ledger, sweeping

__all__ = ["TOKEN", "build_app"]

log = logging.getLogger(__name__)

INJECTED_ERROR = "injected_error"
_REQUEST_ID_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count(1)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(config: ServiceConfig) -> web.Application:
    """The aiohttp application; the ledger opens on startup and closes on cleanup."""
    app = web.Application(
        middlewares=[_answer_errors, _inject_faults, _idempotent],
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = config
    app[TOKEN] = config.admin_token or secrets.token_urlsafe(24)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_on_shutdown)
    routes.add_routes(app.router)
    task_routes.add_routes(app.router)
    admin.add_routes(app.router)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    with tempfile.TemporaryDirectory(prefix="zg-load-aiops-") as tmp:
        ledger = open_ledger(config, config.db_path or str(Path(tmp) / "ledger.sqlite3"))
        try:
            service = app[SERVICE] = new_service(config, ledger)
            service.admission.start()
            async with sweeping(service):
                yield
            await service.admission.stop()
        finally:
            ledger.close()


async def _on_shutdown(app: web.Application) -> None:
    # Waiting approvals answer 503 at once, and stalled requests go on, instead of
    # holding up a graceful shutdown.
    app[SERVICE].faults.release_stalls()
    await app[SERVICE].admission.stop()


@web.middleware
async def _answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc, request_id)
    except web.HTTPException as exc:
        response = error_response(_from_http_exception(request, exc), request_id)
    except Exception:
        log.exception("request %s failed", request_id)
        response = error_response(ApiError(500, errors.INTERNAL, "internal error"), request_id)
    response.headers["x-request-id"] = request_id
    return response


@web.middleware
async def _inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    faults = request.app[SERVICE].faults
    if not faults.current or request.path == "/health" or request.path.startswith("/v1/admin/"):
        return await handler(request)
    await faults.maybe_stall(request.path)
    delay_s = faults.delay_s()
    if delay_s > 0:
        await anyio.sleep(delay_s)
    if faults.injects_error():
        raise ApiError(500, INJECTED_ERROR, "error injected by a fault")
    return await handler(request)


@web.middleware
async def _idempotent(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method != "POST" or IDEMPOTENCY_HEADER not in request.headers:
        return await handler(request)
    store = request.app[SERVICE].idempotency
    return await store.run(request, handler, request[REQUEST_ID])


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> ApiError:
    error_type = errors.TYPE_BY_STATUS.get(exc.status, "http_error")
    message = exc.reason
    if exc.status == 413:
        message = f"body: must be at most {request.app[CONFIG].max_body_bytes} bytes"
    allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
    return ApiError(exc.status, error_type, message, allow)


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 128 and given.isprintable():
        return given
    return f"{_REQUEST_ID_PREFIX}-{next(_request_numbers):x}"
