"""The reference service's HTTP surface: routes, error answers, request ids, lifecycle.

Guarantees: every response (including router and body-limit errors) carries an
`x-request-id` (the caller's, if it sent a sane one); every error body is
`{"error": {"type", "message"}, "request_id"}`; approvals pass through admission, while
/health and the read endpoints never wait in the approval queue.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web

from zg_load.aiops import errors
from zg_load.aiops.admission import Admission, Shed
from zg_load.aiops.config import DEFAULT_BUDGET_USD, ServiceConfig
from zg_load.aiops.errors import ApiError
from zg_load.aiops.ledger import Ledger, Refusal, Reservation, to_micros, to_usd
from zg_load.aiops.metrics import Metrics
from zg_load.aiops.schema import ApprovalRequest, decode_object, parse_approval, parse_budget

log = logging.getLogger(__name__)

MAX_NOTIFICATIONS = 1000
_JSON = "application/json"
_REQUEST_ID_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count(1)

Decision = Reservation | Refusal


@dataclass(slots=True)
class Service:
    """The state one running instance owns; created at startup, closed at cleanup."""

    config: ServiceConfig
    ledger: Ledger
    admission: Admission[ApprovalRequest, Decision]
    metrics: Metrics


CONFIG = web.AppKey("config", ServiceConfig)
TOKEN = web.AppKey("token", str)
SERVICE = web.AppKey("service", Service)
REQUEST_ID = web.RequestKey("request_id", str)


def build_app(config: ServiceConfig) -> web.Application:
    """The aiohttp application; the ledger opens on startup and closes on cleanup."""
    app = web.Application(middlewares=[_answer_errors], client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[TOKEN] = config.admin_token or secrets.token_urlsafe(24)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_shed_waiting)
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/budget", _get_budget)
    app.router.add_put("/v1/budget", _put_budget)
    app.router.add_post("/v1/approvals", _post_approval)
    app.router.add_get("/v1/status", _get_status)
    app.router.add_get("/v1/notifications", _get_notifications)
    app.router.add_post("/v1/admin/reset", _admin_reset)
    return app


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    with tempfile.TemporaryDirectory(prefix="zg-load-aiops-") as tmp:
        ledger = _open_ledger(config, config.db_path or str(Path(tmp) / "ledger.sqlite3"))
        try:
            app[SERVICE] = _new_service(config, ledger)
            app[SERVICE].admission.start()
            yield
            await app[SERVICE].admission.stop()
        finally:
            ledger.close()


def _open_ledger(config: ServiceConfig, path: str) -> Ledger:
    ledger = Ledger(path, default_max_usd=DEFAULT_BUDGET_USD, default_window=config.budget_window)
    wanted = config.budget_usd
    if wanted is not None and ledger.budget().max_micros != to_micros(wanted):
        ledger.set_budget(wanted, None, None)
    return ledger


def _new_service(config: ServiceConfig, ledger: Ledger) -> Service:
    metrics = Metrics(config.status_window_s)

    def decide(approval: ApprovalRequest) -> Decision:
        return ledger.reserve(approval.estimated_cost_usd, approval.priority, approval.agent_id)

    admission: Admission[ApprovalRequest, Decision] = Admission(
        decide,
        workers=config.approval_workers,
        service_time_s=config.approval_service_time_s,
        queue_bound=config.queue_bound,
        max_queue_wait_s=config.max_queue_wait_s,
        on_busy=metrics.record_busy,
    )
    return Service(config, ledger, admission, metrics)


async def _shed_waiting(app: web.Application) -> None:
    # Waiting approvals answer 503 at once instead of holding up a graceful shutdown.
    await app[SERVICE].admission.stop()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _error_response(exc, request_id)
    except web.HTTPException as exc:
        response = _error_response(_from_http_exception(request, exc), request_id)
    except Exception:
        log.exception("request %s failed", request_id)
        response = _error_response(ApiError(500, errors.INTERNAL, "internal error"), request_id)
    response.headers["x-request-id"] = request_id
    return response


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


def _error_response(exc: ApiError, request_id: str) -> web.Response:
    response = json_response(errors.error_body(exc.error_type, exc.message, request_id), exc.status)
    response.headers.update(exc.headers)
    return response


async def _health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _get_budget(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].ledger.budget().as_json())


async def _put_budget(request: web.Request) -> web.Response:
    wanted = parse_budget(decode_object(await request.read()))
    budget = request.app[SERVICE].ledger.set_budget(wanted.max_usd, wanted.soft_usd, wanted.window)
    return json_response(budget.as_json())


async def _post_approval(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    approval = parse_approval(decode_object(await request.read()))
    started_s = time.perf_counter()
    try:
        decision = await service.admission.submit(approval, approval.priority)
        response = _approval_answer(decision, approval.priority)
    except ApiError as exc:
        service.metrics.record_answer(exc.status, exc.error_type, time.perf_counter() - started_s)
        raise
    except Exception:
        service.metrics.record_answer(500, errors.INTERNAL, time.perf_counter() - started_s)
        raise
    service.metrics.record_answer(response.status, None, time.perf_counter() - started_s)
    return response


def _approval_answer(decision: Decision | Shed, priority: int) -> web.Response:
    if isinstance(decision, Shed):
        message = f"approval shed ({decision.reason}) at priority {decision.priority}"
        headers = {"Retry-After": str(decision.retry_after_s)}
        raise ApiError(503, errors.OVERLOADED, message, headers)
    budget = decision.budget
    if isinstance(decision, Refusal):
        message = (
            f"estimated_cost of {to_usd(decision.requested_micros)} USD would exceed the budget:"
            f" {to_usd(budget.committed_micros)} of {to_usd(budget.max_micros)} USD committed"
        )
        raise ApiError(429, errors.BUDGET_EXCEEDED, message)
    body = {
        "approval_id": f"apr_{decision.id}",
        "approved": True,
        "reserved_usd": to_usd(decision.amount_micros),
        "remaining_usd": to_usd(budget.remaining_micros),
        "priority": priority,
    }
    return json_response(body, 201)


async def _get_status(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    admission, metrics = service.admission, service.metrics
    figures = metrics.figures()
    workers = service.config.approval_workers
    counters = metrics.counters
    return json_response(
        {
            "avg_response_time_ms": figures.avg_response_time_ms,
            "error_rate": figures.error_rate,
            "resource_utilization": min(1.0, figures.busy_s / (workers * figures.span_s)),
            "task_completion_rate": figures.task_completion_rate,
            "queue_depth": admission.queue_depth,
            "inflight": admission.inflight,
            "shed_by_priority": {str(p): n for p, n in admission.shed_by_priority.items()},
            "approvals": {
                "admitted": counters.admitted,
                "refused_budget": counters.refused_budget,
                "shed": counters.shed,
            },
            "models": [],
            "budget": service.ledger.budget().as_json(),
        }
    )


async def _get_notifications(request: web.Request) -> web.Response:
    since = request.query.get("since", "0")
    if not since.isdigit():
        raise errors.invalid("since", "must be a non-negative integer")
    found = request.app[SERVICE].ledger.notifications(int(since), MAX_NOTIFICATIONS)
    return json_response([n.as_json() for n in found])


async def _admin_reset(request: web.Request) -> web.Response:
    _authorize(request)
    service = request.app[SERVICE]
    budget = service.ledger.reset()
    service.metrics.reset()
    service.admission.reset_counters()
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
