"""``zg-load suite``: run the seed's five stress scenarios, print every validation, score.

Shell over ``suite.StressTestEngine``. Every scenario file is parsed before anything
runs, so a bad file costs seconds, not a suite. Exit codes: 0 every check of every
scenario passed; 1 a check failed or a scenario could not run; 2 a usage or scenario
file error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import click

from zg_load.scenario import Scenario, ScenarioError
from zg_load.suite import (
    SEED_SCENARIOS,
    SUITE_FILE,
    StressTestEngine,
    default_scenarios_dir,
    load_scenario_file,
)
from zg_load.validation_render import render_suite


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"zg-load: {message}", err=True)
    sys.exit(code)


def scenario_files(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given; a directory stands for the seed's scenarios in it (all *.toml if none)."""
    files: list[Path] = []
    for path in paths or (default_scenarios_dir(),):
        if not path.is_dir():
            files.append(path)
            continue
        seed = [
            path / f"{name}.toml" for name in SEED_SCENARIOS if (path / f"{name}.toml").is_file()
        ]
        found = seed or sorted(path.glob("*.toml"))
        if not found:
            _fail(f"no scenario files (*.toml) in {path}")
        files += found
    return files


def _load_all(files: list[Path]) -> list[tuple[str, Scenario]]:
    loaded = []
    for path in files:
        try:
            loaded.append((path.stem, load_scenario_file(path)))
        except OSError as exc:
            _fail(f"cannot read scenario {path}: {exc.strerror or exc}")
        except ScenarioError as exc:
            _fail(str(exc))
    names = [name for name, _ in loaded]
    if len(set(names)) != len(names):
        _fail("two scenario files have the same name; give each its own")
    return loaded


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--target",
    metavar="URL",
    help="Your AI Ops service. Without it, each scenario starts the embedded reference "
    "service on 127.0.0.1 for its run.",
)
@click.option(
    "--admin-token",
    envvar="ZG_LOAD_ADMIN_TOKEN",
    metavar="TOKEN",
    help="Admin bearer token of the target, for phase setups (env ZG_LOAD_ADMIN_TOKEN).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Suite directory: suite.json and one run directory per scenario "
    "(default results/suite-<UTC time>).",
)
@click.option("--progress", is_flag=True, help="Show each run's live progress on stderr.")
def suite(
    paths: tuple[Path, ...],
    target: str | None,
    admin_token: str | None,
    out: Path | None,
    progress: bool,
) -> None:
    """Run the stress-test suite: every scenario, its validation report, a resilience score.

    PATHS are scenario files or directories; a directory stands for the seed's five
    scenarios in it (budget_exhaustion, agent_hallucination, conflicting_outputs,
    high_priority_storm, model_downgrade), or for all its *.toml files if it has none
    of them. Default: scenarios/.

    \b
    Examples:
      zg-load suite scenarios/
      zg-load suite scenarios/ --target http://127.0.0.1:8080 --out results/suite-1
      zg-load suite scenarios/budget_exhaustion.toml scenarios/model_downgrade.toml

    Writes suite.json in the suite directory. Exit code 0 when every check passed, 1 when
    a check failed or a scenario could not run, 2 on a usage or scenario file error.
    """
    if target is not None:
        parsed = urlparse(target)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            _fail(f"bad --target '{target}': expected a URL like http://127.0.0.1:8080")
        target = target.rstrip("/")
    loaded = _load_all(scenario_files(paths))
    engine = StressTestEngine(target, admin_token=admin_token, out=out, progress=progress)
    if (engine.out / SUITE_FILE).exists():
        _fail(f"{engine.out} already holds a suite ({SUITE_FILE}); choose another --out")
    for name, scenario in loaded:
        click.echo(f"zg-load: running {name} ({scenario.duration_s:g} s of load)", err=True)
        engine.run_scenario(name, scenario)
    path = engine.write_report()
    click.echo(render_suite(engine.report()), nl=False)
    click.echo(f"\nsuite report: {path}")
    sys.exit(0 if engine.report()["passed"] else 1)
