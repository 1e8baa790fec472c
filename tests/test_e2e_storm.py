"""End to end: a short storm against the real reference service on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from zg_load.cli import cli
from zg_load.hlog import parse_log

pytestmark = pytest.mark.slow

# 3 s baseline at 100/s, 3 s storm adding 1,500/s of priority 5 (about twice the
# service's 800/s), 4 s recovery: about 5,500 requests in 10 s.
SHORT_STORM = """\
name = "short_storm"
seed = 3
interval = "500ms"
drain = "2s"
checks = ["priority_adherence >= 0.9"]

[target]
budget_usd = 1000000.0

[service]
queue_bound = 128

[analysis]
recovery_stable_intervals = 2

[[mixes.mixed]]
op = "approval"
priority = { 1 = 30, 2 = 25, 3 = 20, 4 = 15, 5 = 10 }
cost_usd = [0.01, 0.10]
task = "routine"

[[mixes.urgent]]
op = "approval"
priority = 5
cost_usd = 0.05
task = "incident"

[[phases]]
name = "baseline"
role = "baseline"
duration = "3s"
[[phases.streams]]
rate = "100/s"
mix = "mixed"

[[phases]]
name = "storm"
role = "storm"
duration = "3s"
[[phases.streams]]
rate = "100/s"
mix = "mixed"
[[phases.streams]]
rate = "1500/s"
mix = "urgent"

[[phases]]
name = "recovery"
role = "recovery"
duration = "4s"
[[phases.streams]]
rate = "100/s"
mix = "mixed"
"""


def run_storm(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "short_storm.toml"
    path.write_text(SHORT_STORM)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(out), "-q"])
    assert result.exit_code in (0, 1), result.output
    summary: dict[str, Any] = orjson.loads((out / "summary.json").read_bytes())
    summary["_hlog"] = parse_log((out / "latency.hlog").read_text())
    return summary


def test_short_storm_end_to_end(tmp_path: Path) -> None:
    s = run_storm(tmp_path)
    acc = s["accounting"]
    # Constant rates: exactly 300 + (300 + 4500) + 400 intended.
    assert acc["intended"] == 5500
    assert acc["identity_holds"] is True
    assert acc["intended"] == acc["sent"] + acc["not_sent"]
    assert acc["sent"] == sum(
        acc[k] for k in ("ok", "refused", "error", "timeout", "transport", "in_flight")
    )
    assert (acc["error"], acc["transport"]) == (0, 0)
    # The storm overloads the service: it sheds, and sheds priority 1 before priority 5.
    storm = s["phases"][1]["by_priority"]["approval"]
    assert storm["5"]["refused"] > 0
    assert storm["1"]["refusal_rate"] > 0.5
    assert storm["5"]["refusal_rate"] < storm["1"]["refusal_rate"]
    baseline = s["phases"][0]["by_priority"]["approval"]
    assert all(row["refused"] == 0 for row in baseline.values())
    # Recovery is measured and finite; adherence holds.
    assert s["recovery_time_s"] is not None and 0 <= s["recovery_time_s"] <= 4.0
    assert s["priority_adherence"] is not None and s["priority_adherence"] >= 0.9
    # Every completed request is in the interval log exactly once, under its tag.
    entries = s["_hlog"]
    assert sum(e.hist.count for e in entries) == acc["ok"] + acc["refused"]
    refused_p5 = sum(e.hist.count for e in entries if e.tag == "approval/5/refused")
    assert refused_p5 == s["by_priority"]["approval"]["5"]["refused"]
    # Percentiles are ordered and end at the max.
    ok5 = s["latency"]["approval"]["5"]["ok"]["corrected"]
    assert (
        ok5["min_ms"]
        <= ok5["p50_ms"]
        <= ok5["p90_ms"]
        <= ok5["p99_ms"]
        <= ok5["p999_ms"]
        <= ok5["max_ms"]
    )


def start_long_smoke(
    tmp_path: Path, *, own_group: bool = False
) -> tuple[subprocess.Popen[str], Path]:
    """The smoke scenario for 30 s, started in a process; returns once its load has run
    1.5 s. ``own_group``: in a process group of its own, as a terminal's foreground job."""
    scenario = Path(__file__).parent.parent / "scenarios" / "smoke.toml"
    path = tmp_path / "long_smoke.toml"
    path.write_text(scenario.read_text().replace('duration = "2s"', 'duration = "30s"'))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zg_load.cli", "run", str(path), "--out", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=own_group,
    )
    deadline = time.monotonic() + 30
    while not (out / "latency.hlog").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    return proc, out


def test_interrupted_run_keeps_what_it_measured(tmp_path: Path) -> None:
    proc, out = start_long_smoke(tmp_path)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    s = orjson.loads((out / "summary.json").read_bytes())
    assert s["partial"] is True and s["stop_reason"] == "interrupted"
    acc = s["accounting"]
    assert acc["identity_holds"] is True
    assert 0 < acc["intended"] < 1500  # stopped well before 30 s at 50/s
    assert "PARTIAL RUN" in stdout


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_the_run_but_not_the_embedded_service(tmp_path: Path) -> None:
    # A terminal's Ctrl-C reaches the whole process group: zg-load and its embedded service.
    # The service must keep answering (the run's last requests and its final state), and
    # zg-load stops it afterwards.
    proc, out = start_long_smoke(tmp_path, own_group=True)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    s = orjson.loads((out / "summary.json").read_bytes())
    assert s["partial"] is True and s["stop_reason"] == "interrupted"
    acc = s["accounting"]
    assert acc["identity_holds"] is True and acc["transport"] == 0 and acc["error"] == 0
    assert s["target_state"]["budget"] is not None  # read after the stop: the service was up
    with pytest.raises(ProcessLookupError):  # and zg-load stopped it (the group is empty)
        os.killpg(proc.pid, 0)
