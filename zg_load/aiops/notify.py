"""Notifications: the kinds the service writes and what each one says.

The ledger writes a budget notification in the same transaction as the change that
caused it, so it exists exactly when its cause was committed; the other kinds (model
downgrade and restoration, conflicts, alerts) are written when they happen. This module only
shapes them: kind names, human messages, details, and the JSON a client reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from zg_load.aiops.window import iso_utc

BUDGET_SOFT_LIMIT = "budget_soft_limit"
BUDGET_EXHAUSTED = "budget_exhausted"
MODEL_DOWNGRADED = "model_downgraded"
MODEL_RESTORED = "model_restored"
CONFLICT_DETECTED = "conflict_detected"
ANOMALY_RECEIVED = "anomaly_received"


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


def downgraded_notice(model: str, fallback_to: str) -> Notice:
    message = f"model {model} is failing: tasks fall back to {fallback_to}"
    return Notice(MODEL_DOWNGRADED, message, {"model": model, "fallback_to": fallback_to})


def restored_notice(model: str) -> Notice:
    return Notice(MODEL_RESTORED, f"model {model} answers again", {"model": model})


def conflict_notice(keys: list[str], agents: list[str]) -> Notice:
    message = f"{len(keys)} conflicting claim(s) between agents: {', '.join(keys)}"
    return Notice(CONFLICT_DETECTED, message, {"keys": keys, "agents": agents})


def anomaly_notice(anomaly_id: str, anomaly_type: str, severity: str, actions: list[str]) -> Notice:
    message = f"{severity} anomaly {anomaly_type} received ({anomaly_id}): {', '.join(actions)}"
    details: dict[str, object] = {
        "anomaly_id": anomaly_id,
        "type": anomaly_type,
        "severity": severity,
        "actions": actions,
    }
    return Notice(ANOMALY_RECEIVED, message, details)
