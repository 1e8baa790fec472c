"""Scale-out on one machine: worker processes, each running its exact share of one plan.

Owns the worker (``run_worker``: one event loop, client and engine) and the pool that
starts workers in processes, streams their intervals and merges them (``WorkerPool``).
Guarantees:
- worker ``i`` of ``N`` sends exactly ``plan(scenario, i, N)``, so together the workers
  send the one global plan; closed-loop user ``u`` runs in worker ``u % N``;
- all workers count from one shared instant (epoch seconds, converted once to each one's
  monotonic clock), chosen when every worker has started and opened its connections, so
  start-up never eats into the schedule and interval ``i`` is the same span everywhere;
- each worker gets ``ceil(max_in_flight / N)`` in flight; only worker 0 probes health;
- interval ``i`` is merged and handed to ``on_interval`` once every running worker has
  closed it, so the interval log and live progress follow the run;
- a worker that raises or dies leaves the others merged and the run partial (accounting:
  ``zg_load.merge``); ``stop`` (Ctrl-C) stops every worker, each reporting what it measured.
Processes are spawned, never forked: forking a process that runs an event loop is unsafe.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import anyio

from zg_load.clock import RealClock
from zg_load.engine import Engine, engine_config
from zg_load.interrupts import sigint_ignored
from zg_load.merge import (
    CohortWire,
    IntervalWire,
    WorkerReport,
    build_report,
    merge_interval,
    merge_reports,
    salvage_report,
    wire_cohort,
    wire_interval,
)
from zg_load.plan import ClosedStream, closed_streams, plan
from zg_load.recorder import IntervalStats, Recorder
from zg_load.result import RunResult
from zg_load.scenario import Scenario
from zg_load.schedule import ClosedLoop
from zg_load.transport import (
    DEFAULT_TRANSPORT,
    WARM_CONNECTIONS,
    TransportKind,
    make_client,
    warm,
)

NS_PER_S = 1_000_000_000
POLL_S = 0.02
START_MARGIN_S = 0.25  # from choosing the shared start to it: every worker sees it in time
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class WorkerSettings:
    """How workers run; the ``fail_*`` fields exist for tests of a worker that dies."""

    transport: TransportKind = DEFAULT_TRANSPORT
    warm_connections: int = WARM_CONNECTIONS  # opened before the shared start, as a run does
    fail_at_s: float | None = None  # fail this long after the start ...
    fail_worker: int = 0  # ... in this worker ...
    fail_hard: bool = False  # ... by exiting the process at once instead of raising


DEFAULT_SETTINGS = WorkerSettings()


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one worker needs; picklable."""

    scenario: Scenario
    url: str
    index: int
    workers: int
    start_epoch_s: float | None  # the shared start (epoch s); None: ask the start gate
    settings: WorkerSettings = DEFAULT_SETTINGS


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class StartGate(Protocol):
    """How a worker without a fixed start learns it: it says it is ready, then polls."""

    def ready(self) -> None: ...

    def start_epoch_s(self) -> float | None: ...


def closed_share(scenario: Scenario, index: int, workers: int) -> list[ClosedStream]:
    """The closed-loop users of worker ``index``: users ``u`` with ``u % workers == index``.

    Users are interchangeable (each only thinks and sends), so a worker numbers its own
    users from 0; over all workers the counts add up to each stream's users.
    """
    out = []
    for stream in closed_streams(scenario, index):
        users = len(range(index, stream.closed.users, workers))
        if users:
            c = stream.closed
            out.append(replace(stream, closed=ClosedLoop(users, c.think_s, c.duration_s)))
    return out


def run_worker(
    spec: WorkerSpec,
    stop: StopFlag | None = None,
    on_interval: Callable[[IntervalWire], None] | None = None,
    gate: StartGate | None = None,
) -> WorkerReport:
    """Run one worker's share in a new event loop (uvloop when installed); return its report.

    With ``on_interval`` each closed interval is handed over as it closes (streaming) and
    the report holds none; without it the report holds every interval. A spec without a
    start needs a ``gate``.
    """
    if spec.start_epoch_s is None and gate is None:
        raise ValueError("a worker spec without start_epoch_s needs a start gate")
    return anyio.run(_work, spec, stop, on_interval, gate, backend_options=_backend_options())


def _backend_options() -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


async def _work(
    spec: WorkerSpec,
    stop: StopFlag | None,
    on_interval: Callable[[IntervalWire], None] | None,
    gate: StartGate | None,
) -> WorkerReport:
    scenario, config = spec.scenario, engine_config(spec.scenario, spec.index, spec.workers)
    client = make_client(
        spec.settings.transport,
        spec.url,
        timeout_s=scenario.timeout_s,
        max_connections=config.max_in_flight,
    )
    kept: list[IntervalWire] = []
    cohorts: list[CohortWire] = []
    try:
        await warm(client, min(spec.settings.warm_connections, config.max_in_flight))
        start_epoch_s = spec.start_epoch_s or await _wait_for_start(gate)
        clock = RealClock()
        start_at_ns = clock.now_ns() + round((start_epoch_s - time.time()) * NS_PER_S)

        def keep(stats: IntervalStats) -> None:
            wire = wire_interval(stats, engine.in_flight)
            (on_interval or kept.append)(wire)

        engine = Engine(
            client,
            clock,
            Recorder(config.interval_ns),
            config,
            keep,
            on_cohort=lambda cohort: cohorts.append(wire_cohort(cohort)),
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, engine, stop)
            if spec.settings.fail_at_s is not None and spec.settings.fail_worker == spec.index:
                tg.start_soon(_fail, clock, start_at_ns, spec.settings)
            share = plan(scenario, spec.index, spec.workers)
            result = await engine.run(
                share, closed_share(scenario, spec.index, spec.workers), start_at_ns
            )
            tg.cancel_scope.cancel()
    finally:
        await client.aclose()
    return build_report(spec.index, result, kept, start_epoch_s, cohorts)


async def _wait_for_start(gate: StartGate | None) -> float:
    assert gate is not None
    gate.ready()
    while True:
        start_epoch_s = gate.start_epoch_s()
        if start_epoch_s is not None:
            return start_epoch_s
        await anyio.sleep(POLL_S)


async def _watch(engine: Engine, stop: StopFlag | None) -> None:
    if stop is None:
        return
    # A flag shared with another process or thread: polled, as nothing can await it here.
    while True:
        if stop.is_set():
            engine.stop("interrupted")
            return
        await anyio.sleep(POLL_S)


async def _fail(clock: RealClock, start_at_ns: int, settings: WorkerSettings) -> None:
    await clock.sleep_until(start_at_ns + round((settings.fail_at_s or 0.0) * NS_PER_S))
    if settings.fail_hard:
        os._exit(70)
    raise RuntimeError("injected failure")


def describe(exc: BaseException) -> str:
    """One line naming the first real error inside ``exc`` (task groups wrap them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the pool ------------------------------------------------------------------------------


class _Gate:
    """The start gate of one worker process: a message to the pool, then a shared value."""

    def __init__(self, index: int, out: Any, start: Any) -> None:
        self._index, self._out, self._start = index, out, start

    def ready(self) -> None:
        self._out.put(("ready", self._index, None))

    def start_epoch_s(self) -> float | None:
        value = float(self._start.value)
        return value if value > 0 else None


def _child(spec: WorkerSpec, out: Any, stop: Any, start: Any) -> None:
    """A worker process: runs its share and sends intervals, then its report, to ``out``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us from the parent as `stop`
    gate = _Gate(spec.index, out, start)
    try:
        report = run_worker(spec, stop, lambda w: out.put(("interval", spec.index, w)), gate)
    except BaseException as exc:
        out.put(("failed", spec.index, describe(exc)))
        raise SystemExit(1) from None
    out.put(("report", spec.index, report))


class WorkerPool:
    """Runs a scenario on ``workers`` processes of this machine and merges their results.

    The shared start is ``start_epoch_s`` when given; otherwise it is chosen (and set on
    the pool) once every worker is ready, ``START_MARGIN_S`` ahead. ``on_start`` gets it
    when it is chosen (to time phase setups from it); write the interval log's header with
    it. ``on_interval`` gets each merged interval.
    """

    def __init__(
        self,
        scenario: Scenario,
        url: str,
        workers: int,
        *,
        on_interval: Callable[[IntervalStats], None] | None = None,
        on_start: Callable[[float], None] | None = None,
        settings: WorkerSettings = DEFAULT_SETTINGS,
        start_epoch_s: float | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.scenario, self.url, self.workers = scenario, url, workers
        self.settings = settings
        self.start_epoch_s = start_epoch_s
        self._ready_timeout_s = ready_timeout_s
        self._on_interval = on_interval
        self._on_start = on_start
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._start_value = self._ctx.Value("d", start_epoch_s or 0.0)
        self._ready: set[int] = set()
        self._parts: list[dict[int, IntervalWire]] = [{} for _ in range(workers)]
        self._reports: dict[int, WorkerReport] = {}
        self._failed: dict[int, str] = {}
        self._exited: set[int] = set()
        self._in_flight = [0] * workers
        self._next = 0  # the next interval to merge and hand on

    @property
    def in_flight(self) -> int:
        """Requests in flight over all workers, as of the intervals they last closed."""
        return sum(self._in_flight)

    def stop(self, reason: str = "interrupted") -> None:
        """Ask every worker to stop sending; each reports what it measured, as interrupted."""
        self._stop.set()

    async def run(self) -> RunResult:
        """Start the workers, follow them until they all end, and merge their results."""
        out = self._ctx.Queue()
        procs = [self._spawn(i, out) for i in range(self.workers)]
        if self.start_epoch_s is not None and self._on_start is not None:
            self._on_start(self.start_epoch_s)
        deadline = time.monotonic() + self._ready_timeout_s
        try:
            while any(p.is_alive() for p in procs):
                exited = {i for i, p in enumerate(procs) if not p.is_alive()}
                self._take(out, wait_s=0.0)  # an exited worker's last words are queued by now
                self._exited |= exited
                if self.start_epoch_s is None:
                    self._open_gate(procs, time.monotonic() >= deadline)
                await anyio.sleep(POLL_S)
            self._take(out, wait_s=0.2)  # what the last ones sent just before exiting
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join(5.0)
            out.close()
        return self._finish(procs)

    def _spawn(self, index: int, out: Any) -> BaseProcess:
        spec = WorkerSpec(
            self.scenario, self.url, index, self.workers, self.start_epoch_s, self.settings
        )
        proc = self._ctx.Process(
            target=_child,
            args=(spec, out, self._stop, self._start_value),
            name=f"zg-load-worker-{index}",
        )
        proc.daemon = True  # never outlive the parent
        with sigint_ignored():  # from its first import: a Ctrl-C reaches us as `stop`
            proc.start()
        return proc

    def _open_gate(self, procs: list[BaseProcess], late: bool) -> None:
        """Choose the shared start once every worker is ready (or, when late, without the
        ones that are not: they are stopped and count as dead)."""
        waiting = [i for i in range(self.workers) if i not in self._ready and not self._done(i)]
        if waiting and not late:
            return
        for i in waiting:
            self._failed[i] = f"not ready within {self._ready_timeout_s:g} s"
            procs[i].terminate()
        self.start_epoch_s = time.time() + START_MARGIN_S
        self._start_value.value = self.start_epoch_s
        if self._on_start is not None:
            self._on_start(self.start_epoch_s)

    def _take(self, out: Any, wait_s: float) -> None:
        while True:
            try:
                kind, index, body = out.get(timeout=wait_s) if wait_s else out.get_nowait()
            except queue.Empty:
                return
            if kind == "ready":
                self._ready.add(index)
            elif kind == "interval":
                self._parts[index][body.index] = body
                self._in_flight[index] = body.in_flight
            elif kind == "report":
                self._reports[index] = body
                self._in_flight[index] = 0
            else:
                self._failed[index] = body
            self._emit(final=False)

    def _done(self, index: int) -> bool:
        return index in self._reports or index in self._failed or index in self._exited

    def _emit(self, final: bool) -> None:
        """Merge and hand on every interval that every running worker has closed."""
        while True:
            i = self._next
            if not final and not all(
                i in parts or self._done(w) for w, parts in enumerate(self._parts)
            ):
                return
            present = [parts[i] for parts in self._parts if i in parts]
            if not present:
                return
            if self._on_interval is not None:
                self._on_interval(merge_interval(present))
            self._next += 1

    def _finish(self, procs: list[BaseProcess]) -> RunResult:
        if self.start_epoch_s is None:  # every worker ended before it was ready
            self.start_epoch_s = time.time()
        self._emit(final=True)
        reports = []
        for i, proc in enumerate(procs):
            parts = [self._parts[i][k] for k in sorted(self._parts[i])]
            report = self._reports.get(i)
            if report is None:
                reason = self._failed.get(i) or _exit_reason(proc.exitcode)
                phases = len(self.scenario.phases)
                report = salvage_report(i, self.start_epoch_s, parts, reason, phases)
            reports.append(replace(report, intervals=parts))
        return merge_reports(reports, self.workers, self.scenario)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code} without a report"


async def run_workers(
    scenario: Scenario,
    url: str,
    workers: int,
    on_interval: Callable[[IntervalStats], None] | None = None,
    **options: Any,
) -> RunResult:
    """Run ``scenario`` against ``url`` on ``workers`` processes; see ``WorkerPool``."""
    return await WorkerPool(scenario, url, workers, on_interval=on_interval, **options).run()
