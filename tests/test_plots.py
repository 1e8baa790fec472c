"""The pictures: every plot of a real run is a PNG of the expected size; plots without
data are left out rather than drawn empty; faults and models draw when present."""

from __future__ import annotations

import copy
import struct
from pathlib import Path
from typing import Any

from zg_load.cli_reports import load_run
from zg_load.compare import compare_groups
from zg_load.hdr import Histogram
from zg_load.plots import budget, comparison_plot, models, run_plots, throughput, write_plots

RUN = Path(__file__).parent / "golden" / "smoke"
PNG = b"\x89PNG\r\n\x1a\n"


def size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_a_run_draws_five_pictures_of_readable_size() -> None:
    summary, hists = load_run(RUN)
    plots = run_plots(summary, hists)
    assert [p.name for p in plots] == [
        "latency_over_time.png",
        "latency_percentiles.png",
        "throughput.png",
        "refusals.png",
        "budget.png",
    ]
    for p in plots:
        width, height = size(p.png)
        assert width == 1100 and 400 <= height <= 1200, (p.name, width, height)
        assert p.title and p.caption


def test_write_plots_saves_each_png(tmp_path: Path) -> None:
    summary, hists = load_run(RUN)
    paths = write_plots(tmp_path / "plots", run_plots(summary, hists)[:2])
    assert [p.read_bytes()[:8] for p in paths] == [PNG, PNG]


def with_models_and_faults(summary: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(summary)
    for i, sample in enumerate(s["timeline"]["status"]):
        premium = "down" if i == 1 else "up"
        sample["models"] = [
            {"name": "gpt-big", "tier": "premium", "state": premium},
            {"name": "small", "tier": "economy", "state": "up"},
        ]
    s["timeline"]["faults"] = [{"start_s": 0.5, "end_s": 1.0, "name": "latency +50ms"}]
    return s


def test_models_and_faults_draw_when_present() -> None:
    summary, hists = load_run(RUN)
    assert models(summary) is None  # the service reported none
    rich = with_models_and_faults(summary)
    assert size(models(rich) or b"")[0] == 1100
    assert size(throughput(rich) or b"")[0] == 1100
    assert "models.png" in [p.name for p in run_plots(rich, hists)]


def test_nothing_to_draw_is_none() -> None:
    summary, _ = load_run(RUN)
    empty = copy.deepcopy(summary)
    empty["timeline"] = {"intervals": [], "status": []}
    assert budget(empty) is None and throughput(empty) is None


def test_comparison_plot_is_a_png() -> None:
    h = Histogram()
    h.record_many(list(range(1000, 20000, 7)))
    slower = Histogram()
    slower.record_many(list(range(1500, 30000, 7)))
    cmp = compare_groups({("approval", 5): [[h]]}, {("approval", 5): [[slower]]})
    width, height = size(comparison_plot(cmp, {("approval", 5): h}, {("approval", 5): slower}))
    assert (width, height) == (1430, 572)
