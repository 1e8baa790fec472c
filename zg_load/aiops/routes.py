"""Budget, approval, notification, status and health endpoints.

Approvals are the hot path: validate, rate-limit by agent, queue by priority, reserve
in the ledger. Settling an approval directly (`POST /v1/approvals/{id}/settle`) serves
clients whose tasks run elsewhere; tasks run here settle their approval themselves.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from zg_load.aiops import errors
from zg_load.aiops.admission import Shed
from zg_load.aiops.errors import ApiError
from zg_load.aiops.keys import SERVICE
from zg_load.aiops.ledger import Refusal, to_usd
from zg_load.aiops.replies import json_response
from zg_load.aiops.schema import decode_object, parse_approval, parse_budget, parse_settlement
from zg_load.aiops.service import Decision, Service

MAX_NOTIFICATIONS = 1000
RATE_LIMIT = "rate_limit"
INVALID_APPROVAL = "invalid_approval"
_APPROVAL_ID = re.compile(r"apr_([1-9]\d{0,17})")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/health", _health)
    router.add_get("/v1/budget", _get_budget)
    router.add_put("/v1/budget", _put_budget)
    router.add_post("/v1/approvals", _post_approval)
    router.add_post("/v1/approvals/{approval_id}/settle", _post_settle)
    router.add_get("/v1/status", _get_status)
    router.add_get("/v1/notifications", _get_notifications)


def check_rate_limit(service: Service, agent_id: str | None) -> None:
    """429 `rate_limit` with Retry-After when the agent is over its rate."""
    limit = service.faults.rate_limit()
    rate_per_s = limit.per_agent_per_s if limit else service.config.rate_limit_per_agent_per_s
    if agent_id is None or rate_per_s is None:
        return
    burst = limit.burst if limit else max(1.0, rate_per_s)
    retry_after_s = service.limiter.take(agent_id, rate_per_s, burst)
    if retry_after_s is not None:
        message = f"agent {agent_id!r} is over its limit of {rate_per_s:g} requests/s"
        raise ApiError(429, RATE_LIMIT, message, {"Retry-After": str(retry_after_s)})


def reservation_id(approval_id: str) -> int:
    """The ledger id of `apr_N`; 409 `invalid_approval` for anything else."""
    match = _APPROVAL_ID.fullmatch(approval_id)
    if match is None:
        raise ApiError(409, INVALID_APPROVAL, f"approval_id: no such approval {approval_id!r}")
    return int(match.group(1))


def not_open(approval_id: str) -> ApiError:
    message = f"approval_id: {approval_id} is not open (unknown, settled or expired)"
    return ApiError(409, INVALID_APPROVAL, message)


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
        check_rate_limit(service, approval.agent_id)
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


async def _post_settle(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    approval_id = request.match_info["approval_id"]
    actual_usd = parse_settlement(decode_object(await request.read()))
    if not service.ledger.settle(reservation_id(approval_id), actual_usd):
        raise not_open(approval_id)
    budget = service.ledger.budget().as_json()
    return json_response({"approval_id": approval_id, "settled_usd": actual_usd, "budget": budget})


async def _get_status(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    admission, metrics = service.admission, service.metrics
    figures = metrics.figures()
    workers = service.config.approval_workers
    counters, tasks = metrics.counters, metrics.tasks
    return json_response(
        {
            "avg_response_time_ms": figures.avg_response_time_ms,
            "error_rate": figures.error_rate,
            "resource_utilization": min(1.0, figures.busy_s / (workers * figures.span_s)),
            "task_completion_rate": figures.task_completion_rate,
            "queue_depth": admission.queue_depth,
            "inflight": admission.inflight + service.tasks_inflight,
            "shed_by_priority": {str(p): n for p, n in admission.shed_by_priority.items()},
            "approvals": {
                "admitted": counters.admitted,
                "refused_budget": counters.refused_budget,
                "shed": counters.shed,
            },
            "tasks": {
                "completed": tasks.completed,
                "failed": tasks.failed,
                "fallbacks": tasks.fallbacks,
                "inflight": service.tasks_inflight,
            },
            "models": service.pool.models_json(),
            "budget": service.ledger.budget().as_json(),
        }
    )


async def _get_notifications(request: web.Request) -> web.Response:
    since = request.query.get("since", "0")
    if not since.isdigit():
        raise errors.invalid("since", "must be a non-negative integer")
    found = request.app[SERVICE].ledger.notifications(int(since), MAX_NOTIFICATIONS)
    return json_response([n.as_json() for n in found])
