"""Task, conflict-check and anomaly endpoints.

A task with an `approval_id` settles that approval: the model's actual cost replaces the
reservation when a model answered, and the reservation is released when none did. The
approval must be open when the task starts (409 `invalid_approval` otherwise). At most
`max_tasks_inflight` tasks run at once; more are shed with 503 `overloaded`.
The "conflicts" defect makes the conflict check compare keys but report no conflict.
"""

from __future__ import annotations

import time

from aiohttp import web

from zg_load.aiops import errors
from zg_load.aiops.conflicts import ConflictReport, find_conflicts
from zg_load.aiops.errors import ApiError
from zg_load.aiops.keys import SERVICE
from zg_load.aiops.notify import anomaly_notice, conflict_notice
from zg_load.aiops.pool import ChainResult
from zg_load.aiops.replies import json_response
from zg_load.aiops.routes import check_rate_limit, not_open, reservation_id
from zg_load.aiops.schema import (
    TaskRequest,
    check_agent_id,
    decode_object,
    parse_anomaly,
    parse_conflicts,
    parse_task,
)
from zg_load.aiops.service import Service

MODELS_UNAVAILABLE = "models_unavailable"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/tasks", _post_task)
    router.add_post("/v1/agents/{agent_id}/tasks", _post_agent_task)
    router.add_post("/v1/conflicts/check", _post_conflicts)
    router.add_post("/v1/anomalies", _post_anomaly)


async def _post_task(request: web.Request) -> web.Response:
    return await _run_task(request, parse_task(decode_object(await request.read())))


async def _post_agent_task(request: web.Request) -> web.Response:
    agent_id = check_agent_id(request.match_info["agent_id"])
    return await _run_task(request, parse_task(decode_object(await request.read()), agent_id))


async def _run_task(request: web.Request, task: TaskRequest) -> web.Response:
    service = request.app[SERVICE]
    check_rate_limit(service, task.agent_id)
    reservation = _open_reservation(service, task.approval_id)
    if service.tasks_inflight >= service.config.max_tasks_inflight:
        message = f"{service.tasks_inflight} tasks are running already"
        raise ApiError(503, errors.OVERLOADED, message, {"Retry-After": "1"})
    started_s = time.perf_counter()
    service.tasks_inflight += 1
    try:
        answer, result = await service.runner.run(task)
    finally:
        service.tasks_inflight -= 1
    service.metrics.record_task(answer is not None, result.fallback_index > 0, _since(started_s))
    if reservation is not None:
        _settle(service, task, reservation, result)
    if answer is None:
        raise ApiError(503, MODELS_UNAVAILABLE, _unavailable_message(result))
    return json_response(answer)


def _open_reservation(service: Service, approval_id: str | None) -> int | None:
    if approval_id is None:
        return None
    found = reservation_id(approval_id)
    if not service.ledger.is_reserved(found):
        raise not_open(approval_id)
    return found


def _settle(service: Service, task: TaskRequest, reservation: int, result: ChainResult) -> None:
    if result.used is None:
        settled = service.ledger.release(reservation)
    else:
        settled = service.ledger.settle(reservation, result.used.cost_usd)
    if not settled:  # settled by a concurrent task, or expired, while this one ran
        raise not_open(str(task.approval_id))


def _unavailable_message(result: ChainResult) -> str:
    tried = ", ".join(f"{a.model}: {a.outcome}" for a in result.attempts)
    return f"no model in the chain answered ({tried})"


async def _post_conflicts(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    claims_by_agent, tolerance = parse_conflicts(decode_object(await request.read()))
    started_s = time.perf_counter()
    report = find_conflicts(claims_by_agent, tolerance)
    if service.config.has_defect("conflicts"):
        report = ConflictReport(report.compared_keys, [])
    elapsed_ms = _since(started_s) * 1000
    if report.conflicts:
        agents = sorted({a for c in report.conflicts for a in c.values})
        service.ledger.notify(conflict_notice([c.key for c in report.conflicts], agents))
    return json_response(
        {
            "conflicts_count": len(report.conflicts),
            "resolved_count": len(report.conflicts),
            "conflicts": [c.as_json() for c in report.conflicts],
            "agreement_ratio": report.agreement_ratio,
            "resolution_time_ms": round(elapsed_ms, 3),
        }
    )


async def _post_anomaly(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    alert = parse_anomaly(decode_object(await request.read()))
    decision = service.anomalies.receive(alert.anomaly_type, alert.severity, alert.details)
    if not decision.deduplicated:
        notice = anomaly_notice(
            decision.anomaly_id, alert.anomaly_type, alert.severity, decision.actions
        )
        service.ledger.notify(notice)
    if decision.cool_down is not None:
        service.pool.cool_down(decision.cool_down)
    for priority in decision.shed_priorities:
        service.admission.shed_priority(priority, service.shed_order_s)
    body = {
        "anomaly_id": decision.anomaly_id,
        "actions": decision.actions,
        "deduplicated": decision.deduplicated,
    }
    return json_response(body, 202)


def _since(started_s: float) -> float:
    return time.perf_counter() - started_s
