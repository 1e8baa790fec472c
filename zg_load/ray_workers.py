"""Scale-out over a Ray cluster: the same worker code as worker processes, as Ray actors.

Owns starting one actor per worker, giving each its ``WorkerSpec`` and gathering their
reports; merging is ``zg_load.merge``'s, so results merge exactly as worker processes'
do. Guarantees:
- the shared start is chosen once every actor exists (imports done), ``lead_s`` ahead,
  so each worker warms its connections and then waits for it;
- intervals are not streamed: each report holds its intervals, and ``on_interval`` gets
  the merged intervals, in order, when every worker has reported;
- an actor that raises or dies leaves the others' results merged and the run partial;
  ``stop`` (from any thread) asks every actor to stop and report what it measured.
Ray is optional (``pip install 'zg-load[ray]'``). Every node must be able to import
``zg_load`` (install it there, or pass a ``runtime_env`` in ``init_options``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from zg_load.merge import WorkerReport, merge_reports, merged_intervals, salvage_report
from zg_load.recorder import IntervalStats
from zg_load.result import RunResult
from zg_load.scenario import Scenario
from zg_load.workers import DEFAULT_SETTINGS, WorkerSettings, WorkerSpec, describe, run_worker

POLL_S = 0.2
READY_TIMEOUT_S = 120.0


class RayUnavailable(RuntimeError):
    """Ray is not installed: ``pip install 'zg-load[ray]'``."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable("Ray is not installed: pip install 'zg-load[ray]'") from exc
    return ray


class _WorkerActor:
    """One worker; ``run`` blocks in one actor thread while ``stop`` arrives on another."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def ready(self) -> bool:
        return True

    def run(self, spec: WorkerSpec) -> WorkerReport:
        return run_worker(spec, self._stop)

    def stop(self) -> None:
        self._stop.set()


class RayPool:
    """Runs a scenario on ``workers`` Ray actors and merges their results.

    Connects to ``address`` (a running cluster; "auto" finds the local one) or, when it
    is None, starts a local Ray for the run and shuts it down after. If Ray is already
    initialised in this process, that connection is used and left open.
    """

    def __init__(
        self,
        scenario: Scenario,
        url: str,
        workers: int,
        address: str | None = None,
        *,
        on_interval: Callable[[IntervalStats], None] | None = None,
        settings: WorkerSettings = DEFAULT_SETTINGS,
        lead_s: float = 3.0,
        cpus_per_worker: float = 1.0,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.scenario, self.url, self.workers, self.address = scenario, url, workers, address
        self.settings = settings
        self.start_epoch_s: float | None = None
        self._on_interval = on_interval
        self._lead_s = lead_s
        self._cpus = cpus_per_worker
        self._init_options = init_options or {}
        self._stop = threading.Event()

    @property
    def in_flight(self) -> int:
        """Not streamed from actors: 0 until the end."""
        return 0

    def stop(self, reason: str = "interrupted") -> None:
        """Ask every actor to stop sending (thread-safe); each reports what it measured."""
        self._stop.set()

    def run(self) -> RunResult:
        """Start the actors, wait for their reports and merge them. Blocks."""
        ray = _ray()
        started_here = not ray.is_initialized()
        if started_here:
            options = {"include_dashboard": False, "log_to_driver": False}
            ray.init(address=self.address, **(options | self._init_options))
        try:
            return self._run(ray)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray: Any) -> RunResult:
        actor_class = ray.remote(num_cpus=self._cpus, max_concurrency=2)(_WorkerActor)
        actors = [actor_class.remote() for _ in range(self.workers)]
        try:
            ray.get([a.ready.remote() for a in actors], timeout=READY_TIMEOUT_S)
            self.start_epoch_s = time.time() + self._lead_s
            reports = self._gather(ray, actors, self.start_epoch_s)
        finally:
            for actor in actors:
                ray.kill(actor)
        result = merge_reports(reports, self.workers, self.scenario)
        if self._on_interval is not None:
            for stats in merged_intervals(reports):
                self._on_interval(stats)
        return result

    def _gather(self, ray: Any, actors: list[Any], start_epoch_s: float) -> list[WorkerReport]:
        pending = {
            actor.run.remote(
                WorkerSpec(self.scenario, self.url, i, self.workers, start_epoch_s, self.settings)
            ): i
            for i, actor in enumerate(actors)
        }
        reports: list[WorkerReport] = []
        stopping = False
        while pending:
            if self._stop.is_set() and not stopping:
                stopping = True
                for actor in actors:
                    actor.stop.remote()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                index = pending.pop(ref)
                try:
                    reports.append(ray.get(ref))
                except Exception as exc:  # the actor raised, or died
                    reason = describe(getattr(exc, "cause", None) or exc)
                    phases = len(self.scenario.phases)
                    reports.append(salvage_report(index, start_epoch_s, [], reason, phases))
        return sorted(reports, key=lambda r: r.index)


def run_ray(
    scenario: Scenario,
    url: str,
    workers: int,
    address: str | None = None,
    on_interval: Callable[[IntervalStats], None] | None = None,
    **options: Any,
) -> RunResult:
    """Run ``scenario`` against ``url`` on ``workers`` Ray actors; see ``RayPool``. Blocks."""
    return RayPool(scenario, url, workers, address, on_interval=on_interval, **options).run()
