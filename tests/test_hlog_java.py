"""Our interval logs and percentile tables, read and printed by Java's HdrHistogram tools."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from zg_load.hdr import Histogram
from zg_load.hlog import format_header, format_hgrm, format_interval

pytestmark = pytest.mark.java

# Debian's libhdrhistogram-java installs the lower-case name; upstream builds the other.
JARS = [Path("/usr/share/java/hdrhistogram.jar"), Path("/usr/share/java/HdrHistogram.jar")]
START_S = 1_700_000_000.0
TAGS = ["approval/5/ok", "approval/1/refused", "run_task/3/ok"]


def _java_tool() -> list[str]:
    java = shutil.which("java")
    jar = next((path for path in JARS if path.is_file()), None)
    if java is None or jar is None:
        pytest.fail(
            "the Java HdrHistogram tools are missing (java and libhdrhistogram-java); "
            "`make test` installs them (target java-deps)"
        )
    return [java, "-cp", str(jar), "org.HdrHistogram.HistogramLogProcessor"]


def _write_log(path: Path) -> dict[str, Histogram]:
    """Three tags over five intervals of a realistic spread, plus a slow outlier."""
    rng = random.Random(2024)
    totals = {tag: Histogram() for tag in TAGS}
    lines = format_header(START_S)
    for second in range(5):
        for n, tag in enumerate(TAGS):
            hist = Histogram()
            hist.record_many([int(rng.lognormvariate(7 + n, 1.3)) for _ in range(4000)])
            hist.record(12_345_678 + second)
            totals[tag].merge(hist)
            lines.append(format_interval(tag, float(second), 1.0, hist))
    path.write_text("\n".join(lines) + "\n")
    return totals


def _process(log: Path, out: Path, tag: str) -> tuple[str, str]:
    command = [*_java_tool(), "-i", str(log), "-o", str(out), "-tag", tag]
    command += ["-outputValueUnitRatio", "1000"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return out.read_text(), Path(f"{out}.hgrm").read_text()


def _java_totals(interval_text: str) -> list[float]:
    """Java's last total: count, p50, p90, p99, p99.9, p99.99, max (milliseconds)."""
    last = interval_text.strip().splitlines()[-1]
    totals = last.split("T:")[1].replace("(", " ").replace(")", " ").split()
    return [float(field) for field in totals]


@pytest.mark.parametrize("tag", TAGS)
def test_java_reads_our_totals_and_percentiles(tmp_path: Path, tag: str) -> None:
    log = tmp_path / "latency.hlog"
    ours = _write_log(log)[tag]
    interval_text, _ = _process(log, tmp_path / "out", tag)
    count, *percentiles_ms, max_ms = _java_totals(interval_text)
    assert int(count) == ours.count == 5 * 4001
    for p, java_ms in zip([50.0, 90.0, 99.0, 99.9, 99.99], percentiles_ms, strict=True):
        ours_us = ours.percentile(p)
        assert ours_us is not None
        java_us = round(java_ms * 1000)
        # Java reports the top of the bucket; we clamp to the exact max. Same bucket either way.
        assert ours_us <= java_us <= ours_us + ours_us // 1000 + 1, (p, ours_us, java_us)
    assert ours.max_us == 12_345_682
    assert ours.max_us <= round(max_ms * 1000) <= ours.max_us * 1.001


@pytest.mark.parametrize("tag", TAGS)
def test_our_hgrm_matches_java(tmp_path: Path, tag: str) -> None:
    log = tmp_path / "latency.hlog"
    ours = _write_log(log)[tag]
    _, java_hgrm = _process(log, tmp_path / "out", tag)
    # The processor adds two comment lines of its own before the table.
    table = [
        line for line in java_hgrm.splitlines() if not line.startswith(("#[Overall", "#[StartTime"))
    ]
    # A decoded histogram knows only its buckets, as Java does, so the tables match exactly.
    assert format_hgrm(Histogram.decode(ours.encode())).splitlines() == table


def test_java_refuses_nothing_of_an_empty_interval(tmp_path: Path) -> None:
    log = tmp_path / "empty.hlog"
    lines = format_header(START_S) + [format_interval("a/1/ok", 0.0, 1.0, Histogram())]
    log.write_text("\n".join(lines) + "\n")
    _, hgrm = _process(log, tmp_path / "out", "a/1/ok")
    assert "Total count    =            0]" in hgrm
