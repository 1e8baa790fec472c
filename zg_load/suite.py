"""The seed's test-execution engine: run the five stress scenarios, report, score.

``StressTestEngine`` mirrors the seed's API — ``run_scenario``, ``run_all_scenarios``,
``generate_report`` (JSON) and ``get_resilience_score`` — over real runs: each scenario
runs through ``runner.execute`` (the embedded reference service unless a target is
given), leaves its run directory under the suite's directory, and its result carries
the run's validation (``summary["validation"]``) and check verdicts. A scenario that
cannot run (bad file, unreachable target) is "failed" with the error; one that ran is
"completed", passed or not. Shell: reads scenario files, writes run directories and
``suite.json``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from zg_load.artifacts import write_whole
from zg_load.progress import Progress
from zg_load.runner import RunError, execute
from zg_load.scenario import Scenario, ScenarioError, parse_scenario
from zg_load.validation import resilience_score

SEED_SCENARIOS = (
    "budget_exhaustion",
    "agent_hallucination",
    "conflicting_outputs",
    "high_priority_storm",
    "model_downgrade",
)
SUITE_FILE = "suite.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_scenario_file(path: Path) -> Scenario:
    """Parse one scenario file; ScenarioError (with file and line) or OSError if it cannot."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    return parse_scenario(text, source=str(path))


def default_suite_dir(root: Path = Path("results")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return root / f"suite-{stamp}"


def default_scenarios_dir() -> Path:
    """``scenarios/`` here, else the copy installed inside the package, else the checkout's."""
    here = Path("scenarios")
    if here.is_dir():
        return here
    package = Path(__file__).resolve().parent
    for candidate in (package / "scenarios", package.parent / "scenarios"):
        if candidate.is_dir():
            return candidate
    return here


class StressTestEngine:
    """Runs stress scenarios against one target and keeps their results (see module doc)."""

    def __init__(
        self,
        target: str | None = None,
        *,
        admin_token: str | None = None,
        scenarios_dir: Path | None = None,
        out: Path | None = None,
        progress: bool = False,
    ) -> None:
        """``target``: the AI Ops service's URL (None: the embedded reference service);
        ``out``: the suite directory, one run directory per scenario inside it."""
        self.target = target
        self.admin_token = admin_token
        self.scenarios_dir = scenarios_dir or default_scenarios_dir()
        self.out = out or default_suite_dir()
        self.progress = progress
        self.test_results: dict[str, dict[str, Any]] = {}
        self.test_history: list[dict[str, Any]] = []

    def run_scenario(
        self, scenario_name: str, scenario: Scenario | Path | None = None
    ) -> dict[str, Any]:
        """Run one scenario (a `Scenario`, a file, or ``<scenarios_dir>/<name>.toml``)."""
        started = time.perf_counter()
        try:
            loaded = self._load(scenario_name, scenario)
            outcome = execute(
                loaded,
                target=self.target,
                admin_token=self.admin_token,
                out=self.out / scenario_name,
                progress=Progress(loaded, quiet=not self.progress),
            )
        except (RunError, ScenarioError, OSError) as exc:
            result: dict[str, Any] = {
                "scenario": scenario_name,
                "status": "failed",
                "error": str(exc),
                "timestamp": now_iso(),
            }
        else:
            result = _completed(scenario_name, outcome.summary, outcome.run_dir, started)
        self.test_results[scenario_name] = result
        self.test_history.append(result)
        return result

    def run_all_scenarios(self) -> dict[str, dict[str, Any]]:
        """Run the seed's five scenarios from ``scenarios_dir``, in the seed's order.

        FileNotFoundError when ``scenarios_dir`` holds none of them (e.g. run from outside
        the repository without ``scenarios_dir=``): a suite of five failures would
        otherwise score 0.0 without saying why."""
        if not any((self.scenarios_dir / f"{name}.toml").is_file() for name in SEED_SCENARIOS):
            raise FileNotFoundError(
                f"no seed scenarios in {self.scenarios_dir.resolve()}: pass "
                "StressTestEngine(scenarios_dir=...) pointing at zg_load's scenarios/ folder"
            )
        return {name: self.run_scenario(name) for name in SEED_SCENARIOS}

    def generate_report(self) -> str:
        """The suite's report as JSON (also what ``write_report`` writes to suite.json)."""
        return orjson.dumps(self.report(), option=orjson.OPT_INDENT_2).decode()

    def report(self) -> dict[str, Any]:
        results = self.test_results.values()
        completed = [r for r in results if r["status"] == "completed"]
        return {
            "test_run_timestamp": now_iso(),
            "total_scenarios": len(self.test_results),
            "completed_scenarios": len(completed),
            "failed_scenarios": len(self.test_results) - len(completed),
            "resilience_score": self.get_resilience_score(),
            "passed": bool(results) and all(r.get("passed") for r in results),
            "detailed_results": self.test_results,
        }

    def get_resilience_score(self) -> float:
        """The seed's score: the mean, over completed scenarios, of each one's five factors.

        Factors (each 1.0 when the scenario did not apply that stress): budget respected,
        hallucination detection accuracy, conflicts resolved / detected, system stability
        under a storm, service continuity through a downgrade. 0.0 when none completed.
        """
        scores = [
            resilience_score(r["results"]["resilience"]["factors"])
            for r in self.test_results.values()
            if r["status"] == "completed"
        ]
        return round(sum(scores) / len(scores), 6) if scores else 0.0

    def write_report(self) -> Path:
        """Write suite.json into the suite directory; returns its path."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / SUITE_FILE
        write_whole(path, self.generate_report().encode() + b"\n")
        return path

    def _load(self, name: str, scenario: Scenario | Path | None) -> Scenario:
        if isinstance(scenario, Scenario):
            return scenario
        return load_scenario_file(scenario or self.scenarios_dir / f"{name}.toml")


def _completed(name: str, summary: dict[str, Any], run_dir: Path, started: float) -> dict[str, Any]:
    validation = summary.get("validation")
    if validation is None:
        raise RuntimeError("the run has no validation: the runner must attach it")
    return {
        "scenario": name,
        "status": "completed",
        "execution_time": round(time.perf_counter() - started, 3),
        "results": validation,
        "checks": summary["checks"],
        "passed": summary["passed"],
        "run_dir": str(run_dir),
        "timestamp": now_iso(),
    }
