"""The zg-load command line: a map of commands over scenarios and run directories.

Exit codes: 0 every check passed; 1 a check failed; 2 a usage, scenario or target
error (one line on stderr, no traceback).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

import anyio
import click

from zg_load import __version__
from zg_load.artifacts import (
    HlogWriter,
    check_run_dir,
    default_run_dir,
    write_summary,
)
from zg_load.cli_reports import compare, report, write_run_reports
from zg_load.client import Answer, HttpClient
from zg_load.clock import RealClock
from zg_load.embedded import EmbeddedError, EmbeddedService, start_embedded
from zg_load.engine import Engine, EngineConfig
from zg_load.plan import closed_streams, plan
from zg_load.progress import Progress
from zg_load.recorder import IntervalStats, Recorder
from zg_load.result import RunResult
from zg_load.scenario import Phase, Scenario, ScenarioError, TargetSetup, parse_scenario
from zg_load.schedule import ClosedLoop, expected_count
from zg_load.summary import build_summary, with_checks

NS_PER_S = 1_000_000_000
WARM_CONNECTIONS = 256
PREFLIGHT_TIMEOUT_S = 5.0


class SetupError(Exception):
    """The run cannot start: the target is unreachable or refused the setup, or the run directory cannot be made."""


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


def run_backend_options() -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


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
    quiet: bool,
    force_progress: bool,
) -> None:
    """Run a scenario and write a run directory (summary.json, latency.hlog, report.txt).

    \b
    Examples:
      zg-load run scenarios/high_priority_storm.toml
      zg-load run scenarios/smoke.toml --target http://127.0.0.1:8080 --out results/smoke-1

    Exit code 0 when every check passed, 1 when a check failed, 2 on a usage,
    scenario or target error.
    """
    scenario = load_scenario(scenario_file)
    url = check_url(target) if target else None
    try:
        run_dir = check_run_dir(out or default_run_dir(scenario.name))
    except (FileExistsError, OSError) as exc:
        fail(str(exc))
    service: EmbeddedService | None = None
    if url is None:
        try:
            service = start_embedded(scenario.service)
        except EmbeddedError as exc:
            fail(str(exc))
        url, admin_token = service.url, service.token
    try:
        summary = anyio.run(
            _run,
            scenario,
            url,
            admin_token,
            service is not None,
            run_dir,
            Progress(scenario, quiet=quiet, force=force_progress),
            backend_options=run_backend_options(),
        )
    except SetupError as exc:
        fail(str(exc))
    finally:
        if service is not None:
            service.stop()
    text = write_run_reports(run_dir, summary)
    click.echo(text, nl=False)
    click.echo(f"\nrun directory: {run_dir}")
    sys.exit(0 if summary["passed"] else 1)


async def _preflight(client: HttpClient, url: str) -> None:
    with anyio.move_on_after(PREFLIGHT_TIMEOUT_S):
        answer = await client.health()
        if answer.ok:
            return
        if answer.status == 0:
            detail = answer.body if isinstance(answer.body, str) else answer.reason
            raise SetupError(f"cannot reach target {url}: {detail}")
        raise SetupError(f"target {url} is not healthy: GET /health answered HTTP {answer.status}")
    raise SetupError(f"target {url} did not answer GET /health within {PREFLIGHT_TIMEOUT_S:g} s")


async def _warm(client: HttpClient, connections: int) -> None:
    """Open the connection pool before the clock starts, as wrk does, so a storm's
    first second measures the service, not our TCP handshakes."""
    async with anyio.create_task_group() as tg:
        for _ in range(connections):
            tg.start_soon(client.health)


async def _setup(client: HttpClient, target: TargetSetup) -> None:
    if target.budget_usd is None:
        return
    answer = await client.set_budget_limit(target.budget_usd, target.soft_budget_usd, target.window)
    if not answer.ok:
        raise SetupError(
            f"target refused the budget setup (PUT /v1/budget): {answer.reason or answer.status}"
        )


async def apply_phase_setup(client: HttpClient, phase: Phase) -> list[str]:
    """Apply a phase's setup to the target; return what the target refused (empty: all applied)."""
    setup = phase.setup
    if setup is None:
        return []
    steps: list[tuple[str, Awaitable[Answer]]] = []
    if setup.clear_faults:
        steps.append(("DELETE /v1/admin/faults", client.clear_faults()))
    if setup.faults:
        steps.append(("PUT /v1/admin/faults", client.set_faults(setup.faults)))
    if setup.budget_usd is not None:
        steps.append(
            ("PUT /v1/budget", client.set_budget_limit(setup.budget_usd, setup.soft_budget_usd))
        )
    refused = []
    for what, pending in steps:
        answer = await pending
        if not answer.ok:
            detail = _error_message(answer)
            refused.append(
                f"phase {phase.name}: {what} answered {answer.status or answer.reason}: {detail}"
            )
    return refused


def _error_message(answer: Answer) -> str:
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))
    return str(answer.reason or "")


async def _run(
    scenario: Scenario,
    url: str,
    token: str | None,
    embedded: bool,
    run_dir: Path,
    progress: Progress,
) -> dict[str, Any]:
    client = HttpClient(
        url, timeout_s=scenario.timeout_s, max_connections=scenario.max_in_flight, admin_token=token
    )
    try:
        await _preflight(client, url)
        await _setup(client, scenario.target)
        refused = await apply_phase_setup(client, scenario.phases[0])
        if refused:
            raise SetupError(f"target refused the setup of {refused[0]}")
        await _warm(client, min(scenario.max_in_flight, WARM_CONNECTIONS))
        try:
            run_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the clock starts)
        except OSError as exc:
            raise SetupError(
                f"cannot create run directory {run_dir}: {exc.strerror or exc}"
            ) from exc
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        result = await _storm(scenario, client, run_dir, progress)
        state = await target_state(client)
    finally:
        await client.aclose()
    summary = build_summary(result, scenario, target=url, embedded=embedded, started_at=started_at)
    summary["target_state"] = state
    with_checks(summary, scenario.checks)
    write_summary(run_dir, summary)
    return summary


async def target_state(client: HttpClient, timeout_s: float = 5.0) -> dict[str, Any]:
    """The target's own view after the run: budget ledger, notifications, status (None if not served)."""
    state: dict[str, Any] = {"budget": None, "notifications": None, "status": None}
    with anyio.move_on_after(timeout_s):
        calls = (
            ("budget", client.get_budget),
            ("notifications", client.notifications),
            ("status", client.get_system_status),
        )
        for name, fetch in calls:
            answer = await fetch()
            state[name] = answer.body if answer.ok else None
    return state


async def _storm(
    scenario: Scenario, client: HttpClient, run_dir: Path, progress: Progress
) -> RunResult:
    clock = RealClock()
    interval_ns = round(scenario.interval_s * NS_PER_S)
    recorder = Recorder(interval_ns)
    config = EngineConfig(
        duration_ns=round(scenario.duration_s * NS_PER_S),
        interval_ns=interval_ns,
        timeout_s=scenario.timeout_s,
        max_in_flight=scenario.max_in_flight,
        drain_s=scenario.drain_s,
        health_probe_interval_s=scenario.analysis.health_probe_interval_s,
        phase_ends_ns=tuple(round(end * NS_PER_S) for _, end in scenario.phase_bounds()),
    )
    writer: list[HlogWriter] = []

    def on_interval(stats: IntervalStats) -> None:
        if not writer:
            writer.append(HlogWriter(run_dir / "latency.hlog", engine.start_epoch_s))
        writer[0].write(stats)
        progress.show(stats, engine)

    setup_errors: list[str] = []

    async def on_phase(index: int) -> None:
        refused = await apply_phase_setup(client, scenario.phases[index])
        for message in refused:
            click.echo(f"zg-load: target refused the setup of {message}", err=True)
        setup_errors.extend(refused)

    engine = Engine(client, clock, recorder, config, on_interval, on_phase=on_phase)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, engine)
            result = await engine.run(plan(scenario), closed_streams(scenario))
            tg.cancel_scope.cancel()
    finally:
        for w in writer:
            w.close()
        progress.close()
    result.setup_errors.extend(setup_errors)
    return result


async def _watch_signals(engine: Engine) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            click.echo("\nzg-load: stopping; keeping what was measured (partial run)", err=True)
            engine.stop("interrupted")


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
            f"ok: {path}: {sc.name}, {len(sc.phases)} phases, {sc.duration_s:g} s, "
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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
