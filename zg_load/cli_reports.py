"""``zg-load report`` and ``zg-load compare``: commands over run directories alone.

Shell: reads ``summary.json`` and ``latency.hlog`` of run directories (from this machine
or another), writes reports, plots and .hgrm files, and exits 0 / 1 (compare found a
regression) / 2 (usage or unreadable input). ``write_run_reports`` is what a run calls
at its end to leave report.txt, report.html and the PNGs in its directory.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from zg_load.artifacts import read_summary, write_whole
from zg_load.compare import (
    Group,
    ShareCounts,
    Thresholds,
    compare_groups,
    compare_shares,
    parse_thresholds,
    render_shares,
)
from zg_load.hdr import Histogram
from zg_load.hlog import format_hgrm, tag_for
from zg_load.htmlreport import render_html
from zg_load.plots import comparison_plot, run_plots, write_plots
from zg_load.render import render_text
from zg_load.report_formats import (
    RunHistograms,
    render_comparison_json,
    render_comparison_markdown,
    render_comparison_text,
    render_json,
    render_markdown,
    run_histograms,
)

PLOTS_DIR = "plots"

RUN_KEYS = ("scenario", "accounting", "phases", "latency", "by_priority")


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"zg-load: {message}", err=True)
    sys.exit(code)


def load_run(run_dir: Path) -> tuple[dict[str, Any], RunHistograms]:
    """The summary and histograms of a run directory; ValueError/OSError when unreadable."""
    summary = read_summary(run_dir)
    missing = [k for k in RUN_KEYS if k not in summary]
    if missing:
        raise ValueError(f"not a zg-load run (summary.json has no {', '.join(missing)})")
    hlog = run_dir / "latency.hlog"
    text = hlog.read_text(encoding="ascii") if hlog.exists() else None
    return summary, run_histograms(summary, text)


def _load_or_fail(run_dir: Path) -> tuple[dict[str, Any], RunHistograms]:
    try:
        return load_run(run_dir)
    except (OSError, ValueError, orjson.JSONDecodeError) as exc:
        _fail(f"cannot read run directory {run_dir}: {exc}")


def write_html(run_dir: Path, summary: dict[str, Any], hists: RunHistograms, out: Path) -> Path:
    """report.html (plots embedded) at ``out``, and each plot as a PNG beside it."""
    plots = run_plots(summary, hists)
    write_plots(out.parent / PLOTS_DIR, plots)
    write_whole(out, render_html(summary, hists, plots).encode("utf-8"))
    return out


def write_run_reports(run_dir: Path, summary: dict[str, Any]) -> str:
    """At the end of a run: report.txt, report.html and plots/*.png; returns the text report.

    A failure to draw never loses the run: the text report is written first, and a
    plotting error is reported on stderr instead of raised.
    """
    hlog = run_dir / "latency.hlog"
    hists = run_histograms(summary, hlog.read_text(encoding="ascii") if hlog.exists() else None)
    text = render_text(summary, hists)
    write_whole(run_dir / "report.txt", text.encode())
    try:
        write_html(run_dir, summary, hists, run_dir / "report.html")
    except Exception as exc:  # the measurements are safe on disk; say what went wrong
        click.echo(f"zg-load: report.html not written: {exc!r}", err=True)
    return text


def write_hgrm(hists: RunHistograms, directory: Path) -> list[Path]:
    """One .hgrm per tag and kind (merged over the run), for HdrHistogram's plotter."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, source in (("corrected", hists.corrected), ("service", hists.service)):
        for key, hist in sorted(source.items()):
            path = directory / f"{tag_for(key).replace('/', '_')}.{kind}.hgrm"
            path.write_text(format_hgrm(hist), encoding="ascii")
            paths.append(path)
    return paths


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "html"]),
    default="text",
    show_default=True,
    help="html writes RUN_DIR/report.html (and plots/*.png) unless --out is given.",
)
@click.option("--spectrum", is_flag=True, help="Add the full HDR percentile spectrum (text).")
@click.option(
    "--hgrm", is_flag=True, help="Also write one .hgrm per tag, for HdrHistogram's plotter."
)
@click.option(
    "--hgrm-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --hgrm writes (default: the run directory).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout."
)
def report(
    run_dir: Path, fmt: str, spectrum: bool, hgrm: bool, hgrm_dir: Path | None, out: Path | None
) -> None:
    """Re-render the report of a run directory, from its files alone.

    \b
    Examples:
      zg-load report results/high_priority_storm-20261203-101500
      zg-load report results/storm-1 --format markdown > report.md
      zg-load report results/storm-1 --format html        # rewrites report.html
      zg-load report results/storm-1 --spectrum --hgrm    # + .hgrm files for the plotter
    """
    summary, hists = _load_or_fail(run_dir)
    if hgrm or hgrm_dir:
        for path in write_hgrm(hists, hgrm_dir or run_dir):
            click.echo(f"wrote {path}", err=True)
    if fmt == "html":
        path = write_html(run_dir, summary, hists, out or run_dir / "report.html")
        click.echo(str(path))
        return
    text = {
        "text": lambda: render_text(summary, hists, spectrum=spectrum),
        "json": lambda: render_json(summary, hists),
        "markdown": lambda: render_markdown(summary, hists),
    }[fmt]()
    if out is None:
        click.echo(text, nl=False)
    else:
        write_whole(out, text.encode("utf-8"))


def same_scenario(base: Sequence[Path], cand: Sequence[Path]) -> None:
    """Refuse to compare runs of different scenarios; say which runs are partial."""
    names: dict[Path, str] = {}
    for path in [*base, *cand]:
        summary, _ = _load_or_fail(path)
        names[path] = str(summary["scenario"]["name"])
        if summary.get("partial"):
            click.echo(
                f"zg-load: note: {path} is a partial run ({summary.get('stop_reason')})", err=True
            )
    found = sorted(set(names.values()))
    if len(found) > 1:
        by_side = [sorted({names[p] for p in side}) for side in (base, cand)]
        _fail(
            f"these runs are of different scenarios (base: {', '.join(by_side[0])}; candidate: "
            f"{', '.join(by_side[1])}); compare runs of one scenario"
        )


def run_dirs(path: Path) -> list[Path]:
    """A run directory, or every run directory directly inside ``path`` (repeated runs)."""
    if (path / "summary.json").is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / "summary.json").is_file())
    if not found:
        _fail(f"{path} holds no summary.json, nor run directories that do")
    return found


def _phase_windows(summary: dict[str, Any], names: Sequence[str]) -> list[tuple[float, float]]:
    phases = {p["name"]: (p["start_s"], p["start_s"] + p["duration_s"]) for p in summary["phases"]}
    missing = [n for n in names if n not in phases]
    if missing:
        _fail(
            f"no phase {', '.join(missing)} in {summary['scenario']['name']}; has {', '.join(phases)}"
        )
    return [phases[n] for n in names]


def side_groups(
    paths: Sequence[Path], phases: Sequence[str]
) -> tuple[dict[Group, list[list[Histogram]]], dict[Group, Histogram]]:
    """Per (op, priority): each run's interval histograms of admitted requests, and their merge."""
    groups: dict[Group, list[list[Histogram]]] = {}
    merged: dict[Group, Histogram] = {}
    for path in paths:
        summary, hists = _load_or_fail(path)
        windows = _phase_windows(summary, phases) if phases else None
        for (op, prio, outcome), ivs in hists.intervals.items():
            if outcome != "ok":
                continue
            chosen = [
                iv.hist
                for iv in ivs
                if windows is None or any(a <= iv.start_s < b for a, b in windows)
            ]
            groups.setdefault((op, prio), []).append(chosen)
            for h in chosen:
                merged.setdefault((op, prio), Histogram()).merge(h)
    return groups, merged


@click.command()
@click.argument("base", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("cand", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threshold-pct", type=float, help="Relative change that matters, in % [10].")
@click.option("--threshold-ms", type=float, help="Absolute change that matters, in ms [1].")
@click.option(
    "--threshold-refused",
    "refused_points",
    type=float,
    default=5.0,
    show_default=True,
    help="Rise in a priority's refused or failed share, in percentage points, that is a "
    "regression (also needs 3 standard errors).",
)
@click.option("--confidence", type=float, help="Confidence of the interval [0.95].")
@click.option(
    "--percentiles", metavar="LIST", help="Comma-separated, e.g. 50,90,99,99.9 (the default)."
)
@click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML with the same keys and [[rules]] per op/priority/percentile; flags override it.",
)
@click.option(
    "--phase", "phases", multiple=True, help="Compare only intervals of this phase (repeatable)."
)
@click.option("--resamples", type=int, help="Bootstrap resamples [1000].")
@click.option("--seed", type=int, help="Bootstrap seed [0]; the same seed gives the same result.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "--markdown",
    "md_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PR comment (Markdown) here.",
)
@click.option(
    "--plot",
    "plot_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the overlay plot (PNG) here.",
)
def compare(
    base: Path,
    cand: Path,
    threshold_pct: float | None,
    threshold_ms: float | None,
    refused_points: float,
    confidence: float | None,
    percentiles: str | None,
    thresholds_file: Path | None,
    phases: tuple[str, ...],
    resamples: int | None,
    seed: int | None,
    fmt: str,
    md_out: Path | None,
    plot_out: Path | None,
) -> None:
    """Did CAND get slower than BASE, for whom, and how sure are we?

    BASE and CAND are each a run directory, or a directory of run directories (repeated
    runs of one build). For each operation, priority and percentile of admitted requests,
    the change comes with a bootstrap confidence interval: the interval histograms of
    each side (all intervals of the run, or of --phase) are resampled with replacement
    and merged; with several runs per side, runs are resampled first.

    \b
    The verdict, per percentile:
      regression   the whole interval is above +threshold-pct AND above +threshold-ms
      improvement  the whole interval is below -threshold-pct AND below -threshold-ms
      no change    otherwise (a change inside HDR precision and the noise)
      n/a          too few samples to estimate the percentile (never gates)
    Refused and failed shares of all requests are compared too: a candidate that answers
    faster by shedding more is a regression when a share rises by --threshold-refused
    points (and 3 standard errors).
    Exit code 1 when any percentile or share regressed, 0 otherwise, 2 on bad input.

    \b
    Examples:
      zg-load compare results/v1.4-storm results/v1.5-storm
      zg-load compare baseline-runs/ candidate-runs/ --threshold-pct 5 --threshold-ms 2
      zg-load compare base cand --phase storm --markdown comment.md --plot compare.png
    """
    th = _thresholds(
        thresholds_file, threshold_pct, threshold_ms, confidence, percentiles, resamples, seed
    )
    base_paths, cand_paths = run_dirs(base), run_dirs(cand)
    same_scenario(base_paths, cand_paths)
    if not phases and fmt != "json":
        _note_mixed_phases(base_paths[0])
    base_groups, base_merged = side_groups(base_paths, phases)
    cand_groups, cand_merged = side_groups(cand_paths, phases)
    cmp = compare_groups(base_groups, cand_groups, th, len(base_paths), len(cand_paths))
    shares = compare_shares(
        side_shares(base_paths, phases), side_shares(cand_paths, phases), refused_points
    )
    render = {"text": render_comparison_text, "json": render_comparison_json}
    if fmt == "markdown":
        click.echo(render_comparison_markdown(cmp), nl=False)
    else:
        click.echo(render[fmt](cmp), nl=False)
    if fmt != "json":
        click.echo("\n" + render_shares(shares), nl=False)
    if plot_out is not None:
        write_whole(plot_out, comparison_plot(cmp, base_merged, cand_merged))
    if md_out is not None:
        name = plot_out.name if plot_out is not None else None
        text = render_comparison_markdown(cmp, name) + "\n```\n" + render_shares(shares) + "```\n"
        write_whole(md_out, text.encode("utf-8"))
    worse = [s for s in shares if s.worse]
    if worse:
        names = ", ".join(f"{s.op} p{s.priority} {s.kind}" for s in worse)
        click.echo(f"Verdict: REGRESSION in refused/failed shares ({names})")
    sys.exit(1 if cmp.regressions or worse else 0)


def _note_mixed_phases(path: Path) -> None:
    """Intervals of phases under different loads resampled together give wide intervals
    (a calm second and a storm second are not two draws of one latency): say which to pick."""
    summary = read_summary(path)  # readable: same_scenario has read it
    roles = {p["role"] for p in summary["phases"]}
    if len(summary["phases"]) > 1 and len(roles) > 1:
        names = ", ".join(p["name"] for p in summary["phases"])
        first = next((p["name"] for p in summary["phases"] if p["role"] == "storm"), None)
        first = first or summary["phases"][-1]["name"]
        click.echo(
            f"zg-load: note: the intervals of every phase ({names}) are compared together; "
            f"under loads this different the confidence intervals are wide. "
            f"--phase {first} compares one phase.",
            err=True,
        )


def side_shares(paths: Sequence[Path], phases: Sequence[str]) -> ShareCounts:
    """(requests, refused, failed) per (op, priority), summed over a side's runs."""
    out: dict[Group, tuple[int, int, int]] = {}
    for path in paths:
        summary, _ = _load_or_fail(path)
        tables = (
            [p["by_priority"] for p in summary["phases"] if p["name"] in phases]
            if phases
            else [summary["by_priority"]]
        )
        for table in tables:
            for op, rows in table.items():
                for prio, r in rows.items():
                    failed = r.get(
                        "failed", r.get("error", 0) + r.get("timeout", 0) + r.get("transport", 0)
                    )
                    n, x, y = out.get((op, int(prio)), (0, 0, 0))
                    out[(op, int(prio))] = (n + r["requests"], x + r["refused"], y + failed)
    return out


def _thresholds(
    path: Path | None,
    pct: float | None,
    ms: float | None,
    confidence: float | None,
    percentiles: str | None,
    resamples: int | None,
    seed: int | None,
) -> Thresholds:
    try:
        th = parse_thresholds(path.read_text(encoding="utf-8")) if path else Thresholds()
        flags: dict[str, Any] = {
            "relative": None if pct is None else pct / 100.0,
            "absolute_ms": ms,
            "confidence": confidence,
            "resamples": resamples,
            "seed": seed,
            "percentiles": None
            if percentiles is None
            else tuple(float(p) for p in percentiles.split(",") if p.strip()),
        }
        from dataclasses import replace

        return replace(th, **{k: v for k, v in flags.items() if v is not None})
    except (OSError, ValueError, TypeError) as exc:
        _fail(f"bad thresholds: {exc}")
