"""The names of every metric a check can name, so a misspelt check fails at validation.

Pure. Latency metrics take labels (``latency.p99_ms{op=approval,priority=5}``); the
validation sections' names come from ``zg_load.validation.METRICS``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Set

from zg_load.outcome import Outcome

STATS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
RUN_METRICS = (
    "priority_adherence",
    "completion_rate",
    "stability",
    "generator.lag_p99_ms",
    "generator.achieved_ratio",
    "throughput_per_s",
    "admitted_per_s",
    "recovery_time_s",
    "refusal_rate",
    "time_to_detect_s",
    "resilience_score",
)


def known_metric_names() -> list[str]:
    """Every metric name (without labels) that a run can report."""
    from zg_load.validation import METRICS  # validation imports the scenario module

    latency = (f"{kind}.{stat}" for kind in ("latency", "service") for stat in STATS)
    return sorted({*RUN_METRICS, *latency, *METRICS})


def unknown_metric(metric: str) -> str | None:
    """None when ``metric`` (labels allowed) can exist; otherwise a message with suggestions."""
    base = metric.split("{", 1)[0]
    names = known_metric_names()
    if base in names:
        return None
    close = difflib.get_close_matches(base, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown metric {base!r}{hint}"


_LABELLED = {"latency": ("op", "priority", "outcome"), "service": ("op", "priority", "outcome")}


def unknown_series(metric: str, priorities: Mapping[str, Set[int]]) -> str | None:
    """None when the labels of ``metric`` name a series this scenario can produce (its
    operations and their priorities, by ``priorities``); otherwise what is wrong."""
    base, _, body = metric.partition("{")
    labels = dict(part.split("=", 1) for part in body.rstrip("}").split(",")) if body else {}
    family = base.split(".", 1)[0]
    allowed = _LABELLED.get(family, ("op", "priority") if base == "refusal_rate" else ())
    if not labels:
        if allowed and base != "refusal_rate":
            return f"{base} needs labels, like {base}{{op=approval,priority=5}}"
        return None
    if not allowed:
        return f"{base} takes no labels"
    extra = sorted(set(labels) - set(allowed))
    if extra:
        return f"{base} has no label {extra[0]!r}; its labels are {', '.join(allowed)}"
    missing = [key for key in ("op", "priority") if key not in labels]
    if missing:
        return f"{base} needs both op and priority, like {base}{{op=approval,priority=5}}"
    op, priority = labels["op"], labels["priority"]
    if op not in priorities:
        close = difflib.get_close_matches(op, list(priorities), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"this scenario sends no {op!r} requests{hint}"
    known = sorted(priorities[op])
    if not priority.isdigit() or str(int(priority)) != priority or int(priority) not in known:
        listed = ", ".join(str(p) for p in known)
        return f"this scenario sends no {op} requests of priority {priority} (only {listed})"
    outcome = labels.get("outcome")
    if outcome == "ok":
        plain = f"{base}{{op={op},priority={priority}}}"
        return f"admitted requests are the series without an outcome: {plain}"
    others = [o.value for o in Outcome if o is not Outcome.OK]
    if outcome is not None and outcome not in others:
        return f"unknown outcome {outcome!r}; outcomes are {', '.join(others)}"
    return None
