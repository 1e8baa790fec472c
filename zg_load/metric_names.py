"""The names of every metric a check can name, so a misspelt check fails at validation.

Pure. Latency metrics take labels (``latency.p99_ms{op=approval,priority=5}``); the
validation sections' names come from ``zg_load.validation.METRICS``.
"""

from __future__ import annotations

import difflib

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
