"""The outcomes a request can have, and the one table that maps answers onto them.

Every sent request ends in exactly one outcome. Refusals are designed answers of an
AI Ops service (budget, shedding, rate limit): they are counted apart from errors and
never lower a success latency.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    ERROR = "error"
    TIMEOUT = "timeout"
    TRANSPORT = "transport"


# Error types that are designed refusals, by HTTP status; anything else non-2xx is an error.
REFUSALS: dict[tuple[int, str], str] = {
    (429, "budget_exceeded"): "budget_exceeded",
    (429, "rate_limited"): "rate_limited",
    (429, "rate_limit"): "rate_limited",
    (503, "overloaded"): "overloaded",
}
REFUSAL_REASONS: tuple[str, ...] = ("budget_exceeded", "overloaded", "rate_limited")


def classify(status: int, error_type: str | None) -> tuple[Outcome, str | None]:
    """Map an HTTP status and the body's ``error.type`` to (outcome, refusal reason)."""
    if 200 <= status < 300:
        return Outcome.OK, None
    reason = REFUSALS.get((status, error_type or ""))
    if reason is not None:
        return Outcome.REFUSED, reason
    return Outcome.ERROR, None
