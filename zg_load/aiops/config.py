"""Configuration of the reference AI Ops service.

`ServiceConfig` is frozen: a running service never changes its own settings. Defaults
describe a small deployment: 4 approval workers at 5 ms each (800 approvals/s), a
queue of 256 waiting requests, 1 s of queue wait at most, loopback only.
`time_scale` multiplies every simulated duration (model latencies, breaker windows and
waits, reservation lifetime, anomaly de-duplication), so tests can run a day in seconds;
`seed` makes every random draw (latencies, injected errors, hallucinations) repeatable.
`defects` deliberately break one behaviour each (see `DEFECTS`), so a validation can
prove that its checks fail when the service misbehaves; the default has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from zg_load.aiops.window import parse_window_s

DEFAULT_BUDGET_USD = 100.0
DEFAULT_WINDOW = "1d"

# Deliberately broken behaviours, by name: what each one turns off.
DEFECTS: dict[str, str] = {
    "reservation": "approvals never check the budget: every approval is admitted",
    "shedding": "no priority admission: a FIFO queue that sheds the newest request",
    "fallback": "no fallback: the first model's failure fails the task",
    "checks": "the hallucination check never flags an output",
    "conflicts": "the conflict check never reports a conflict",
    "notifications": "no notification is ever written",
}


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Settings of one reference-service instance; every field has a usable default."""

    host: str = "127.0.0.1"
    port: int = 0
    # None: a fresh ledger in a temporary directory, removed when the service stops.
    db_path: str | None = None
    # None: a random token is generated at start.
    admin_token: str | None = None
    approval_workers: int = 4
    approval_service_time_s: float = 0.005
    queue_bound: int = 256
    max_queue_wait_s: float = 1.0
    # None: keep the ledger's limit (DEFAULT_BUDGET_USD for a fresh ledger);
    # a value sets the limit at start, as PUT /v1/budget would, keeping spend.
    budget_usd: float | None = None
    budget_window: str = DEFAULT_WINDOW
    status_window_s: float = 10.0
    max_body_bytes: int = 64 * 1024
    shutdown_timeout_s: float = 5.0
    backlog: int = 2048
    time_scale: float = 1.0
    seed: int = 0
    # Unused approvals release their money after this long (multiplied by time_scale).
    reservation_ttl_s: float = 900.0
    # None: no per-agent rate limit unless a fault sets one.
    rate_limit_per_agent_per_s: float | None = None
    max_tasks_inflight: int = 1024
    idempotency_entries: int = 10_000
    defects: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _require(self.approval_workers >= 1, "approval_workers must be >= 1")
        _require(self.approval_service_time_s >= 0, "approval_service_time_s must be >= 0")
        _require(self.queue_bound >= 0, "queue_bound must be >= 0")
        _require(self.max_queue_wait_s > 0, "max_queue_wait_s must be > 0")
        _require(self.status_window_s > 0, "status_window_s must be > 0")
        _require(self.max_body_bytes >= 1024, "max_body_bytes must be >= 1024")
        _require(self.budget_usd is None or self.budget_usd >= 0, "budget_usd must be >= 0")
        _require(self.time_scale > 0, "time_scale must be > 0")
        _require(self.reservation_ttl_s > 0, "reservation_ttl_s must be > 0")
        rate = self.rate_limit_per_agent_per_s
        _require(rate is None or rate > 0, "rate_limit_per_agent_per_s must be > 0")
        _require(self.max_tasks_inflight >= 1, "max_tasks_inflight must be >= 1")
        _require(self.idempotency_entries >= 0, "idempotency_entries must be >= 0")
        parse_window_s(self.budget_window)
        unknown = sorted(self.defects - DEFECTS.keys())
        _require(not unknown, f"unknown defect {', '.join(unknown)} (known: {', '.join(DEFECTS)})")

    def has_defect(self, name: str) -> bool:
        """Whether the behaviour `name` (a key of `DEFECTS`) is deliberately broken."""
        return name in self.defects

    def scaled_s(self, duration_s: float) -> float:
        """A simulated duration in real seconds under `time_scale`."""
        return duration_s * self.time_scale

    @property
    def capacity_per_s(self) -> float | None:
        """Approvals per second the workers can serve; None when service time is zero."""
        if self.approval_service_time_s == 0:
            return None
        return self.approval_workers / self.approval_service_time_s


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
