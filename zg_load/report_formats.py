"""The run report and the comparison as JSON and Markdown, and the histograms they read.

Pure: a summary dict and the interval log's text in, strings out; no files, no clock.
``run_histograms`` is the one place that turns a run directory's contents into
histograms: per (op, priority, outcome) the interval histograms (times as offsets from
the run start), their merge, and service-time histograms when the summary carries them
(``summary["histograms"][tag]["service"]``, base64); without them the service figures
come from the summary's digests. Empty values are null in JSON and "n/a" in Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from zg_load.compare import Change, Comparison
from zg_load.hdr import Histogram
from zg_load.hlog import Key, key_for, parse_log
from zg_load.render import (
    WRK2_PERCENTILES,
    by_phase_tables,
    cell,
    fmt,
    generator_lines,
    percentile_rows,
    storm_lines,
)
from zg_load.validation import SECTIONS
from zg_load.validation_render import render_validation


@dataclass(frozen=True)
class Interval:
    """One interval of one tag: ``start_s`` is the offset from the run start."""

    start_s: float
    length_s: float
    hist: Histogram


@dataclass(frozen=True)
class RunHistograms:
    intervals: dict[Key, list[Interval]] = field(default_factory=dict)
    corrected: dict[Key, Histogram] = field(default_factory=dict)
    service: dict[Key, Histogram] = field(default_factory=dict)

    def ok_groups(self) -> list[tuple[str, int]]:
        """(op, priority) with admitted requests, by op then highest priority first."""
        groups = {(op, prio) for op, prio, outcome in self.corrected if outcome == "ok"}
        return sorted(groups, key=lambda g: (g[0], -g[1]))


def run_histograms(summary: Mapping[str, Any], hlog_text: str | None) -> RunHistograms:
    """Histograms from the interval log (corrected) and the summary (service, when present)."""
    out = RunHistograms()
    start_s = float(summary.get("start_epoch_s") or 0.0)
    for entry in parse_log(hlog_text or ""):
        if entry.tag is None:
            continue
        key = key_for(entry.tag)
        offset_s = round(entry.start_s - start_s, 3)
        out.intervals.setdefault(key, []).append(Interval(offset_s, entry.length_s, entry.hist))
        out.corrected.setdefault(key, Histogram()).merge(entry.hist)
    for tag, kinds in (summary.get("histograms") or {}).items():
        key = key_for(tag)
        if "service" in kinds:
            out.service[key] = Histogram.decode(kinds["service"])
        if key not in out.corrected and "corrected" in kinds:
            out.corrected[key] = Histogram.decode(kinds["corrected"])
    return out


# -- the run report ----------------------------------------------------------------------


def render_json(summary: Mapping[str, Any], hists: RunHistograms | None = None) -> str:
    """The summary, plus wrk2's percentiles (ms) per op, priority and kind when histograms exist."""
    out = dict(summary)
    if hists is not None and hists.corrected:
        dist: dict[str, dict[str, dict[str, Any]]] = {}
        for op, prio in hists.ok_groups():
            rows = percentile_rows(summary, hists.corrected, hists.service, (op, prio, "ok"))
            dist.setdefault(op, {})[str(prio)] = {
                kind: {
                    f"{p:g}": v
                    for p, v in zip(WRK2_PERCENTILES, values, strict=True)
                    if not (isinstance(v, float) and math.isnan(v))
                }
                for kind, values in rows.items()
            }
        out["distribution_ms"] = dist
    return orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """A GitHub Markdown table; the first ``left`` columns left-aligned, the others right."""
    align = [":--" if i < left else "--:" for i in range(len(headers))]
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(str(c) for c in r) + " |" for r in rows),
    ]


def render_markdown(summary: Mapping[str, Any], hists: RunHistograms | None = None) -> str:
    """The run report as Markdown: accounting, phases (and by phase), latency, refusals,
    the storm figures, the generator, validation and checks."""
    sc = summary["scenario"]
    passed = summary.get("passed")
    verdict = {True: "all checks passed", False: "**checks failed**", None: "not checked"}[passed]
    lines = [f"## zg-load: {sc['name']} ({verdict})", ""]
    if summary.get("partial"):
        lines += [f"> Partial run: stopped early ({summary['stop_reason']}).", ""]
    acc = summary["accounting"]
    lines += [
        f"Target {summary['target']['url']}, started {summary['started_at']}, "
        f"zg-load {summary['zg_load_version']}.",
        "",
        f"Accounting: intended {fmt(acc['intended'])} = sent {fmt(acc['sent'])} + not sent "
        f"{fmt(acc['not_sent'])}; sent = ok {fmt(acc['ok'])} + refused {fmt(acc['refused'])} + "
        f"failed {fmt(acc['error'] + acc['timeout'] + acc['transport'])} + in flight "
        f"{fmt(acc['in_flight'])} (identity {'holds' if acc['identity_holds'] else 'BROKEN'}).",
        "",
        "### Phases",
        "",
        *md_table(
            ["phase", "role", "length", "intended rate", "achieved rate"],
            [
                [
                    p["name"],
                    p["role"],
                    fmt(p["duration_s"], 1, " s"),
                    fmt(p["intended_rate_per_s"], 1, "/s"),
                    fmt(p["achieved_rate_per_s"], 1, "/s"),
                ]
                for p in summary["phases"]
            ],
            left=2,
        ),
        "",
        "### By phase: refused / p99 of admitted, per priority",
        "",
        "Requests that completed in the phase.",
        "",
        *(
            line
            for heads, rows in by_phase_tables(summary["phases"])
            for line in md_table(heads, rows)
        ),
        "",
        "### Latency of admitted requests (ms, from the intended start)",
        "",
        *_md_latency(summary, hists),
        "",
        "### Refusals by priority over the whole run",
        "",
        *_md_refusals(summary["by_priority"]),
    ]
    storm = storm_lines(summary)
    lines += ["", f"### {storm[0]}", "", "```", *(ln.strip() for ln in storm[1:]), "```"]
    generator = generator_lines(summary["generator"])
    lines += ["", "### Generator", "", "```", *(ln.strip() for ln in generator[1:]), "```"]
    validation = summary.get("validation")
    if validation and any(validation.get(name) for name in SECTIONS):
        body = render_validation(validation).rstrip("\n").split("\n")
        lines += ["", "### Validation (every figure measured in this run)", "", "```", *body, "```"]
    if "checks" in summary:
        lines += ["", "### Checks", "", *_md_checks(summary["checks"])]
    return "\n".join(lines) + "\n"


def _md_latency(summary: Mapping[str, Any], hists: RunHistograms | None) -> list[str]:
    heads = ["operation", "kind", "count", *(f"{p:g}%" for p in WRK2_PERCENTILES)]
    rows = []
    corrected = hists.corrected if hists else {}
    service = hists.service if hists else {}
    for op, prios in summary["latency"].items():
        for prio in sorted(prios, key=int, reverse=True):
            key = (op, int(prio), "ok")
            ok = prios[prio].get("ok")
            if ok is None:
                continue
            for kind, values in percentile_rows(summary, corrected, service, key).items():
                count = ok[kind]["count"]
                rows.append([f"{op} p{prio}", kind, fmt(count), *(cell(v) for v in values)])
    return md_table(heads, rows)


def _md_refusals(by_priority: Mapping[str, Any]) -> list[str]:
    rows = []
    for op, prios in by_priority.items():
        for prio, r in sorted(prios.items(), key=lambda kv: int(kv[0]), reverse=True):
            rate = None if r["refusal_rate"] is None else 100 * r["refusal_rate"]
            rows.append(
                [
                    f"{op} p{prio}",
                    fmt(r["requests"]),
                    fmt(r.get("overloaded", 0)),
                    fmt(r.get("budget_exceeded", 0)),
                    fmt(r.get("rate_limited", 0)),
                    fmt(rate, 1, " %"),
                ]
            )
    return md_table(
        ["operation", "requests", "overloaded", "budget", "rate limit", "refused"], rows
    )


def _md_checks(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    mark = {True: "pass", False: "**FAIL**", None: "n/a"}
    rows = [[f"`{c['name']}`", mark[c["passed"]], str(c["note"])] for c in checks]
    return md_table(["check", "result", "detail"], rows, left=3)


# -- the comparison ----------------------------------------------------------------------

VERDICT_MARK = {"regression": "🔴", "improvement": "🟢", "no change": "⚪", "n/a": "·"}


def _ci(ci: tuple[float, float] | None, digits: int = 2, suffix: str = "") -> str:
    if ci is None:
        return "n/a"
    return f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]{suffix}"


def _rel(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{100 * (ratio - 1):+.1f} %"


def _rel_ci(ci: tuple[float, float] | None) -> str:
    if ci is None:
        return "n/a"
    return f"[{100 * (ci[0] - 1):+.1f}, {100 * (ci[1] - 1):+.1f}] %"


def comparison_rows(cmp: Comparison, markdown: bool = False) -> list[list[str]]:
    rows = []
    for c in cmp.changes:
        verdict = f"{VERDICT_MARK[c.verdict]} {c.verdict}" if markdown else c.verdict.upper()
        rows.append(
            [
                f"{c.op} p{c.priority}",
                f"p{c.percentile:g}",
                fmt(c.base_ms),
                fmt(c.cand_ms),
                "n/a" if c.diff_ms is None else f"{c.diff_ms:+.2f}",
                _ci(c.diff_ci_ms),
                _rel(c.ratio),
                _rel_ci(c.ratio_ci),
                verdict,
                c.note,
            ]
        )
    return rows


COMPARISON_HEADS = [
    "operation",
    "pct",
    "base ms",
    "cand ms",
    "change ms",
    "CI ms",
    "change",
    "CI",
    "verdict",
    "note",
]


def _rule(cmp: Comparison) -> str:
    th = cmp.thresholds
    return (
        f"regression when the {100 * th.confidence:g} % interval of the change lies wholly above "
        f"+{100 * th.relative:g} % and +{th.absolute_ms:g} ms (improvement: below the negatives); "
        f"bootstrap over interval histograms, {th.resamples} resamples, seed {th.seed}; "
        f"base {cmp.base_runs} run(s), candidate {cmp.cand_runs} run(s)"
    )


def render_comparison_text(cmp: Comparison) -> str:
    from zg_load.render import table

    lines = [f"Verdict: {cmp.verdict.upper()}", f"  rule: {_rule(cmp)}", ""]
    lines += table(COMPARISON_HEADS, comparison_rows(cmp))
    return "\n".join(lines) + "\n"


def render_comparison_markdown(cmp: Comparison, plot_name: str | None = None) -> str:
    """A pull-request comment: the verdict first, then every comparison."""
    regs = cmp.regressions
    head = f"### zg-load compare: {VERDICT_MARK[cmp.verdict]} {cmp.verdict}"
    lines = [head, ""]
    if regs:
        slower = ", ".join(f"{c.op} p{c.priority} at p{c.percentile:g}" for c in regs)
        lines += [f"Slower: {slower}.", ""]
    lines += md_table(COMPARISON_HEADS, comparison_rows(cmp, markdown=True))
    lines += ["", f"<sub>{_rule(cmp)}</sub>"]
    if plot_name:
        lines += ["", f"![latency percentiles, base vs candidate]({plot_name})"]
    return "\n".join(lines) + "\n"


def change_json(c: Change) -> dict[str, Any]:
    return {
        "op": c.op,
        "priority": c.priority,
        "percentile": c.percentile,
        "base_count": c.base_count,
        "cand_count": c.cand_count,
        "base_ms": c.base_ms,
        "cand_ms": c.cand_ms,
        "diff_ms": c.diff_ms,
        "diff_ci_ms": None if c.diff_ci_ms is None else list(c.diff_ci_ms),
        "ratio": c.ratio,
        "ratio_ci": None if c.ratio_ci is None else list(c.ratio_ci),
        "threshold_relative": c.relative,
        "threshold_ms": c.absolute_ms,
        "verdict": c.verdict,
        "note": c.note,
    }


def render_comparison_json(cmp: Comparison) -> str:
    th = cmp.thresholds
    doc = {
        "verdict": cmp.verdict,
        "rule": _rule(cmp),
        "thresholds": {
            "relative": th.relative,
            "absolute_ms": th.absolute_ms,
            "confidence": th.confidence,
            "percentiles": list(th.percentiles),
            "resamples": th.resamples,
            "seed": th.seed,
        },
        "base_runs": cmp.base_runs,
        "cand_runs": cmp.cand_runs,
        "changes": [change_json(c) for c in cmp.changes],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
