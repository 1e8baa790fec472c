"""The run summary: every figure the report shows, as one JSON-ready dict.

Pure: a run result and its scenario in, a dict out. Latencies are milliseconds with
microsecond resolution; an empty histogram gives null, never 0. The accounting
identity is computed and stated, not assumed. Named metrics for checks come from
the summary alone (``metrics``), so checks can be re-evaluated from artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zg_load import __version__
from zg_load.analysis import baseline_of, priority_adherence, recovery_time
from zg_load.checks import Check, CheckResult, evaluate
from zg_load.hdr import Histogram
from zg_load.hlog import tag_for
from zg_load.outcome import REFUSAL_REASONS, Outcome
from zg_load.plan import phase_starts_ns
from zg_load.result import RunResult
from zg_load.scenario import Scenario
from zg_load.validation import METRICS as VALIDATION_METRICS
from zg_load.validation import validation_metrics

NS_PER_S = 1_000_000_000
OUTCOMES = tuple(o.value for o in Outcome)


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


def accounting(result: RunResult) -> dict[str, Any]:
    t = result.tally
    sent_parts = t.ok + t.refused + t.error + t.timeout + t.transport + t.in_flight
    return {
        "intended": t.intended,
        "sent": t.sent,
        "not_sent": t.not_sent,
        "ok": t.ok,
        "refused": t.refused,
        "error": t.error,
        "timeout": t.timeout,
        "transport": t.transport,
        "in_flight": t.in_flight,
        "drained": t.drained,
        "identity_holds": t.intended == t.sent + t.not_sent and t.sent == sent_parts,
    }


def _phases(result: RunResult, scenario: Scenario) -> list[dict[str, Any]]:
    out = []
    for i, (phase, start_ns) in enumerate(
        zip(scenario.phases, phase_starts_ns(scenario), strict=True)
    ):
        # An interrupted run divides by the time each phase really ran (0: never reached).
        d = phase.duration_s
        if result.partial:
            d = min(phase.duration_s, max(0.0, (result.end_ns - start_ns) / NS_PER_S))
        out.append(
            {
                "name": phase.name,
                "role": phase.role,
                "start_s": start_ns / NS_PER_S,
                "duration_s": phase.duration_s,
                "ran_s": round(d, 6),
                "intended": result.phase_intended[i],
                "sent": result.phase_sent[i],
                "intended_rate_per_s": round(result.phase_intended[i] / d, 3) if d else None,
                "achieved_rate_per_s": round(result.phase_sent[i] / d, 3) if d else None,
                "by_priority": _phase_priorities(result.phase_latency[i]),
            }
        )
    return out


def _phase_priorities(hists: Mapping[tuple[str, int, str], Histogram]) -> dict[str, dict[str, Any]]:
    """Per op and priority, for requests that completed in a phase: counts, refusal rate, p99."""
    out: dict[str, dict[str, Any]] = {}
    for (op, priority, outcome), hist in sorted(hists.items()):
        row = out.setdefault(op, {}).setdefault(
            str(priority),
            {"requests": 0, "ok": 0, "refused": 0, "failed": 0, "p50_ms": None, "p99_ms": None},
        )
        row["requests"] += hist.count
        row[outcome if outcome in ("ok", "refused") else "failed"] += hist.count
        if outcome == "ok":
            row["p50_ms"], row["p99_ms"] = _ms(hist.percentile(50.0)), _ms(hist.percentile(99.0))
    for rows in out.values():
        for row in rows.values():
            row["refusal_rate"] = (
                round(row["refused"] / row["requests"], 6) if row["requests"] else None
            )
    return out


def _latency(result: RunResult) -> dict[str, dict[str, dict[str, Any]]]:
    """latency[op][priority][outcome] = {corrected: digest, service: digest}."""
    rec = result.recorder
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in sorted(rec.keys()):
        op, priority, outcome = key
        if rec.latency(key).count == 0:
            continue
        out.setdefault(op, {}).setdefault(str(priority), {})[outcome] = {
            "corrected": rec.latency(key).digest().to_json(),
            "service": rec.service(key).digest().to_json(),
        }
    return out


def _by_priority(result: RunResult) -> dict[str, dict[str, dict[str, Any]]]:
    """Refusals and request counts per op and priority, with the refusal rate."""
    counts = result.recorder.counts()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (op, priority, outcome), n in counts.items():
        row = out.setdefault(op, {}).setdefault(
            str(priority),
            {"requests": 0, **{o: 0 for o in OUTCOMES}, **{r: 0 for r in REFUSAL_REASONS}},
        )
        row["requests"] += n
        row[outcome] += n
    for (op, priority, reason), n in result.refusals.items():
        out.setdefault(op, {}).setdefault(str(priority), {})[reason] = n
    for rows in out.values():
        for row in rows.values():
            row["refusal_rate"] = (
                round(row["refused"] / row["requests"], 6) if row["requests"] else None
            )
    return out


def _throughput(result: RunResult) -> dict[str, Any]:
    """Answers (admitted or refused: never errors, timeouts or transport failures) and
    admissions per second, over the window from the first send to the last completion."""
    t = result.tally
    out: dict[str, Any] = {"answered": t.ok + t.refused, "admitted": t.ok}
    window_s = None
    if result.first_send_ns is not None and result.last_done_ns is not None:
        window_s = max(0, result.last_done_ns - result.first_send_ns) / NS_PER_S
    out["window_s"] = None if window_s is None else round(window_s, 6)
    for name in ("answered", "admitted"):
        out[f"{name}_per_s"] = round(out[name] / window_s, 3) if window_s else None
    return out


def _timeline(result: RunResult) -> dict[str, Any]:
    """Per interval: intended, sent and completed counts, p99 of admitted, lag p99;
    plus the service's status samples (budget, queue, models) over time."""
    rows = []
    for v in result.intervals:
        i = v.index
        length_s = (v.end_ns - v.start_ns) / NS_PER_S
        failed = sum(
            n for (_, _, o), n in v.counts.items() if o in ("error", "timeout", "transport")
        )
        rows.append(
            {
                "start_s": v.start_ns / NS_PER_S,
                "end_s": v.end_ns / NS_PER_S,
                "intended": result.intended_at.get(i, 0),
                "sent": result.sent_at.get(i, 0),
                "completed": v.total(),
                "completed_per_s": round(v.total() / length_s, 3) if length_s > 0 else None,
                "refused": v.refused(),
                "failed": failed,
                "p99_ms": _ms(v.p99_ok_all_us),
                "lag_p99_ms": _ms(v.lag_p99_us),
            }
        )
    status = [{"t_s": round(t, 3), **_status_fields(body)} for t, body in result.status]
    return {"intervals": rows, "status": status}


def _histograms(result: RunResult) -> dict[str, dict[str, str]]:
    """Whole-run histograms per tag, encoded (HdrHistogram V2, base64), for re-rendering."""
    rec = result.recorder
    return {
        tag_for(key): {"corrected": rec.latency(key).encode(), "service": rec.service(key).encode()}
        for key in sorted(rec.keys())
        if rec.latency(key).count
    }


def fault_spans(scenario: Scenario) -> list[dict[str, Any]]:
    """When the scenario's phase setups turned faults on and off (for plots and validation)."""
    spans: list[dict[str, Any]] = []
    open_spans: list[dict[str, Any]] = []
    for (start_s, _), phase in zip(scenario.phase_bounds(), scenario.phases, strict=True):
        setup = phase.setup
        if setup is None:
            continue
        if setup.clear_faults:
            for span in open_spans:
                span["end_s"] = start_s
            open_spans = []
        if setup.faults:
            span = {"start_s": start_s, "end_s": None, "name": describe_faults(setup.faults)}
            spans.append(span)
            open_spans.append(span)
    return spans


def describe_faults(faults: Mapping[str, Any]) -> str:
    parts = []
    for key, value in sorted(faults.items()):
        if key == "models" and isinstance(value, dict):
            for model, state in sorted(value.items()):
                down = isinstance(state, dict) and state.get("available") is False
                parts.append(f"{model} {'down' if down else 'changed'}")
        else:
            parts.append(key.replace("_", " "))
    return ", ".join(parts)


def _status_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    raw_budget, raw_models = body.get("budget"), body.get("models")
    budget: Mapping[str, Any] = raw_budget if isinstance(raw_budget, dict) else {}
    models: list[Any] = raw_models if isinstance(raw_models, list) else []
    return {
        "spent_usd": budget.get("spent_usd"),
        "reserved_usd": budget.get("reserved_usd"),
        "max_usd": budget.get("max_usd"),
        "queue_depth": body.get("queue_depth"),
        "inflight": body.get("inflight"),
        "models": [m for m in models if isinstance(m, dict)],
    }


def _generator(result: RunResult, lag_limit_ms: float) -> dict[str, Any]:
    lag = result.recorder.lag().digest()
    t = result.tally
    ratio = round(t.sent / t.intended, 6) if t.intended else None
    lag_p99 = _ms(lag.p99_us)
    behind = (lag_p99 is not None and lag_p99 > lag_limit_ms) or (
        ratio is not None and ratio < 0.99
    )
    return {
        "lag": lag.to_json(),
        "lag_p99_ms": lag_p99,
        "lag_limit_ms": lag_limit_ms,
        "achieved_ratio": ratio,
        "behind": behind,
    }


def _recovery(result: RunResult, scenario: Scenario) -> dict[str, Any] | None:
    roles = {p.role: i for i, p in enumerate(scenario.phases)}
    if "storm" not in roles or "baseline" not in roles:
        return None
    starts = phase_starts_ns(scenario)
    spans = [
        (s, s + round(p.duration_s * NS_PER_S))
        for s, p in zip(starts, scenario.phases, strict=True)
    ]
    if result.partial and result.end_ns < spans[roles["storm"]][1]:
        return None  # stopped before the storm ended: there was nothing to recover from
    a = scenario.analysis
    rec = recovery_time(
        result.intervals,
        spans[roles["baseline"]],
        spans[roles["storm"]][1],
        p99_tolerance=a.recovery_p99_tolerance,
        p99_tolerance_ms=a.recovery_p99_tolerance_ms,
        refusal_tolerance=a.recovery_refusal_tolerance,
        stable_intervals=a.recovery_stable_intervals,
    )
    storm_p99, storm_rate = baseline_of(result.intervals, *spans[roles["storm"]])
    return {
        "recovery_time_s": rec.time_s,
        "storm_end_s": rec.storm_end_s,
        "baseline_p99_ms": _ms(rec.baseline_p99_us),
        "baseline_refusal_rate": rec.baseline_refusal_rate,
        "storm_p99_ms": _ms(storm_p99),
        "storm_refusal_rate": storm_rate,
        "recovered_p99_limit_ms": _ms(rec.limit_p99_us),
    }


def build_summary(
    result: RunResult, scenario: Scenario, *, target: str, embedded: bool, started_at: str
) -> dict[str, Any]:
    """Everything about the run except the checks (added by ``with_checks``)."""
    a = scenario.analysis
    adherence = priority_adherence(result.cohorts, a.adherence_tolerance, a.adherence_tolerance_ms)
    t = result.tally
    answered = t.ok + t.refused
    rec = _recovery(result, scenario)
    return {
        "zg_load_version": __version__,
        "scenario": {"name": scenario.name, "source": scenario.source, "seed": scenario.seed},
        "target": {"url": target, "embedded": embedded},
        "started_at": started_at,
        "start_epoch_s": result.start_epoch_s,
        "interval_s": scenario.interval_s,
        "partial": result.partial,
        "stop_reason": result.stop_reason,
        "accounting": accounting(result),
        "phases": _phases(result, scenario),
        "throughput": _throughput(result),
        "latency": _latency(result),
        "by_priority": _by_priority(result),
        "priority_adherence": adherence.value,
        "priority_adherence_detail": {
            "comparisons": adherence.comparisons,
            "held": adherence.held,
            "p99_comparisons": adherence.p99_comparisons,
            "weight": adherence.weight,
            "weight_held": adherence.weight_held,
        },
        "recovery": rec,
        "recovery_time_s": rec["recovery_time_s"] if rec else None,
        "completion_rate": round(answered / t.sent, 6) if t.sent else None,
        "stability": {
            "probes": result.probes_total,
            "answered": result.probes_ok,
            "ratio": round(result.probes_ok / result.probes_total, 6)
            if result.probes_total
            else None,
        },
        "generator": _generator(result, a.lag_p99_limit_ms),
        "errors": dict(result.errors.most_common(10)),
        "setup_errors": list(result.setup_errors),
        "timeline": {**_timeline(result), "faults": fault_spans(scenario)},
        "histograms": _histograms(result),
    }


def metrics(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """Named metrics for checks, derived from the summary alone."""
    m: dict[str, float | None] = {
        "priority_adherence": summary["priority_adherence"],
        "completion_rate": summary["completion_rate"],
        "stability": summary["stability"]["ratio"],
        "generator.lag_p99_ms": summary["generator"]["lag_p99_ms"],
        "generator.achieved_ratio": summary["generator"]["achieved_ratio"],
        "throughput_per_s": summary["throughput"]["answered_per_s"],
        "admitted_per_s": summary["throughput"]["admitted_per_s"],
    }
    if summary.get("recovery") is not None:
        m["recovery_time_s"] = summary["recovery_time_s"]
    acc = summary["accounting"]
    m["refusal_rate"] = acc["refused"] / acc["sent"] if acc["sent"] else None
    for op, prios in summary["latency"].items():
        for prio, outcomes in prios.items():
            for outcome, kinds in outcomes.items():
                labels = {"op": op, "priority": prio}
                if outcome != "ok":
                    labels["outcome"] = outcome
                for kind, prefix in (("corrected", "latency"), ("service", "service")):
                    for stat in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
                        m[metric_name(f"{prefix}.{stat}", labels)] = kinds[kind][stat]
    for op, prios in summary["by_priority"].items():
        for prio, row in prios.items():
            m[metric_name("refusal_rate", {"op": op, "priority": prio})] = row["refusal_rate"]
    m.update(validation_metrics(summary))
    return m


def unmeasured(summary: Mapping[str, Any]) -> dict[str, str]:
    """Why each validation metric this run has no value for was not measured: the run used
    worker processes (which keep the answers validation needs), or the scenario applied no
    such stress."""
    validation = summary.get("validation")
    names = [*VALIDATION_METRICS, "time_to_detect_s", "resilience_score"]
    if validation is None:
        why = "not measured: validation needs a run in one process (without --workers or --ray)"
        return dict.fromkeys(names, why)
    out = {
        name: f"not measured: this scenario has no {section} section"
        for name, (section, _, _) in VALIDATION_METRICS.items()
        if section not in validation
    }
    if "time_to_detect_s" not in validation:
        out["time_to_detect_s"] = (
            "not measured: this run applied no stress that has a time to detect"
        )
    return out


def metric_name(metric: str, labels: Mapping[str, str]) -> str:
    """Canonical metric name: labels sorted by name, as checks write them."""
    inner = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    return f"{metric}{{{inner}}}"


def with_checks(summary: dict[str, Any], checks: tuple[Check, ...]) -> list[CheckResult]:
    """Evaluate the checks against the summary and store them in it; returns the results."""
    results = evaluate(checks, metrics(summary), unmeasured(summary))
    summary["checks"] = [
        {
            "name": r.check.text,
            "metric": r.check.metric,
            "comparator": r.check.comparator,
            "threshold": r.check.threshold,
            "value": r.value,
            "passed": r.passed,
            "default": r.check.default,
            "note": r.note,
        }
        for r in results
    ]
    summary["passed"] = (
        all(r.passed is not False for r in results)
        and summary["accounting"]["identity_holds"]
        and not summary["partial"]
        and not summary.get("setup_errors")
    )
    return results
