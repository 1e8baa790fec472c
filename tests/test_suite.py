"""The suite: ``StressTestEngine`` and ``zg-load suite``, in-process, on short scenarios."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from zg_load.cli_suite import scenario_files, suite
from zg_load.suite import SEED_SCENARIOS, StressTestEngine

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).parent.parent / "scenarios"

# One second of conflict checks: about 60, three in ten with one dissenting agent.
TINY = """\
name = "tiny_conflicts"
seed = 5
interval = "500ms"
drain = "1s"
checks = ["conflicts.detection_rate >= 0.99"]
{service}
[[mixes.m]]
op = "conflict_check"
task = "consistency"
agents = ["a", "b", "c"]
conflict_rate = 0.3

[[phases]]
name = "steady"
duration = "1s"
[[phases.streams]]
rate = "60/s"
mix = "m"
"""


def write(directory: Path, name: str, service: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(TINY.format(service=service).replace("tiny_conflicts", name))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_suite_prints_every_field_and_writes_suite_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "sc", "tiny_conflicts")
    out = tmp_path / "suite"
    result = CliRunner().invoke(suite, [str(tmp_path / "sc"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["scenario", "status", "checks", "time", "resilience"]
    assert lines[2].split()[:3] == ["tiny_conflicts", "passed", "6/6"]
    report = orjson.loads((out / "suite.json").read_bytes())
    detail = report["detailed_results"]["tiny_conflicts"]
    for field, value in detail["results"]["conflicts"].items():
        assert f"  {field} " in result.stdout
        assert value is not None, field  # every field measured
    assert detail["results"]["conflicts"]["detection_rate"] == 1.0
    assert (report["total_scenarios"], report["completed_scenarios"]) == (1, 1)
    assert (report["resilience_score"], report["passed"]) == (1.0, True)
    assert "resilience score  1 (1 of 1 completed)" in result.stdout
    assert (out / "tiny_conflicts" / "summary.json").is_file()


def test_suite_exits_1_when_a_check_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "broken", '[service]\ndefects = ["conflicts"]\n')
    result = CliRunner().invoke(suite, [str(path), "--out", str(tmp_path / "suite")])
    assert result.exit_code == 1, result.output
    assert "FAILED check conflicts.detection_rate >= 0.99: 0 is not >= 0.99" in result.stdout
    assert "resilience score  0.8 (1 of 1 completed)" in result.stdout  # conflicts factor 0
    assert result.stdout.splitlines()[-3] == "suite             FAILED"


def test_unreachable_target_is_a_failed_scenario(tmp_path: Path) -> None:
    engine = StressTestEngine(f"http://127.0.0.1:{closed_port()}", out=tmp_path / "suite")
    result = engine.run_scenario("tiny", write(tmp_path, "tiny"))
    assert result["status"] == "failed" and "cannot reach target" in result["error"]
    assert engine.get_resilience_score() == 0.0
    report = orjson.loads(engine.generate_report())
    assert (report["completed_scenarios"], report["failed_scenarios"]) == (0, 1)
    assert report["passed"] is False
    assert engine.test_history == [result]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nseed = "x"\n')
    result = CliRunner().invoke(suite, [str(bad)])
    assert result.exit_code == 2 and "bad.toml:2: seed: expected a whole number" in result.stderr
    result = CliRunner().invoke(suite, [str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "cannot read scenario" in result.stderr
    result = CliRunner().invoke(suite, [str(bad), "--target", "localhost:80"])
    assert result.exit_code == 2 and "bad --target" in result.stderr


def test_a_directory_stands_for_the_seed_scenarios_in_order() -> None:
    assert scenario_files((SCENARIOS,)) == [SCENARIOS / f"{n}.toml" for n in SEED_SCENARIOS]


def test_run_all_scenarios_without_scenarios_says_why(tmp_path: Path) -> None:
    from zg_load.suite import StressTestEngine

    engine = StressTestEngine(scenarios_dir=tmp_path / "nowhere", out=tmp_path / "suite")
    with pytest.raises(FileNotFoundError, match="no seed scenarios in"):
        engine.run_all_scenarios()
