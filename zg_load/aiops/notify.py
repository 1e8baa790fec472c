"""Notifications: the kinds the service writes and what each one says.

The ledger writes a notification in the same transaction as the change that caused
it, so a notification exists exactly when its cause was committed. This module only
shapes them: kind names, human messages, details, and the JSON a client reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from zg_load.aiops.window import iso_utc

BUDGET_SOFT_LIMIT = "budget_soft_limit"
BUDGET_EXHAUSTED = "budget_exhausted"


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification about to be written: kind, message and details."""

    kind: str
    message: str
    details: dict[str, object]


@dataclass(frozen=True, slots=True)
class Notification:
    """A written notification; ids are positive and increase, even across resets."""

    id: int
    kind: str
    message: str
    created_at_s: float
    details: dict[str, object]

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "message": self.message,
            "created_at": iso_utc(self.created_at_s),
            "details": self.details,
        }


def soft_limit_notice(committed_usd: float, soft_usd: float, max_usd: float) -> Notice:
    message = f"budget soft limit reached: {committed_usd:.6g} of {max_usd:.6g} USD committed (soft limit {soft_usd:.6g})"
    details: dict[str, object] = {
        "committed_usd": committed_usd,
        "soft_usd": soft_usd,
        "max_usd": max_usd,
    }
    return Notice(BUDGET_SOFT_LIMIT, message, details)


def exhausted_notice(
    committed_usd: float, requested_usd: float, max_usd: float, priority: int
) -> Notice:
    message = f"budget exhausted: a request for {requested_usd:.6g} USD was refused with {committed_usd:.6g} of {max_usd:.6g} USD committed"
    details: dict[str, object] = {
        "committed_usd": committed_usd,
        "requested_usd": requested_usd,
        "max_usd": max_usd,
        "priority": priority,
    }
    return Notice(BUDGET_EXHAUSTED, message, details)
