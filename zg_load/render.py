"""Render a run summary as plain text, the way a performance engineer reads it.

Pure: a summary dict in, a string out. Empty values print as "n/a", never 0. The
layout: header, accounting (with the identity), phases (intended vs achieved),
latency per priority (corrected from the intended start, and service time), refusals
per priority, storm figures, generator health, checks. Given the run's histograms, the
latency section is wrk2's percentile table (50 % ... 100 %) for both kinds, and with
``spectrum`` the full HDR percentile spectrum of each follows (HdrHistogram's .hgrm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zg_load.hdr import Histogram
from zg_load.hlog import Key, format_hgrm, tag_for
from zg_load.validation import SECTIONS
from zg_load.validation_render import render_validation

if TYPE_CHECKING:
    from zg_load.report_formats import RunHistograms

PCTS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
PCT_TITLES = ("p50", "p90", "p99", "p99.9", "max")
WRK2_PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0)
_DIGEST_AT = {50.0: "p50_ms", 90.0: "p90_ms", 99.0: "p99_ms", 99.9: "p999_ms", 100.0: "max_ms"}


def fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 2) -> list[str]:
    """Left-align the first column, right-align the others."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [str(cells[0]).ljust(widths[0])]
        parts += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " " * indent + "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _accounting(acc: Mapping[str, Any]) -> list[str]:
    ok = "holds" if acc["identity_holds"] else "BROKEN"
    return [
        "Accounting (every intended request exactly once)",
        f"  intended {fmt(acc['intended'])} = sent {fmt(acc['sent'])} + not sent {fmt(acc['not_sent'])}",
        f"  sent {fmt(acc['sent'])} = ok {fmt(acc['ok'])} + refused {fmt(acc['refused'])} + error "
        f"{fmt(acc['error'])} + timeout {fmt(acc['timeout'])} + transport {fmt(acc['transport'])}"
        f" + in flight at stop {fmt(acc['in_flight'])}",
        f"  identity {ok}; completed during drain: {fmt(acc['drained'])}",
    ]


def _length(p: Mapping[str, Any]) -> str:
    ran = p.get("ran_s", p["duration_s"])
    if ran == p["duration_s"]:
        return fmt(p["duration_s"], 1, "s")
    if not ran:
        return "not reached"
    return f"{fmt(ran, 1, 's')} of {fmt(p['duration_s'], 1, 's')}"


def _phases(phases: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        [
            p["name"],
            p["role"],
            _length(p),
            fmt(p["intended"]),
            fmt(p["sent"]),
            fmt(p["intended_rate_per_s"], 1, "/s"),
            fmt(p["achieved_rate_per_s"], 1, "/s"),
        ]
        for p in phases
    ]
    heads = ["phase", "role", "length", "intended", "sent", "intended rate", "achieved rate"]
    return ["Phases", *table(heads, rows)]


def by_phase_tables(
    phases: Sequence[Mapping[str, Any]],
) -> list[tuple[list[str], list[list[str]]]]:
    """The By-phase tables, one per operation: (headers, rows), each cell a ``phase_cell``
    or "-" (the text, Markdown and HTML reports draw them)."""
    out = []
    for op in sorted({op for p in phases for op in p.get("by_priority", {})}):
        prios = sorted({int(k) for p in phases for k in p["by_priority"].get(op, {})}, reverse=True)
        rows = []
        for p in phases:
            mine = p["by_priority"].get(op, {})
            rows.append(
                [p["name"], *(phase_cell(mine[str(q)]) if str(q) in mine else "-" for q in prios)]
            )
        out.append(([op, *(f"p{q}" for q in prios)], rows))
    return out


def _by_phase(phases: Sequence[Mapping[str, Any]]) -> list[str]:
    out = [
        "By phase: refused / p99 of admitted, per priority (requests that completed in the phase)"
    ]
    for heads, rows in by_phase_tables(phases):
        out += table(heads, rows)
    return out


def _latency(latency: Mapping[str, Any]) -> list[str]:
    out = [
        "Latency of admitted requests (ms): corrected = from intended start; service = from send"
    ]
    for op, prios in latency.items():
        rows = []
        for prio in sorted(prios, key=int, reverse=True):
            ok = prios[prio].get("ok")
            if ok is None:
                rows.append([f"{op} p{prio}", "0", *(["n/a"] * 5), *(["n/a"] * 2)])
                continue
            c, s = ok["corrected"], ok["service"]
            rows.append(
                [
                    f"{op} p{prio}",
                    fmt(c["count"]),
                    *(fmt(c[k]) for k in PCTS),
                    fmt(s["p50_ms"]),
                    fmt(s["p99_ms"]),
                ]
            )
        out += table(["operation", "count", *PCT_TITLES, "svc p50", "svc p99"], rows)
    return out


def percentile_rows(
    summary: Mapping[str, Any],
    corrected: Mapping[Key, Histogram],
    service: Mapping[Key, Histogram],
    key: Key,
) -> dict[str, list[float | None]]:
    """wrk2's percentiles (ms) of one key, corrected and service: from the histogram when
    there is one, else from the summary's digest (which has p50/p90/p99/p99.9/max only;
    the others are NaN, "not recorded", shown as "-" by ``cell``)."""
    op, prio, outcome = key
    digest = summary["latency"].get(op, {}).get(str(prio), {}).get(outcome, {})
    out: dict[str, list[float | None]] = {}
    for kind, hists in (("corrected", corrected), ("service", service)):
        hist = hists.get(key)
        if hist is not None and hist.count:
            out[kind] = [_ms_of(hist.percentile(p)) for p in WRK2_PERCENTILES]
        elif kind in digest:
            out[kind] = [
                digest[kind][_DIGEST_AT[p]] if p in _DIGEST_AT else math.nan
                for p in WRK2_PERCENTILES
            ]
    return out


def cell(value: float | None) -> str:
    """A percentile cell: "-" when not recorded (NaN), "n/a" when empty."""
    return "-" if isinstance(value, float) and math.isnan(value) else fmt(value)


def _ms_of(us: int | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


def _distribution(summary: Mapping[str, Any], hists: RunHistograms) -> list[str]:
    out = [
        "Latency distribution of admitted requests (ms, HdrHistogram): corrected = from the "
        "intended start; service = from the send"
    ]
    heads = ["operation", "kind", "count", *(f"{p:g}%" for p in WRK2_PERCENTILES)]
    rows = []
    for op, prios in summary["latency"].items():
        for prio in sorted(prios, key=int, reverse=True):
            key = (op, int(prio), "ok")
            ok = prios[prio].get("ok")
            if ok is None:
                rows.append([f"{op} p{prio}", "corrected", "0", *(["n/a"] * len(WRK2_PERCENTILES))])
                continue
            kinds = percentile_rows(summary, hists.corrected, hists.service, key)
            for i, (kind, values) in enumerate(kinds.items()):
                label = f"{op} p{prio}" if i == 0 else ""
                rows.append([label, kind, fmt(ok[kind]["count"]), *(cell(v) for v in values)])
    out += table(heads, rows)
    if not hists.service:
        out.append("  (-: not recorded; the run kept only service p50/p90/p99/p99.9/max)")
    return out


def _spectrum(hists: RunHistograms) -> list[str]:
    out = ["Percentile spectrum (ms; HdrHistogram .hgrm layout)"]
    for kind, source in (("corrected", hists.corrected), ("service", hists.service)):
        for key in sorted(source, key=lambda k: (k[0], -k[1], k[2])):
            if key[2] != "ok":
                continue
            out += ["", f"  {tag_for(key)} {kind}", *format_hgrm(source[key]).rstrip().split("\n")]
    return out


def _refusals(by_priority: Mapping[str, Any]) -> list[str]:
    out = [
        "Refusals by priority over the whole run (designed answers; read 'By phase' for the storm)"
    ]
    for op, prios in by_priority.items():
        rows = [
            [
                f"{op} p{prio}",
                fmt(r["requests"]),
                fmt(r.get("overloaded", 0)),
                fmt(r.get("budget_exceeded", 0)),
                fmt(r.get("rate_limited", 0)),
                fmt(None if r["refusal_rate"] is None else 100 * r["refusal_rate"], 1, "%"),
                fmt(r["error"] + r["timeout"] + r["transport"]),
            ]
            for prio, r in sorted(prios.items(), key=lambda kv: int(kv[0]), reverse=True)
        ]
        out += table(
            ["operation", "requests", "overloaded", "budget", "rate limit", "refused", "failed"],
            rows,
        )
    return out


def storm_lines(s: Mapping[str, Any]) -> list[str]:
    d = s["priority_adherence_detail"]
    rec = s.get("recovery")
    latency = d.get("p99_comparisons")
    of_p99 = "" if latency is None else f", {latency} of them of p99 latency"
    out = [
        "Storm" if rec is not None else "Service under load",
        f"  priority adherence   {fmt(s['priority_adherence'], 3)}"
        f"  (request-weighted share of {d['comparisons']} adjacent-priority comparisons{of_p99};"
        f" {d['held']} held)",
    ]
    if latency == 0 and d["comparisons"]:
        out.append(
            "                       no cohort had 100 admitted requests of two adjacent priorities:"
            " this adherence compares who was turned away, not latency"
        )
    if rec is not None:
        never = " (never recovered within the run)" if rec["recovery_time_s"] is None else ""
        out += [
            f"  recovery time        {fmt(rec['recovery_time_s'], 1, ' s')}{never}",
            f"  baseline             p99 {fmt(rec['baseline_p99_ms'], 2, ' ms')}, refused "
            f"{fmt(_pct(rec['baseline_refusal_rate']), 1, '%')}"
            "  (p99: median of the phase's interval p99s, all priorities)",
            f"  storm                p99 {fmt(rec['storm_p99_ms'], 2, ' ms')}, refused "
            f"{fmt(_pct(rec['storm_refusal_rate']), 1, '%')}",
        ]
    st = s["stability"]
    out.append(f"  health probes        {st['answered']} of {st['probes']} answered in time")
    out.append(
        f"  completion rate      {fmt(_pct(s['completion_rate']), 2, '%')} answered (ok or refused)"
    )
    tp = s["throughput"]
    out.append(
        f"  throughput           {fmt(tp['answered_per_s'], 1, '/s')} answered, "
        f"{fmt(tp['admitted_per_s'], 1, '/s')} admitted "
        f"({fmt(tp['answered'])} answers in {fmt(tp['window_s'], 2, ' s')})"
    )
    return out


def phase_cell(row: Mapping[str, Any]) -> str:
    """One priority in one phase: refused share / p99 of admitted, and the failed share when
    any (a service that went down shows as failed, not as 0 % refused)."""
    text = f"{fmt(_pct(row['refusal_rate']), 1, '%')} / {fmt(row['p99_ms'], 1, ' ms')}"
    failed, requests = row.get("failed", 0), row.get("requests", 0)
    if failed and requests:
        text += f", {fmt(100 * failed / requests, 1, '%')} failed"
    return text


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def generator_lines(g: Mapping[str, Any]) -> list[str]:
    lag = g["lag"]
    line = (
        f"  schedule lag p50 {fmt(lag['p50_ms'], 3, ' ms')}, p99 {fmt(lag['p99_ms'], 3, ' ms')}, "
        f"max {fmt(lag['max_ms'], 3, ' ms')}; sent/intended {fmt(g['achieved_ratio'], 4)}"
    )
    out = ["Generator", line]
    if g["behind"]:
        out.append(
            "  WARNING: the generator fell behind its schedule (lag p99 over "
            f"{fmt(g['lag_limit_ms'], 1, ' ms')} or sent/intended under 0.99); "
            "latencies still count from the intended start, but the offered load was lower"
        )
    return out


def _checks(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    out = ["Checks"]
    for c in checks:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[c["passed"]]
        out.append(f"  {mark}  {c['name']}  ({c['note']})")
    return out


def render_text(
    summary: Mapping[str, Any], hists: RunHistograms | None = None, spectrum: bool = False
) -> str:
    """The run report as text; ``hists`` adds wrk2's table, ``spectrum`` the full spectrum."""
    sc = summary["scenario"]
    head = f"zg-load {summary['zg_load_version']}: {sc['name']} against {summary['target']['url']}"
    if summary["target"]["embedded"]:
        head += " (embedded reference service)"
    lines = [head, f"started {summary['started_at']}"]
    budget = (summary.get("target_state_before") or {}).get("budget")
    if isinstance(budget, dict) and budget.get("max_usd") is not None:
        lines.append(
            f"target budget when the run started: spent ${fmt(budget.get('spent_usd'))}, "
            f"reserved ${fmt(budget.get('reserved_usd'))} of ${fmt(budget.get('max_usd'))}"
        )
    if summary["partial"]:
        lines.append(
            f"PARTIAL RUN: stopped early ({summary['stop_reason']}); figures cover what ran"
        )
    sections = [
        _accounting(summary["accounting"]),
        _phases(summary["phases"]),
        _by_phase(summary["phases"]),
        _distribution(summary, hists)
        if hists and hists.corrected
        else _latency(summary["latency"]),
        _refusals(summary["by_priority"]),
        storm_lines(summary),
        generator_lines(summary["generator"]),
    ]
    if summary.get("setup_errors"):
        sections.append(
            [
                "Setup refused by the target (counts as failed)",
                *(f"  {m}" for m in summary["setup_errors"]),
            ]
        )
    if summary.get("errors"):
        sections.append(
            ["Errors (most common)", *(f"  {n:>6}  {k}" for k, n in summary["errors"].items())]
        )
    validation = summary.get("validation")
    if validation and any(validation.get(name) for name in SECTIONS):
        body = render_validation(validation).rstrip("\n").split("\n")
        sections.append(["Validation (every figure measured in this run)", *body])
    if "checks" in summary:
        sections.append(_checks(summary["checks"]))
        verdict = "all checks passed" if summary["passed"] else "CHECKS FAILED"
        if summary["partial"]:
            verdict = "PARTIAL RUN (counts as failed)"
        elif not summary["accounting"]["identity_holds"]:
            verdict = "ACCOUNTING BROKEN (counts as failed)"
        sections.append([f"Result: {verdict}"])
    if spectrum and hists is not None:
        sections.append(_spectrum(hists))
    for sec in sections:
        lines += ["", *sec]
    return "\n".join(lines) + "\n"
