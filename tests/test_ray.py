"""Ray actors run the worker code against the real reference service, on a local Ray
started by the test: the same counts as one process, and a failing actor leaves a
partial run with the others merged."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from zg_load.embedded import EmbeddedService, start_embedded
from zg_load.merge import merge_reports
from zg_load.recorder import IntervalStats
from zg_load.scenario import Scenario, parse_scenario
from zg_load.summary import accounting
from zg_load.workers import WorkerSettings, WorkerSpec, run_worker

ray = pytest.importorskip("ray")
from zg_load.ray_workers import RayPool, run_ray  # noqa: E402  (needs ray)

pytestmark = pytest.mark.slow

# 2 s at 200/s: exactly 400 requests, against a service with capacity to spare.
STEADY = """\
name = "ray"
seed = 9
interval = "500ms"
timeout = "2s"
drain = "2s"

[target]
budget_usd = 1000000.0

[service]
approval_workers = 64
approval_service_time = "0s"

[[mixes.mixed]]
op = "approval"
priority = { 2 = 1, 4 = 1 }
cost_usd = 0.001
task = "t"

[[phases]]
name = "steady"
duration = "2s"
[[phases.streams]]
rate = "200/s"
mix = "mixed"
"""

SETTINGS = WorkerSettings(warm_connections=8)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return parse_scenario(STEADY, source="ray.toml")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def service(scenario: Scenario) -> Iterator[EmbeddedService]:
    svc = start_embedded(scenario.service)
    try:
        yield svc
    finally:
        svc.stop()


def test_ray_actors_give_the_counts_of_one_process(
    scenario: Scenario, service: EmbeddedService, local_ray: None
) -> None:
    spec = WorkerSpec(scenario, service.url, 0, 1, time.time() + 0.5, SETTINGS)
    single = merge_reports([run_worker(spec)], 1, scenario)
    logged: list[IntervalStats] = []
    merged = run_ray(scenario, service.url, 2, on_interval=logged.append, settings=SETTINGS)
    for result in (single, merged):
        t = result.tally
        assert (t.intended, t.sent, t.ok, t.in_flight) == (400, 400, 400, 0)
        assert result.phase_intended == [400] == result.phase_sent
        assert accounting(result)["identity_holds"] and not result.partial
        assert result.probes_total == 2
    assert merged.recorder.keys() == single.recorder.keys()
    assert merged.recorder.counts().keys() == single.recorder.counts().keys()
    assert sum(merged.recorder.counts().values()) == 400
    assert sum(sum(s.counts.values()) for s in logged) == 400
    assert [s.index for s in logged] == [v.index for v in merged.intervals]
    assert sum(merged.intended_at.values()) == 400


def test_a_failing_actor_leaves_a_partial_run(
    scenario: Scenario, service: EmbeddedService, local_ray: None
) -> None:
    settings = WorkerSettings(warm_connections=8, fail_at_s=0.5, fail_worker=1)
    result = RayPool(scenario, service.url, 2, settings=settings).run()
    assert result.partial
    assert result.stop_reason == "worker 1 died: RuntimeError: injected failure"
    assert accounting(result)["identity_holds"]
    # Nothing streams from actors, so the dead one's share is all intended, not sent.
    t = result.tally
    assert (t.intended, t.sent, t.ok) == (400, 200, 200)
