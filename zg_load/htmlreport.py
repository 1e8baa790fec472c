"""``report.html``: one self-contained page per run, plots embedded as base64 PNG.

Pure: a summary, the run's histograms and finished PNGs in, an HTML string out. The page
needs nothing else (no scripts, no fonts, no network), so it can be mailed or attached
to a CI job. Every value is HTML-escaped; empty values read "n/a", never 0.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

from zg_load.plots import Plot
from zg_load.render import WRK2_PERCENTILES, by_phase_tables, cell, fmt, percentile_rows
from zg_load.report_formats import RunHistograms
from zg_load.validation import SECTIONS
from zg_load.validation_render import render_validation

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ddd;
padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0}
td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}th{background:#f6f6f6}
.pass{color:#1e8449;font-weight:600}.fail{color:#c0392b;font-weight:700}.na{color:#888}
.banner{padding:.6em 1em;border-radius:4px;margin:.8em 0;font-weight:600}
.ok{background:#e9f7ef;color:#1e8449}.bad{background:#fdedec;color:#c0392b}
.warn{background:#fef5e7;color:#9c640c}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;margin-top:.3em}.muted{color:#777;font-size:.85em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _banner(summary: Mapping[str, Any]) -> str:
    parts = []
    if summary.get("partial"):
        parts.append(
            f'<div class="banner warn">Partial run: stopped early '
            f"({_e(summary['stop_reason'])}); figures cover what ran.</div>"
        )
    if summary.get("generator", {}).get("behind"):
        parts.append(
            '<div class="banner warn">The generator fell behind its schedule: latencies still '
            "count from the intended start, but the offered load was lower.</div>"
        )
    passed = summary.get("passed")
    if passed is not None:
        cls, text = ("ok", "All checks passed") if passed else ("bad", "Checks failed")
        parts.append(f'<div class="banner {cls}">{text}</div>')
    return "".join(parts)


def _accounting(acc: Mapping[str, Any]) -> str:
    rows = [
        [_e(k.replace("_", " ")), _e(fmt(acc[k]))]
        for k in ("intended", "sent", "not_sent", "ok", "refused", "error", "timeout")
        + ("transport", "in_flight", "drained")
    ]
    rows.append(["identity", "holds" if acc["identity_holds"] else '<b class="fail">BROKEN</b>'])
    return html_table(["requests", "count"], rows)


def _phases(phases: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            _e(p["name"]),
            _e(p["role"]),
            _e(fmt(p["start_s"], 1, " s")),
            _e(fmt(p["duration_s"], 1, " s")),
            _e(fmt(p["intended"])),
            _e(fmt(p["sent"])),
            _e(fmt(p["intended_rate_per_s"], 1, "/s")),
            _e(fmt(p["achieved_rate_per_s"], 1, "/s")),
        ]
        for p in phases
    ]
    heads = [
        "phase",
        "role",
        "starts",
        "length",
        "intended",
        "sent",
        "intended rate",
        "achieved rate",
    ]
    return html_table(heads, rows)


def _by_phase(phases: Sequence[Mapping[str, Any]]) -> str:
    """Refused share / p99 of admitted per priority, for requests completed in each phase."""
    return "".join(
        html_table(heads, [[_e(c) for c in row] for row in rows])
        for heads, rows in by_phase_tables(phases)
    )


def _latency(summary: Mapping[str, Any], hists: RunHistograms) -> str:
    heads = ["operation", "kind", "count", *(f"{p:g}%" for p in WRK2_PERCENTILES)]
    rows = []
    for op, prios in summary["latency"].items():
        for prio in sorted(prios, key=int, reverse=True):
            ok = prios[prio].get("ok")
            if ok is None:
                continue
            kinds = percentile_rows(summary, hists.corrected, hists.service, (op, int(prio), "ok"))
            for kind, values in kinds.items():
                cells = [_e(cell(v)) for v in values]
                rows.append([_e(f"{op} p{prio}"), kind, _e(fmt(ok[kind]["count"])), *cells])
    return html_table(heads, rows)


def _refusals(by_priority: Mapping[str, Any]) -> str:
    rows = []
    for op, prios in by_priority.items():
        for prio, r in sorted(prios.items(), key=lambda kv: int(kv[0]), reverse=True):
            rate = None if r["refusal_rate"] is None else 100 * r["refusal_rate"]
            failed = r["error"] + r["timeout"] + r["transport"]
            rows.append(
                [
                    _e(f"{op} p{prio}"),
                    *(_e(fmt(r.get(k, 0))) for k in ("requests", "overloaded", "budget_exceeded")),
                    _e(fmt(r.get("rate_limited", 0))),
                    _e(fmt(rate, 1, " %")),
                    _e(fmt(failed)),
                ]
            )
    heads = ["operation", "requests", "overloaded", "budget", "rate limit", "refused", "failed"]
    return html_table(heads, rows)


def _checks(checks: Sequence[Mapping[str, Any]]) -> str:
    mark = {True: '<span class="pass">PASS</span>', False: '<span class="fail">FAIL</span>'}
    rows = [
        [f"<code>{_e(c['name'])}</code>", mark.get(c["passed"], '<span class="na">n/a</span>')]
        + [_e(c["note"])]
        for c in checks
    ]
    return html_table(["check", "result", "detail"], rows)


def _figure(p: Plot) -> str:
    data = base64.b64encode(p.png).decode("ascii")
    return (
        f'<figure><img alt="{_e(p.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_e(p.title)}.</b> {_e(p.caption)}</figcaption></figure>"
    )


def _storm(summary: Mapping[str, Any]) -> str:
    rec = summary.get("recovery") or {}
    tp = summary["throughput"]
    d = summary["priority_adherence_detail"]
    adherence = fmt(summary["priority_adherence"], 3)
    if d.get("p99_comparisons") is not None:
        adherence += (
            f" ({d['held']} of {d['comparisons']} comparisons held; "
            f"{d['p99_comparisons']} of them of p99 latency)"
        )
    rows = [
        ["priority adherence", _e(adherence)],
        ["completion rate", _e(fmt(_pct(summary["completion_rate"]), 2, " %"))],
        ["throughput (answered)", _e(fmt(tp["answered_per_s"], 1, "/s"))],
        ["throughput (admitted)", _e(fmt(tp["admitted_per_s"], 1, "/s"))],
        ["schedule lag p99", _e(fmt(summary["generator"]["lag_p99_ms"], 3, " ms"))],
    ]
    if rec:
        rows.append(["recovery time", _e(fmt(rec["recovery_time_s"], 1, " s"))])
    return html_table(["figure", "value"], rows)


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def render_html(summary: Mapping[str, Any], hists: RunHistograms, plots: Sequence[Plot]) -> str:
    """The whole page."""
    sc = summary["scenario"]
    title = f"zg-load: {sc['name']}"
    figures = "".join(_figure(p) for p in plots)
    if not any(p.name == "models.png" for p in plots):
        figures += '<p class="muted">Model tiers: the service reported no models in this run.</p>'
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">{_e(sc.get("source") or "")} against {_e(summary["target"]["url"])}, '
        f"started {_e(summary['started_at'])}, zg-load {_e(summary['zg_load_version'])}</p>",
        _banner(summary),
        "<h2>Pictures</h2>",
        figures,
        "<h2>Latency of admitted requests (ms)</h2>",
        '<p class="muted">corrected = from the intended start (what users felt); '
        "service = from the send</p>",
        _latency(summary, hists),
        "<h2>Refusals by priority</h2>",
        _refusals(summary["by_priority"]),
        "<h2>Phases</h2>",
        _phases(summary["phases"]),
        "<h2>By phase: refused / p99 of admitted, per priority</h2>",
        _by_phase(summary["phases"]),
        "<h2>Storm and generator</h2>",
        _storm(summary),
        "<h2>Accounting</h2>",
        _accounting(summary["accounting"]),
    ]
    validation = summary.get("validation")
    if validation and any(validation.get(name) for name in SECTIONS):
        body += [
            "<h2>Validation (every figure measured in this run)</h2>",
            f"<pre>{_e(render_validation(validation))}</pre>",
        ]
    if "checks" in summary:
        body += ["<h2>Checks</h2>", _checks(summary["checks"])]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
