"""Running a scenario: the target, its setup, the engine, the run directory.

``execute`` is the one way a scenario runs, for the CLI and the Python API alike:
it starts the embedded reference service when no target is given, checks the target
(one line, within seconds, before anything is written), applies the scenario's setup,
opens the connection pool, runs the engine with Ctrl-C handled (a stopped run keeps
what it measured and is marked partial), and writes the run directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
import click

from zg_load.artifacts import (
    HlogWriter,
    check_run_dir,
    claim_run_dir,
    write_json,
    write_summary,
)
from zg_load.cli_reports import write_run_reports
from zg_load.client import Answer, TargetClient, make_target_client
from zg_load.clock import RealClock
from zg_load.embedded import EmbeddedError, EmbeddedService, service_args, start_embedded
from zg_load.engine import Engine, engine_config
from zg_load.plan import closed_streams, plan
from zg_load.progress import Progress
from zg_load.recorder import IntervalStats, Recorder
from zg_load.result import RunResult
from zg_load.scenario import Phase, Scenario, TargetSetup
from zg_load.summary import build_summary, with_checks
from zg_load.transport import (
    DEFAULT_TRANSPORT,
    WARM_CONNECTIONS,
    TransportKind,
    make_client,
    warm,
)
from zg_load.validation import Observations, attach, observations_for

NS_PER_S = 1_000_000_000
PREFLIGHT_TIMEOUT_S = 5.0
STOPPING = "\nzg-load: stopping; keeping what was measured (partial run)"


class RunError(Exception):
    """The run cannot start: the target is unreachable or refused the setup, or the run
    directory is unusable. The message is one line for the user; ``exit_code`` is 2, or 1
    for a run that measured something but could not finish its reports."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RunOutcome:
    summary: dict[str, Any]
    run_dir: Path
    text: str  # the text report, as printed


def run_backend_options() -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def execute(
    scenario: Scenario,
    *,
    target: str | None = None,
    admin_token: str | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    results_root: Path = Path("results"),
    client_class: type[Any] | None = None,
    scale: ScaleOut | None = None,
) -> RunOutcome:
    """Run a scenario against ``target`` (or the embedded service) and write its run directory."""
    if client_class is not None and scale is not None and scale.active:
        raise RunError(
            "--client cannot be combined with --workers or --ray: workers use the built-in client"
        )
    root_existed = results_root.exists()
    try:
        run_dir = check_run_dir(out) if out else claim_run_dir(scenario.name, results_root)
    except OSError as exc:
        raise RunError(str(exc)) from None
    try:
        with _EarlyStop() as early:
            return _execute(
                scenario, target, admin_token, run_dir, progress, client_class, scale, early
            )
    except BaseException:
        if out is None:  # what we claimed: leave nothing behind when nothing ran
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only when empty
                if not root_existed:
                    results_root.rmdir()
        raise


def _execute(
    scenario: Scenario,
    target: str | None,
    admin_token: str | None,
    run_dir: Path,
    progress: Progress | None,
    client_class: type[Any] | None,
    scale: ScaleOut | None,
    early: _EarlyStop,
) -> RunOutcome:
    service: EmbeddedService | None = None
    flags = service_args(scenario.service)
    if target is not None and flags:
        click.echo(
            f"zg-load: note: [service] settings apply to the embedded service only; {target} runs "
            f"with its own. The reference service with them: zg-load serve {' '.join(flags)}",
            err=True,
        )
    if target is None:
        try:
            service = start_embedded(scenario.service)
        except EmbeddedError as exc:
            early.check()  # interrupted: say that, not what it did to the start
            raise RunError(str(exc)) from None
        target, admin_token = service.url, service.token
    try:
        early.check()
        summary = anyio.run(
            _run,
            scenario,
            target,
            admin_token,
            service is not None,
            run_dir,
            progress or Progress(scenario, quiet=True),
            client_class,
            scale or ScaleOut(),
            early,
            backend_options=run_backend_options(),
        )
    finally:
        if service is not None:
            service.stop()
    try:
        text = write_run_reports(run_dir, summary)
    except KeyboardInterrupt:  # a second Ctrl-C: summary.json and latency.hlog are written
        raise RunError(
            f"interrupted while writing the reports; the run is in {run_dir}: "
            f"zg-load report {run_dir} prints it (--format html writes report.html)",
            exit_code=1,
        ) from None
    return RunOutcome(summary, run_dir, text)


async def _preflight(client: TargetClient, url: str) -> None:
    with anyio.move_on_after(PREFLIGHT_TIMEOUT_S):
        answer = await client.health()
        if answer.ok:
            return
        if answer.status == 0:
            detail = answer.body if isinstance(answer.body, str) else answer.reason
            raise RunError(f"cannot reach target {url}: {detail}")
        raise RunError(f"target {url} is not healthy: GET /health answered HTTP {answer.status}")
    raise RunError(f"target {url} did not answer GET /health within {PREFLIGHT_TIMEOUT_S:g} s")


def _environment(scale: ScaleOut, client_class: type[Any] | None) -> dict[str, Any]:
    """How the run was made: enough to tell two runs' setups apart when comparing them."""
    client = (
        "builtin"
        if client_class is None
        else f"{client_class.__module__}:{client_class.__qualname__}"
    )
    return {
        "command": sys.argv,
        "transport": scale.transport if client_class is None else None,
        "client": client,
        "workers": scale.workers,
        "ray": scale.ray_address,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "host": platform.node(),
    }


async def _check_admin(client: TargetClient, url: str, scenario: Scenario) -> None:
    """Phase setups that change faults need the admin token: find out before any load."""
    needs = [
        p.name for p in scenario.phases if p.setup and (p.setup.faults or p.setup.clear_faults)
    ]
    if not needs:
        return
    answer = await client.get_faults()
    if not answer.ok:
        which = f"phases {', '.join(needs)} set" if len(needs) > 1 else f"phase {needs[0]} sets"
        detail = f"HTTP {answer.status}" if answer.status else str(answer.reason)
        raise RunError(
            f"{which} faults, which needs the target's admin API: GET {url}/v1/admin/faults "
            f"answered {detail} (pass --admin-token or set ZG_LOAD_ADMIN_TOKEN)"
        )


async def _setup(client: TargetClient, target: TargetSetup) -> None:
    if target.budget_usd is None:
        return
    answer = await client.set_budget_limit(target.budget_usd, target.soft_budget_usd, target.window)
    if not answer.ok:
        raise RunError(
            f"target refused the budget setup (PUT /v1/budget): {answer.reason or answer.status}"
        )


async def apply_phase_setup(client: TargetClient, phase: Phase) -> list[str]:
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
    client_class: type[Any] | None,
    scale: ScaleOut,
    early: _EarlyStop,
) -> dict[str, Any]:
    try:
        if client_class is None:
            client: TargetClient = make_client(
                scale.transport,
                url,
                timeout_s=scenario.timeout_s,
                max_connections=scenario.max_in_flight,
                admin_token=token,
            )
        else:
            client = make_target_client(
                url,
                timeout_s=scenario.timeout_s,
                max_connections=scenario.max_in_flight,
                admin_token=token,
                client_class=client_class,
            )
    except (TypeError, ValueError) as exc:
        raise RunError(f"cannot use the client: {exc}") from None
    try:
        await _preflight(client, url)
        await _check_admin(client, url, scenario)
        await _setup(client, scenario.target)
        refused = await apply_phase_setup(client, scenario.phases[0])
        if refused:
            raise RunError(f"target refused the setup of {refused[0]}")
        before = await target_state(client)
        await warm(client, min(scenario.max_in_flight, WARM_CONNECTIONS))
        early.check()  # from here on, the storm's own handler keeps what was measured
        try:
            run_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the clock starts)
        except OSError as exc:
            raise RunError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from exc
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        observations: Observations | None = None
        if scale.active:
            result = await _storm_scaled(scenario, client, run_dir, progress, scale, early)
        else:
            observations = observations_for(scenario, before)
            result = await _storm(scenario, client, run_dir, progress, observations, early)
        state = await target_state(client)
    finally:
        await client.aclose()
    summary = build_summary(result, scenario, target=url, embedded=embedded, started_at=started_at)
    summary["environment"] = _environment(scale, client_class)
    summary["target_state_before"] = before
    summary["target_state"] = state
    if observations is not None:  # worker processes keep their answers to themselves
        attach(summary, observations, scenario)  # needs the target state; before the checks
        summary["timeline"]["model_usage"] = observations.model_usage()
    with_checks(summary, scenario.checks)
    write_summary(run_dir, summary)
    if summary.get("validation"):
        write_json(run_dir / "validation.json", summary["validation"])
    return summary


async def target_state(client: TargetClient, timeout_s: float = 5.0) -> dict[str, Any]:
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
    scenario: Scenario,
    client: TargetClient,
    run_dir: Path,
    progress: Progress,
    observations: Observations,
    early: _EarlyStop,
) -> RunResult:
    config = engine_config(scenario)
    sink = _Sink(run_dir, progress)

    async def on_phase(index: int) -> None:
        sink.refused(await apply_phase_setup(client, scenario.phases[index]))

    engine = Engine(
        client,
        RealClock(),
        Recorder(config.interval_ns),
        config,
        lambda stats: sink.interval(stats, engine.start_epoch_s, engine),
        observer=observations.observe,
        on_phase=on_phase,
    )
    early.forward_to(engine)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, engine)
            result = await engine.run(plan(scenario), closed_streams(scenario))
            tg.cancel_scope.cancel()
    finally:
        sink.close()
    result.setup_errors.extend(sink.setup_errors)
    return result


class _Sink:
    """Where a run's closed intervals and refused setups go: the interval log (opened with
    the run's start time at the first interval), live progress, and stderr."""

    def __init__(self, run_dir: Path, progress: Progress) -> None:
        self._path = run_dir / "latency.hlog"
        self._progress = progress
        self._writer: HlogWriter | None = None
        self.setup_errors: list[str] = []

    def interval(self, stats: IntervalStats, start_epoch_s: float, runner: Any) -> None:
        if self._writer is None:
            self._writer = HlogWriter(self._path, start_epoch_s)
        self._writer.write(stats)
        self._progress.show(stats, runner)

    def refused(self, messages: list[str]) -> None:
        for message in messages:
            click.echo(f"zg-load: target refused the setup of {message}", err=True)
        self.setup_errors.extend(messages)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._progress.close()


@dataclass(frozen=True)
class ScaleOut:
    """Run on several worker processes, or as Ray actors (``ray_address`` "" = a local Ray)."""

    workers: int = 1
    ray_address: str | None = None
    transport: TransportKind = DEFAULT_TRANSPORT

    @property
    def active(self) -> bool:
        return self.workers > 1 or self.ray_address is not None


class _Pool(Protocol):
    start_epoch_s: float | None

    @property
    def in_flight(self) -> int: ...

    def stop(self, reason: str = "interrupted") -> None: ...


async def _storm_scaled(
    scenario: Scenario,
    client: TargetClient,
    run_dir: Path,
    progress: Progress,
    scale: ScaleOut,
    early: _EarlyStop,
) -> RunResult:
    """The scenario on worker processes or Ray actors; phase setups stay in this process."""
    from zg_load.ray_workers import RayPool
    from zg_load.workers import WorkerPool, WorkerSettings

    url = getattr(client, "base_url", "")
    pool: WorkerPool | RayPool
    sink = _Sink(run_dir, progress)

    def on_interval(stats: IntervalStats) -> None:
        sink.interval(stats, pool.start_epoch_s or time.time(), pool)

    if scale.ray_address is None:
        settings = WorkerSettings(transport=scale.transport)
        pool = WorkerPool(scenario, url, scale.workers, on_interval=on_interval, settings=settings)
    else:
        pool = RayPool(
            scenario,
            url,
            scale.workers,
            scale.ray_address or None,
            on_interval=on_interval,
            settings=WorkerSettings(transport=scale.transport),
        )
    early.forward_to(pool)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, pool)
            tg.start_soon(_phase_setups, scenario, client, pool, sink)
            if isinstance(pool, WorkerPool):
                result = await pool.run()
            else:
                result = await anyio.to_thread.run_sync(pool.run)
            tg.cancel_scope.cancel()
    finally:
        sink.close()
    result.setup_errors.extend(sink.setup_errors)
    return result


async def _phase_setups(scenario: Scenario, client: TargetClient, pool: _Pool, sink: _Sink) -> None:
    """Apply phase setups (after the first) on the pool's shared start + each phase's start."""
    while pool.start_epoch_s is None:  # noqa: ASYNC110 (Ray sets it from its own thread)
        await anyio.sleep(0.02)
    for (start_s, _), phase in list(zip(scenario.phase_bounds(), scenario.phases, strict=True))[1:]:
        await anyio.sleep(max(0.0, pool.start_epoch_s + start_s - time.time()))
        sink.refused(await apply_phase_setup(client, phase))


class _EarlyStop:
    """Ctrl-C or SIGTERM before the load starts: noted at once, acted on at the next check,
    before anything is sent or written (no traceback from wherever the signal landed).
    Once the engine (or worker pool) exists, a signal stops it, as the storm's own handler
    (``_watch_signals``) does once it is installed: the run keeps what it measured."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signalled = False
        self._previous: dict[int, Any] = {}
        self._target: _Stoppable | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def forward_to(self, target: _Stoppable) -> None:
        """From now on a signal stops ``target``; one that came since the last check stops it
        at once (a partial run, exit 1)."""
        self._target, self._loop = target, asyncio.get_running_loop()
        if self.signalled:
            target.stop("interrupted")

    def __enter__(self) -> _EarlyStop:
        if threading.current_thread() is threading.main_thread():
            for signum in self._SIGNALS:
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _note(self, signum: int, frame: object) -> None:
        if self._target is not None and self._loop is not None:
            click.echo(STOPPING, err=True)
            with contextlib.suppress(RuntimeError):  # the loop has closed: the run is over
                self._loop.call_soon_threadsafe(self._target.stop, "interrupted")
        elif not self.signalled:
            click.echo("\nzg-load: stopping before the load starts", err=True)
        self.signalled = True

    def check(self) -> None:
        if self.signalled:
            raise RunError("interrupted before the load started: nothing was sent or written")


class _Stoppable(Protocol):
    def stop(self, reason: str = "interrupted") -> None: ...


async def _watch_signals(engine: _Stoppable) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            click.echo(STOPPING, err=True)
            engine.stop("interrupted")
