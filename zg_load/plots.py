"""The run's pictures and the comparison overlay, drawn with matplotlib (Agg) as PNG bytes.

Owns how figures look: every axis is labelled with its unit, every line is in a legend,
phases are shaded and named, faults are marked. Each function takes the summary (and
the run's histograms) and returns a finished PNG, or None when the run has nothing to
draw (no models reported, no budget samples); ``write_plots`` saves them in a run
directory. No pyplot, so no global state: figures are built with ``Figure`` directly.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from zg_load.compare import Comparison
from zg_load.hdr import Histogram
from zg_load.report_formats import RunHistograms

PRIORITY_COLORS = {5: "#c0392b", 4: "#e67e22", 3: "#27ae60", 2: "#2980b9", 1: "#8e44ad"}
PHASE_SHADES = ("#f2f2f2", "#e1e8f0")
STATE_COLORS = {
    "up": "#27ae60",
    "available": "#27ae60",
    "ok": "#27ae60",
    "closed": "#27ae60",
    "degraded": "#f39c12",
    "half_open": "#f39c12",
}
DPI = 110


@dataclass(frozen=True)
class Plot:
    """One picture: a file name in the run directory, a title and caption for the report."""

    name: str
    title: str
    caption: str
    png: bytes


def color(priority: int) -> str:
    return PRIORITY_COLORS.get(priority, "#555555")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _new(height_in: float, rows: int = 1, sharey: bool = False) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(10, height_in), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, sharey=sharey, squeeze=False)[:, 0]
    return fig, list(axes)


def shade_phases(ax: Axes, summary: Mapping[str, Any], label: bool = True) -> None:
    """Shade each phase, name it at the top, and mark faults with red dashed lines."""
    box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.5}
    for i, p in enumerate(summary.get("phases", [])):
        start, end = p["start_s"], p["start_s"] + p["duration_s"]
        ax.axvspan(start, end, color=PHASE_SHADES[i % 2], zorder=0, lw=0)
        if label:
            ax.text(
                (start + end) / 2,
                0.98,
                p["name"],
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=8,
                color="#333333",
                bbox=box,
                zorder=5,
            )
    for f in summary.get("timeline", {}).get("faults", []) or []:
        ax.axvline(f["start_s"], color="red", ls="--", lw=1, zorder=3)
        if f.get("end_s") is not None:
            ax.axvspan(f["start_s"], f["end_s"], color="red", alpha=0.07, zorder=0, lw=0)
        if label:
            ax.text(
                f["start_s"],
                0.86,
                f" {f.get('name', 'fault')}",
                transform=ax.get_xaxis_transform(),
                color="red",
                fontsize=8,
                bbox=box,
                zorder=5,
            )


def _legend_right(ax: Axes, **kwargs: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, **kwargs)


def _log_if_wide(ax: Axes, values: Sequence[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def latency_over_time(summary: Mapping[str, Any], hists: RunHistograms) -> bytes | None:
    """p50, p99 and max of admitted requests per interval, one panel per (op, priority);
    an interval without admitted requests is a gap, never a line across it."""
    groups = hists.ok_groups()
    if not groups:
        return None
    fig, axes = _new(1.0 + 1.55 * len(groups), len(groups), sharey=True)
    everything: list[float] = []
    starts = _grid(summary, hists)
    for ax, (op, prio) in zip(axes, groups, strict=True):
        shade_phases(ax, summary, label=ax is axes[0])
        by_start = {round(iv.start_s, 3): iv for iv in hists.intervals.get((op, prio, "ok"), [])}
        ivs = [by_start.get(round(t, 3)) for t, _ in starts]
        mid = [t + length / 2 for t, length in starts]
        for p, style, width in ((50.0, ":", 1.4), (99.0, "-", 2.0), (100.0, "--", 1.0)):
            ys = [math.nan if iv is None else _ms(iv.hist.percentile(p)) for iv in ivs]
            name = {50.0: "p50", 99.0: "p99", 100.0: "max"}[p]
            ax.plot(mid, ys, ls=style, lw=width, color=color(prio), marker=".", ms=3, label=name)
            everything += [y for y in ys if not math.isnan(y)]
        ax.set_ylabel(f"{op} p{prio}\nms", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    _log_if_wide(axes[0], everything)
    if axes[0].get_yscale() == "linear":
        axes[0].set_ylim(bottom=0)
    _legend_right(axes[0], title="per interval")
    axes[-1].set_xlabel("time since start of run (s)")
    fig.suptitle(
        "Latency of admitted requests over time (from the intended start; gaps: none admitted)"
    )
    return _png(fig)


def _grid(summary: Mapping[str, Any], hists: RunHistograms) -> list[tuple[float, float]]:
    """(start_s, length_s) of every interval of the run: the timeline's, else the log's."""
    rows = summary.get("timeline", {}).get("intervals", [])
    if rows:
        return [(r["start_s"], r["end_s"] - r["start_s"]) for r in rows]
    found = {(iv.start_s, iv.length_s) for ivs in hists.intervals.values() for iv in ivs}
    return sorted(found)


def _ms(us: int | None) -> float:
    return math.nan if us is None else us / 1000.0


PCT_TICKS = (1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)
PCT_LABELS = ("0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%")


def _spectrum(hist: Histogram) -> tuple[list[float], list[float]]:
    """(1/(1-p), value ms) at evenly spaced steps of the plotter's axis, up to 1 - 1/count."""
    top = math.log10(max(hist.count, 2))
    xs = list(10 ** np.linspace(0.0, top, 120))
    ps = [100.0 * (1.0 - 1.0 / x) for x in xs]
    return xs, [_ms(hist.percentile(p)) for p in ps]


def _pct_axis(ax: Axes, x_max: float) -> None:
    ax.set_xscale("log")
    x_max = 10.0 ** math.ceil(math.log10(max(x_max, 10.0)) - 1e-9)
    ticks = [t for t in PCT_TICKS if t <= x_max * 1.01]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(PCT_LABELS[: len(ticks)])
    ax.set_xlim(1.0, x_max * 1.05)
    ax.set_xlabel("percentile (HdrHistogram plotter's 1/(1-p) axis)")
    ax.grid(True, which="major", alpha=0.3)


def percentile_distribution(summary: Mapping[str, Any], hists: RunHistograms) -> bytes | None:
    """Corrected latency over the whole percentile range per priority, with service time."""
    groups = hists.ok_groups()
    if not groups:
        return None
    fig, (ax,) = _new(5.2)
    x_max, values = 10.0, list[float]()
    for op, prio in groups:
        key = (op, prio, "ok")
        xs, ys = _spectrum(hists.corrected[key])
        ax.plot(xs, ys, color=color(prio), lw=2, label=f"{op} p{prio}")
        x_max, values = max(x_max, xs[-1]), values + ys
        svc = hists.service.get(key)
        if svc is not None and svc.count:
            sx, sy = _spectrum(svc)
            ax.plot(sx, sy, color=color(prio), lw=1.2, ls="--")
        else:
            px, py = _digest_points(summary, op, prio)
            ax.plot(px, py, ls="none", marker="o", mfc="none", color=color(prio), ms=6)
    _pct_axis(ax, x_max)
    _log_if_wide(ax, [v for v in values if not math.isnan(v)])
    ax.set_ylabel("latency (ms)")
    handles, labels = ax.get_legend_handles_labels()
    kind = "service time (from send)" if hists.service else "service time: p50..p99.9, max"
    svc_style: dict[str, Any] = (
        {"ls": "--"} if hists.service else {"ls": "none", "marker": "o", "mfc": "none"}
    )
    handles += [
        Line2D([], [], color="black", lw=2, label="corrected (from intended start)"),
        Line2D([], [], color="black", label=kind, **svc_style),
    ]
    _legend_right(ax, handles=handles)
    ax.set_title("Latency by percentile of admitted requests: corrected vs service time")
    return _png(fig)


def _digest_points(
    summary: Mapping[str, Any], op: str, prio: int
) -> tuple[list[float], list[float]]:
    svc = summary["latency"].get(op, {}).get(str(prio), {}).get("ok", {}).get("service")
    if not svc or not svc.get("count"):
        return [], []
    at = [(50.0, "p50_ms"), (90.0, "p90_ms"), (99.0, "p99_ms"), (99.9, "p999_ms")]
    pts = [(1.0 / (1.0 - p / 100.0), svc[k]) for p, k in at if svc[k] is not None]
    pts.append((max(float(svc["count"]), 2.0), svc["max_ms"]))
    return [x for x, _ in pts if x <= max(svc["count"], 2)], [
        y for x, y in pts if x <= max(svc["count"], 2)
    ]


def throughput(summary: Mapping[str, Any]) -> bytes | None:
    """Intended vs sent vs answered requests per second, per interval."""
    rows = summary.get("timeline", {}).get("intervals", [])
    if not rows:
        return None
    fig, (ax,) = _new(4.2)
    shade_phases(ax, summary)
    edges = [r["start_s"] for r in rows] + [rows[-1]["end_s"]]

    def rate(field: str) -> list[float]:
        vals = [r[field] / max(r["end_s"] - r["start_s"], 1e-9) for r in rows]
        return vals + vals[-1:]

    ok_rate = [
        (r["completed"] - r["refused"] - r["failed"]) / max(r["end_s"] - r["start_s"], 1e-9)
        for r in rows
    ]
    ax.step(edges, rate("intended"), where="post", color="black", ls="--", lw=1.5, label="intended")
    ax.step(edges, rate("sent"), where="post", color="#2980b9", lw=2, label="sent (achieved)")
    ax.step(edges, rate("completed"), where="post", color="#7f8c8d", lw=1.2, label="answered")
    ax.step(
        edges, ok_rate + ok_rate[-1:], where="post", color="#27ae60", lw=1.2, label="admitted (ok)"
    )
    ax.set_ylabel("requests per second")
    ax.set_xlabel("time since start of run (s)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    _legend_right(ax)
    ax.set_title("Throughput: intended vs achieved")
    return _png(fig)


def refusals(summary: Mapping[str, Any], hists: RunHistograms) -> bytes | None:
    """Refusals per second by priority (stacked) and each priority's refused share."""
    keys = sorted({(op, p) for op, p, o in hists.intervals if o == "refused"}, key=lambda g: -g[1])
    rows = summary.get("timeline", {}).get("intervals", [])
    if not rows:
        return None
    starts = np.asarray([r["start_s"] for r in rows])
    lengths = np.asarray([max(r["end_s"] - r["start_s"], 1e-9) for r in rows])
    fig, (top, bottom) = _new(6.0, 2)
    for ax in (top, bottom):
        shade_phases(ax, summary, label=ax is top)
    stacks, labels, colors = [], [], []
    for op, prio in keys:
        refused = _per_interval(hists, (op, prio), ("refused",), starts)
        allx = _per_interval(hists, (op, prio), None, starts)
        stacks.append(refused / lengths)
        labels.append(f"{op} p{prio}")
        colors.append(color(prio))
        share = np.where(allx > 0, 100.0 * refused / np.maximum(allx, 1), np.nan)
        bottom.plot(starts + lengths / 2, share, color=color(prio), marker=".", label=labels[-1])
    if stacks:
        # Steps over each interval (as the throughput plot), so refusals never appear to
        # start before the interval that had them.
        edges = np.append(starts, starts[-1] + lengths[-1])
        below = np.zeros(len(edges))
        for values, label, c in zip(stacks, labels, colors, strict=True):
            above = below + np.append(values, values[-1])
            top.fill_between(edges, below, above, step="post", color=c, alpha=0.85, label=label)
            below = above
        _legend_right(top)
        _legend_right(bottom)
    else:
        top.text(0.5, 0.5, "no refusals in this run", transform=top.transAxes, ha="center")
    top.set_ylabel("refused per second")
    bottom.set_ylabel("refused share of\nthe priority's answers (%)")
    bottom.set_ylim(-2, 102)
    bottom.set_xlabel("time since start of run (s)")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    top.set_title("Refusals by priority over time")
    return _png(fig)


def _per_interval(
    hists: RunHistograms, group: tuple[str, int], outcomes: tuple[str, ...] | None, starts: Any
) -> np.ndarray[Any, Any]:
    out = np.zeros(len(starts))
    for (op, prio, outcome), ivs in hists.intervals.items():
        if (op, prio) != group or (outcomes is not None and outcome not in outcomes):
            continue
        for iv in ivs:
            i = int(np.argmin(np.abs(starts - iv.start_s)))
            out[i] += iv.hist.count
    return out


def budget(summary: Mapping[str, Any]) -> bytes | None:
    """Spent and reserved budget over time against the limit."""
    status = [
        s for s in summary.get("timeline", {}).get("status", []) if s.get("spent_usd") is not None
    ]
    if not status or not any(s["spent_usd"] or s.get("reserved_usd") for s in status):
        return None  # nothing was spent or reserved: no picture to draw
    t = [s["t_s"] for s in status]
    spent = [s["spent_usd"] or 0.0 for s in status]
    held = [sp + (s.get("reserved_usd") or 0.0) for sp, s in zip(spent, status, strict=True)]
    limits = [s.get("max_usd") for s in status]
    fig, (ax,) = _new(4.0)
    shade_phases(ax, summary)
    ax.fill_between(t, spent, held, color="#f5b041", alpha=0.5, step="post", label="reserved")
    ax.step(t, spent, where="post", color="#1f618d", lw=2, label="spent")
    top = max(held) if held else 0.0
    known = [m for m in limits if m is not None]
    if known and max(known) <= 5 * max(top, 1e-9):
        ax.step(
            t,
            [math.nan if m is None else m for m in limits],
            where="post",
            color="red",
            lw=1.5,
            ls="--",
            label="limit (max_usd)",
        )
    title = "Budget: spend vs limit"
    if known and max(known) > 5 * max(top, 1e-9):
        title += f" (limit ${max(known):,.0f} is far above the spend: not drawn)"
    ax.set_ylabel("US dollars")
    ax.set_xlabel("time since start of run (s)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    _legend_right(ax)
    ax.set_title(title)
    return _png(fig)


def models(summary: Mapping[str, Any]) -> bytes | None:
    """Tasks answered per model over time (when tasks ran), and each model's state over
    time (bands coloured by state), labelled with its tier. None when there is nothing to
    show: no tasks, and every model stayed closed."""
    timeline = summary.get("timeline", {})
    status, usage = timeline.get("status", []), timeline.get("model_usage") or []
    names: dict[str, str] = {}
    for s in status:
        for m in s.get("models") or []:
            names.setdefault(str(m.get("name")), str(m.get("tier", "?")))
    states = {str(m.get("state")) for s in status for m in s.get("models") or []}
    if not names or (not usage and states <= {"closed"}):
        return None
    order = sorted(names, key=lambda n: (names[n], n))
    if usage:
        fig, (top, ax) = _new(3.4 + 0.45 * len(order), rows=2)
        _usage_panel(top, summary, usage, order)
    else:
        fig, (ax,) = _new(1.2 + 0.45 * len(order))
    shade_phases(ax, summary)
    seen: dict[str, str] = {}
    for i, s in enumerate(status):
        end = status[i + 1]["t_s"] if i + 1 < len(status) else s["t_s"] + 1.0
        for m in s.get("models") or []:
            state = str(m.get("state", "unknown"))
            c = STATE_COLORS.get(
                state, "#c0392b" if state in ("down", "unavailable", "open") else "#95a5a6"
            )
            seen[state] = c
            ax.broken_barh(
                [(s["t_s"], end - s["t_s"])], (order.index(str(m.get("name"))) - 0.35, 0.7), color=c
            )
    ax.set_yticks(range(len(order)), [f"{n} ({names[n]})" for n in order])
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_xlabel("time since start of run (s)")
    _legend_right(ax, handles=[Patch(color=c, label=s) for s, c in seen.items()], title="state")
    ax.set_title("Models by tier: breaker state over time")
    return _png(fig)


def _usage_panel(
    ax: Axes, summary: Mapping[str, Any], usage: list[dict[str, Any]], order: list[str]
) -> None:
    shade_phases(ax, summary)
    models_seen = order + sorted({m for row in usage for m in row["models"]} - set(order))
    bottom = [0.0] * len(usage)
    for name in models_seen:
        rates = [
            row["models"].get(name, 0) / max(row["end_s"] - row["start_s"], 1e-9) for row in usage
        ]
        if not any(rates):
            continue
        starts = [row["start_s"] for row in usage]
        widths = [row["end_s"] - row["start_s"] for row in usage]
        ax.bar(starts, rates, widths, bottom=bottom, align="edge", label=name, alpha=0.85)
        bottom = [b + r for b, r in zip(bottom, rates, strict=True)]
    ax.set_ylabel("tasks answered\nper second")
    ax.set_title("Model tier usage over time (which model answered each task)")
    _legend_right(ax, title="model")


def run_plots(summary: Mapping[str, Any], hists: RunHistograms) -> list[Plot]:
    """Every picture the run has data for, in report order."""
    specs = [
        (
            "latency_over_time.png",
            "Latency over time",
            "p50 (dotted), p99 (solid) and max (dashed) of admitted requests per interval, measured from the intended start; shaded bands are phases.",
            latency_over_time(summary, hists),
        ),
        (
            "latency_percentiles.png",
            "Latency by percentile",
            "The whole corrected distribution on HdrHistogram's 1/(1-p) axis; service time (from the send) beside it. The gap is queueing the user felt.",
            percentile_distribution(summary, hists),
        ),
        (
            "throughput.png",
            "Throughput",
            "Requests per second per interval: intended by the schedule, sent, answered, admitted.",
            throughput(summary),
        ),
        (
            "refusals.png",
            "Refusals by priority",
            "Designed refusals (shedding, budget, rate limit) per second, stacked by priority, and the share of each priority's answers that were refusals.",
            refusals(summary, hists),
        ),
        (
            "budget.png",
            "Budget",
            "The service's spent and reserved budget against its limit, from status samples.",
            budget(summary),
        ),
        (
            "models.png",
            "Model tiers",
            "Each model's state over time, from status samples.",
            models(summary),
        ),
    ]
    return [
        Plot(name, title, caption, png) for name, title, caption, png in specs if png is not None
    ]


def write_plots(directory: Path, plots: Sequence[Plot]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for p in plots:
        path = directory / p.name
        path.write_bytes(p.png)
        paths.append(path)
    return paths


def comparison_plot(
    cmp: Comparison,
    base: Mapping[tuple[str, int], Histogram],
    cand: Mapping[tuple[str, int], Histogram],
) -> bytes:
    """Left: percentile curves, base dashed and candidate solid. Right: the change at each
    compared percentile with its confidence interval, and the threshold band."""
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.25, 1))
    x_max, values = 10.0, list[float]()
    groups = sorted(set(base) | set(cand), key=lambda g: (g[0], -g[1]))
    for op, prio in groups:
        for side, style in ((base, "--"), (cand, "-")):
            h = side.get((op, prio))
            if h is None or not h.count:
                continue
            xs, ys = _spectrum(h)
            left.plot(
                xs,
                ys,
                ls=style,
                color=color(prio),
                lw=1.8,
                label=f"{op} p{prio}" if side is cand else None,
            )
            x_max, values = max(x_max, xs[-1]), values + ys
    _pct_axis(left, x_max)
    _log_if_wide(left, [v for v in values if not math.isnan(v)])
    left.set_ylabel("latency (ms)")
    handles, _ = left.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="black", lw=1.8, label="candidate"),
        Line2D([], [], color="black", lw=1.8, ls="--", label="base"),
    ]
    left.legend(handles=handles, loc="best", fontsize=8)
    left.set_title("Latency by percentile: base vs candidate")
    _change_panel(right, cmp, groups)
    fig.suptitle(f"zg-load compare: {cmp.verdict}")
    return _png(fig)


def _change_panel(ax: Axes, cmp: Comparison, groups: Sequence[tuple[str, int]]) -> None:
    pcts = list(cmp.thresholds.percentiles)
    width = 0.8 / max(len(groups), 1)
    rel = 100 * cmp.thresholds.relative
    ax.axhspan(-rel, rel, color="#dddddd", zorder=0, label=f"no-change band (±{rel:g} %)")
    ax.axhline(0, color="black", lw=0.8)
    drawn: set[float] = set()
    for gi, (op, prio) in enumerate(groups):
        for c in cmp.changes:
            if (c.op, c.priority) != (op, prio) or c.ratio is None or c.ratio_ci is None:
                continue
            x = pcts.index(c.percentile) + (gi - (len(groups) - 1) / 2) * width
            y = 100 * (c.ratio - 1)
            lo, hi = 100 * (c.ratio_ci[0] - 1), 100 * (c.ratio_ci[1] - 1)
            marker = {"regression": "^", "improvement": "v"}.get(c.verdict, "o")
            drawn.add(c.percentile)
            ax.errorbar(
                x,
                y,
                yerr=[[max(y - lo, 0)], [max(hi - y, 0)]],
                fmt=marker,
                color=color(prio),
                capsize=3,
                ms=7,
            )
    for i, p in enumerate(pcts):
        if p not in drawn:
            ax.text(
                i,
                0.5,
                "n/a: too few\nsamples",
                transform=ax.get_xaxis_transform(),
                ha="center",
                fontsize=8,
                color="#777777",
            )
    ax.set_xticks(range(len(pcts)), [f"p{p:g}" for p in pcts])
    ax.set_xlim(-0.6, len(pcts) - 0.4)
    ax.set_ylabel("change, candidate vs base (%)")
    ax.set_xlabel("percentile")
    ax.grid(True, axis="y", alpha=0.3)
    handles = [Patch(color="#dddddd", label=f"no-change band (±{rel:g} %)")]
    handles += [Patch(color=color(p), label=f"{o} p{p}") for o, p in groups]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title=f"{100 * cmp.thresholds.confidence:g} % interval\n▲ regression ▼ improvement",
        title_fontsize=8,
    )
    low, high = ax.get_ylim()
    if high > 100 or low < -100:  # keep the band readable next to huge changes
        ax.set_yscale("symlog", linthresh=max(2 * rel, 1.0))
        ax.set_ylabel("change, candidate vs base (%, symmetric log scale)")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}"))
    ax.set_title("Change with confidence interval")
