"""The zg-load command line: a map of commands over scenarios and run directories.

Exit codes: 0 every check passed; 1 a check failed; 2 a usage, scenario or target
error (one line on stderr, no traceback).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import click

from zg_load import __version__
from zg_load.cli_reports import compare, report
from zg_load.cli_suite import suite
from zg_load.client import load_client_class
from zg_load.progress import Progress
from zg_load.runner import RunError, ScaleOut, execute
from zg_load.scenario import Scenario, ScenarioError, parse_scenario
from zg_load.schedule import ClosedLoop, expected_count
from zg_load.transport import DEFAULT_TRANSPORT, TRANSPORTS, TransportKind


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"zg-load: {message}", err=True)
    sys.exit(code)


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read scenario {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"cannot read scenario {path}: not UTF-8 text")
    try:
        return parse_scenario(text, source=str(path))
    except ScenarioError as exc:
        fail(str(exc))


def check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        fail(f"bad --target '{url}': expected a URL like http://127.0.0.1:8080")
    return url.rstrip("/")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="zg-load")
def cli() -> None:
    """Storm-test an AI Ops control plane and report what its users felt.

    \b
    Quick start:
      zg-load run scenarios/high_priority_storm.toml
      zg-load report results/<run>
    """


@cli.command()
@click.argument("scenario_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--target",
    metavar="URL",
    help="Your AI Ops service. Without it, zg-load starts the embedded reference service "
    "on 127.0.0.1 for this run.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option(
    "--admin-token",
    envvar="ZG_LOAD_ADMIN_TOKEN",
    metavar="TOKEN",
    help="Admin bearer token of the target (env ZG_LOAD_ADMIN_TOKEN).",
)
@click.option(
    "--client",
    "client_spec",
    metavar="MODULE:CLASS",
    help="Your own AIOpsClient adapter, constructed as CLASS(url, timeout_s=, "
    "max_connections=, admin_token=).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes on this machine, each with its exact share of the one schedule; "
    "histograms and the interval log are merged exactly. Validation sections (and checks on "
    "them) need one process.",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Run the workers as Ray actors: a local Ray, or the cluster at ADDRESS "
    "(pip install 'zg-load[ray]'). Write it after the scenario file, or as --ray=ADDRESS.",
)
@click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    default=DEFAULT_TRANSPORT,
    show_default=True,
    help="HTTP transport: fast (uvloop protocol + httptools) or aiohttp (proxies, client certs).",
)
@click.option("--quiet", "-q", is_flag=True, help="No live progress; print only the report.")
@click.option(
    "--progress",
    "force_progress",
    is_flag=True,
    help="Show progress even when stderr is not a terminal (one line per interval).",
)
def run(
    scenario_file: Path,
    target: str | None,
    out: Path | None,
    admin_token: str | None,
    client_spec: str | None,
    workers: int,
    ray_address: str | None,
    transport: TransportKind,
    quiet: bool,
    force_progress: bool,
) -> None:
    """Run a scenario and write a run directory (summary.json, latency.hlog, report.txt).

    \b
    Examples:
      zg-load run scenarios/high_priority_storm.toml
      zg-load run scenarios/smoke.toml --target http://127.0.0.1:8080 --out results/smoke-1
      zg-load run scenarios/smoke.toml --workers 2
      zg-load run scenarios/high_priority_storm.toml --ray=ray://head:10001

    Exit code 0 when every check passed, 1 when a check failed or the run was
    interrupted (Ctrl-C keeps what was measured, marked partial), 2 on a usage,
    scenario or target error or a Ctrl-C before the load started.
    """
    if ray_address is not None and importlib.util.find_spec("ray") is None:
        fail("--ray needs Ray, which is not installed: pip install 'zg-load[ray]'")
    cpus = os.cpu_count() or 1
    if ray_address is None and workers > cpus:
        click.echo(
            f"zg-load: note: --workers {workers} on {_count(cpus, 'CPU')}: the workers share "
            "the cores (and the target's, if it runs here), and may fall behind their schedule",
            err=True,
        )
    scenario = load_scenario(scenario_file)
    url = check_url(target) if target else None
    try:
        client_class = load_client_class(client_spec) if client_spec else None
    except ValueError as exc:
        fail(str(exc))
    progress = Progress(scenario, quiet=quiet, force=force_progress)
    try:
        outcome = execute(
            scenario,
            target=url,
            admin_token=admin_token,
            out=out,
            progress=progress,
            client_class=client_class,
            scale=ScaleOut(workers, ray_address, transport),
        )
    except RunError as exc:
        fail(str(exc), exc.exit_code)
    click.echo(outcome.text, nl=False)
    click.echo(f"\nrun directory: {outcome.run_dir}")
    sys.exit(0 if outcome.summary["passed"] else 1)


@cli.command()
@click.argument(
    "scenario_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
def validate(scenario_files: tuple[Path, ...]) -> None:
    """Check scenario files without running them.

    \b
    Example:
      zg-load validate scenarios/*.toml
    """
    bad = 0
    for path in scenario_files:
        try:
            text = path.read_text(encoding="utf-8")
            sc = parse_scenario(text, source=str(path))
        except OSError as exc:
            click.echo(f"zg-load: cannot read scenario {path}: {exc.strerror or exc}", err=True)
            bad += 1
            continue
        except ScenarioError as exc:
            click.echo(f"zg-load: {exc}", err=True)
            bad += 1
            continue
        streams = [s.arrival for p in sc.phases for s in p.streams]
        planned = sum(expected_count(a) for a in streams if not isinstance(a, ClosedLoop))
        users = sum(a.users for a in streams if isinstance(a, ClosedLoop))
        extra = f" + {users} closed-loop users" if users else ""
        click.echo(
            f"ok: {path}: {sc.name}, {_count(len(sc.phases), 'phase')}, {sc.duration_s:g} s, "
            f"{planned:,} requests planned{extra}"
        )
    sys.exit(2 if bad else 0)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def serve(args: tuple[str, ...]) -> None:
    """Serve the reference AI Ops service (127.0.0.1 by default) until Ctrl-C.

    \b
    Examples:
      zg-load serve --port 8080
      zg-load serve --port 8080 --workers 8 --service-time-ms 2 --db ledger.sqlite3
      zg-load serve --help        (every option)
    """
    from zg_load.aiops.__main__ import main as serve_main

    serve_main(list(args))


cli.add_command(report)
cli.add_command(compare)
cli.add_command(suite)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
