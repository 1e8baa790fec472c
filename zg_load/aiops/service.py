"""The state of one running service instance, and how it is built, swept and reset.

Everything lives on one event loop: the ledger is one SQLite connection used from it,
and the other parts are plain objects. `reset` returns every part to its state at
start, except the budget's limit and window, and ids that only ever increase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from zg_load.aiops.admission import Admission
from zg_load.aiops.anomalies import AnomalyDesk
from zg_load.aiops.config import DEFAULT_BUDGET_USD, ServiceConfig
from zg_load.aiops.faults import Faults
from zg_load.aiops.idempotency import IdempotencyStore
from zg_load.aiops.ledger import Budget, Ledger, Refusal, Reservation, to_micros
from zg_load.aiops.metrics import Metrics
from zg_load.aiops.pool import ModelPool
from zg_load.aiops.ratelimit import RateLimiter
from zg_load.aiops.schema import ApprovalRequest
from zg_load.aiops.tasks import TaskRunner

log = logging.getLogger(__name__)

Decision = Reservation | Refusal
DEDUPE_S = 60.0
SHED_ORDER_S = 30.0
MAX_SWEEP_INTERVAL_S = 5.0


@dataclass(slots=True)
class Service:
    """The parts one running instance owns; created at startup, closed at cleanup."""

    config: ServiceConfig
    ledger: Ledger
    admission: Admission[ApprovalRequest, Decision]
    metrics: Metrics
    faults: Faults
    pool: ModelPool
    runner: TaskRunner
    anomalies: AnomalyDesk
    limiter: RateLimiter
    idempotency: IdempotencyStore
    tasks_inflight: int = 0

    def reset(self) -> Budget:
        budget = self.ledger.reset()
        self.metrics.reset()
        self.admission.reset_counters()
        self.faults.clear()
        self.pool.reset()
        self.runner.reset()
        self.anomalies.reset()
        self.limiter.reset()
        self.idempotency.reset()
        return budget

    @property
    def reservation_ttl_s(self) -> float:
        return self.config.scaled_s(self.config.reservation_ttl_s)

    @property
    def shed_order_s(self) -> float:
        return self.config.scaled_s(SHED_ORDER_S)


def open_ledger(config: ServiceConfig, path: str) -> Ledger:
    ledger = Ledger(
        path,
        default_max_usd=DEFAULT_BUDGET_USD,
        default_window=config.budget_window,
        notifications=not config.has_defect("notifications"),
    )
    wanted = config.budget_usd
    if wanted is not None and ledger.budget().max_micros != to_micros(wanted):
        ledger.set_budget(wanted, None, None)
    return ledger


def new_service(config: ServiceConfig, ledger: Ledger) -> Service:
    metrics = Metrics(config.status_window_s)
    enforce = not config.has_defect("reservation")

    def decide(approval: ApprovalRequest) -> Decision:
        return ledger.reserve(
            approval.estimated_cost_usd, approval.priority, approval.agent_id, enforce=enforce
        )

    admission: Admission[ApprovalRequest, Decision] = Admission(
        decide,
        workers=config.approval_workers,
        service_time_s=config.approval_service_time_s,
        queue_bound=config.queue_bound,
        max_queue_wait_s=config.max_queue_wait_s,
        on_busy=metrics.record_busy,
        fifo=config.has_defect("shedding"),
    )
    faults = Faults(config.seed)
    pool = ModelPool(faults, ledger.notify, seed=config.seed, time_scale=config.time_scale)
    return Service(
        config=config,
        ledger=ledger,
        admission=admission,
        metrics=metrics,
        faults=faults,
        pool=pool,
        runner=TaskRunner(
            pool,
            faults,
            config.seed,
            fallback=not config.has_defect("fallback"),
            check=not config.has_defect("checks"),
        ),
        anomalies=AnomalyDesk(config.scaled_s(DEDUPE_S)),
        limiter=RateLimiter(),
        idempotency=IdempotencyStore(config.idempotency_entries),
    )


@contextlib.asynccontextmanager
async def sweeping(service: Service) -> AsyncIterator[None]:
    """Expire unused reservations in the background while the context is open."""
    task = asyncio.create_task(_sweep(service))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sweep(service: Service) -> None:
    interval_s = min(MAX_SWEEP_INTERVAL_S, max(0.01, service.reservation_ttl_s / 10))
    while True:
        await asyncio.sleep(interval_s)
        try:
            service.ledger.expire(service.reservation_ttl_s)
        except Exception:  # a busy or broken ledger must not end the sweeper
            log.exception("expiring reservations failed")
