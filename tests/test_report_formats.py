"""Reports of a real run as text, Markdown, JSON and HTML: golden files.

Set ZG_LOAD_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then
read the diff before committing it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from zg_load.cli_reports import load_run, report
from zg_load.hdr import Histogram
from zg_load.hlog import parse_log
from zg_load.htmlreport import render_html
from zg_load.render import cell, percentile_rows, render_text
from zg_load.report_formats import render_json, render_markdown, run_histograms

GOLDEN = Path(__file__).parent / "golden"
RUN = GOLDEN / "smoke"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ZG_LOAD_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with ZG_LOAD_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def smoke() -> tuple[dict[str, Any], Any]:
    return load_run(RUN)


def test_text_report_has_wrk2_percentiles() -> None:
    summary, hists = smoke()
    text = render_text(summary, hists)
    golden("smoke_report.txt", text)
    header = next(line for line in text.splitlines() if "99.999%" in line)
    assert header.split() == [
        *("operation", "kind", "count"),
        *("50%", "75%", "90%", "99%", "99.9%", "99.99%", "99.999%", "100%"),
    ]


def test_text_report_without_histograms_keeps_the_digest_table() -> None:
    summary, _ = smoke()
    golden("smoke_report_digest.txt", render_text(summary))


def test_text_spectrum_is_the_hgrm_of_each_tag() -> None:
    summary, hists = smoke()
    text = render_text(summary, hists, spectrum=True)
    golden("smoke_spectrum.txt", text)
    assert text.count("1/(1-Percentile)") == 5  # one per priority: corrected only


def test_markdown_and_json_reports() -> None:
    summary, hists = smoke()
    golden("smoke_report.md", render_markdown(summary, hists))
    doc = orjson.loads(render_json(summary, hists))
    golden("smoke_distribution.json", orjson.dumps(doc["distribution_ms"]).decode() + "\n")
    p5 = doc["distribution_ms"]["approval"]["5"]
    assert (
        p5["corrected"]["100"] == summary["latency"]["approval"]["5"]["ok"]["corrected"]["max_ms"]
    )
    assert "75" not in p5["service"]  # not recorded: left out, never 0


def test_html_without_plots_is_stable() -> None:
    summary, hists = smoke()
    golden("smoke_report.html", render_html(summary, hists, []))


def test_histograms_of_the_log_add_up_to_the_summary() -> None:
    summary, hists = smoke()
    for op, prios in summary["latency"].items():
        for prio, kinds in prios.items():
            merged = hists.corrected[(op, int(prio), "ok")]
            assert merged.count == kinds["ok"]["corrected"]["count"]
            assert merged.max_us / 1000 == kinds["ok"]["corrected"]["max_ms"]
    starts = sorted({iv.start_s for ivs in hists.intervals.values() for iv in ivs})
    assert starts == [0.0, 0.5, 1.0, 1.5]


def test_service_histograms_come_from_the_summary_when_present() -> None:
    summary, _ = smoke()
    svc = Histogram()
    svc.record_many([5000, 6000, 7000, 8000])
    with_hists = {**summary, "histograms": {"approval/5/ok": {"service": svc.encode()}}}
    hists = run_histograms(with_hists, (RUN / "latency.hlog").read_text())
    assert hists.service[("approval", 5, "ok")].count == 4
    rows = percentile_rows(with_hists, hists.corrected, hists.service, ("approval", 5, "ok"))
    assert rows["service"][1] == 7.003  # 75 %, now recorded (the bucket edge)
    no_svc = percentile_rows(summary, hists.corrected, {}, ("approval", 4, "ok"))
    assert math.isnan(no_svc["service"][1]) and cell(no_svc["service"][1]) == "-"
    assert no_svc["service"][0] == summary["latency"]["approval"]["4"]["ok"]["service"]["p50_ms"]


def test_empty_log_falls_back_to_the_digests() -> None:
    summary, _ = smoke()
    hists = run_histograms(summary, None)
    assert hists.corrected == {} and hists.ok_groups() == []
    assert "Latency of admitted requests (ms)" in render_text(summary, hists)


def test_report_command_rerenders_from_the_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("summary.json", "latency.hlog"):
        (run / name).write_bytes((RUN / name).read_bytes())
    runner = CliRunner()
    result = runner.invoke(report, [str(run)])
    assert result.exit_code == 0
    assert result.stdout == (GOLDEN / "smoke_report.txt").read_text()
    result = runner.invoke(report, [str(run), "--format", "html", "--hgrm"])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    pngs = sorted(p.name for p in (run / "plots").iterdir())
    assert pngs == [
        "budget.png",
        "latency_over_time.png",
        "latency_percentiles.png",
        "refusals.png",
        "throughput.png",
    ]
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "the service reported no models" in page
    hgrm = (run / "approval_5_ok.corrected.hgrm").read_text()
    assert hgrm.splitlines()[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    assert "Total count    =           16" in hgrm


def test_report_command_markdown_to_a_file_and_bad_directory(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    result = CliRunner().invoke(report, [str(RUN), "--format", "markdown", "--out", str(out)])
    assert result.exit_code == 0 and out.read_text() == (GOLDEN / "smoke_report.md").read_text()
    result = CliRunner().invoke(report, [str(tmp_path)])
    assert result.exit_code == 2 and "cannot read run directory" in result.stderr


def test_log_entries_parse() -> None:
    assert len(parse_log((RUN / "latency.hlog").read_text())) == 20


def test_a_phase_cell_shows_failures_when_there_were_any() -> None:
    from zg_load.render import phase_cell

    served = {"requests": 200, "refused": 100, "failed": 0, "refusal_rate": 0.5, "p99_ms": 142.3}
    assert phase_cell(served) == "50.0% / 142.3 ms"
    down = {"requests": 40, "refused": 0, "failed": 30, "refusal_rate": 0.0, "p99_ms": 8.04}
    assert phase_cell(down) == "0.0% / 8.0 ms, 75.0% failed"
