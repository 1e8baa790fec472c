"""Worker processes against the real reference service on 127.0.0.1: the same counts as
one process, an interval log that adds up, and a worker that dies leaving a partial run."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from zg_load.embedded import EmbeddedService, start_embedded
from zg_load.hdr import Histogram
from zg_load.plan import closed_streams
from zg_load.recorder import IntervalStats
from zg_load.result import RunResult
from zg_load.scenario import Scenario, parse_scenario
from zg_load.summary import accounting
from zg_load.workers import WorkerPool, WorkerSettings, closed_share, engine_config

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

# 2 s at 200/s (exactly 400 requests) against a service with capacity to spare.
STEADY = """\
name = "workers"
seed = 5
interval = "500ms"
timeout = "2s"
drain = "2s"
max_in_flight = 512

[target]
budget_usd = 1000000.0

[service]
approval_workers = 64
approval_service_time = "0s"

[[mixes.mixed]]
op = "approval"
priority = { 1 = 1, 3 = 1, 5 = 1 }
cost_usd = [0.001, 0.002]
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
    return parse_scenario(STEADY, source="steady.toml")


@pytest.fixture(scope="module")
def service(scenario: Scenario) -> Iterator[EmbeddedService]:
    svc = start_embedded(scenario.service)
    try:
        yield svc
    finally:
        svc.stop()


async def pooled(
    scenario: Scenario, url: str, workers: int, settings: WorkerSettings = SETTINGS
) -> tuple[RunResult, list[IntervalStats]]:
    logged: list[IntervalStats] = []
    pool = WorkerPool(scenario, url, workers, on_interval=logged.append, settings=settings)
    with anyio.fail_after(60):
        return await pool.run(), logged


def ok_total(result: RunResult) -> int:
    return sum(n for (_, _, outcome), n in result.recorder.counts().items() if outcome == "ok")


@pytest.mark.parametrize("workers", [1, 2])
async def test_workers_send_the_whole_plan_exactly_once(
    scenario: Scenario, service: EmbeddedService, workers: int
) -> None:
    result, logged = await pooled(scenario, service.url, workers)
    t = result.tally
    assert (t.intended, t.sent, t.ok, t.in_flight, t.not_sent) == (400, 400, 400, 0, 0)
    assert result.phase_intended == [400] and result.phase_sent == [400]
    assert accounting(result)["identity_holds"]
    assert not result.partial and result.stop_reason == "completed"
    # The interval log (each merged interval, as handed on) holds every completion once.
    assert sum(sum(s.counts.values()) for s in logged) == t.ok == ok_total(result)
    assert [s.index for s in logged] == list(range(len(logged)))
    assert [v.index for v in result.intervals] == [s.index for s in logged]
    assert sum(result.intended_at.values()) == 400 == sum(result.sent_at.values())
    # Health probes and status samples run in worker 0 only: once a second, as alone.
    assert result.probes_total == 2 and result.probes_ok == 2
    assert result.recorder.lag().count == 400
    merged = Histogram()
    for key in result.recorder.keys():
        merged.merge(result.recorder.latency(key))
        assert result.recorder.service(key).count == result.recorder.latency(key).count
    assert merged.count == 400


async def test_a_worker_that_raises_leaves_the_others_merged(
    scenario: Scenario, service: EmbeddedService
) -> None:
    settings = WorkerSettings(warm_connections=8, fail_at_s=0.9, fail_worker=1)
    result, logged = await pooled(scenario, service.url, 2, settings)
    t = result.tally
    assert result.partial
    assert result.stop_reason == "worker 1 died: RuntimeError: injected failure"
    assert accounting(result)["identity_holds"]
    # Worker 0 sent its 200; worker 1's share of 200 counts as intended, and only the
    # completions it streamed before it died (intervals closed by 0.5 s) count as sent.
    assert t.intended == 400
    assert 200 + 40 <= t.sent < 400
    assert t.ok == t.sent == ok_total(result)
    assert sum(sum(s.counts.values()) for s in logged) == t.ok


async def test_a_killed_worker_is_reported_by_its_exit(
    scenario: Scenario, service: EmbeddedService
) -> None:
    settings = WorkerSettings(warm_connections=8, fail_at_s=0.2, fail_worker=0, fail_hard=True)
    result, _ = await pooled(scenario, service.url, 2, settings)
    assert result.partial
    assert result.stop_reason == "worker 0 died: exited with code 70 without a report"
    assert accounting(result)["identity_holds"]
    assert result.tally.intended == 400 and 200 <= result.tally.sent < 400
    assert result.probes_total == 0  # the prober was worker 0


async def test_stop_ends_every_worker_with_what_it_measured(
    scenario: Scenario, service: EmbeddedService
) -> None:
    def stop_after_the_first(stats: IntervalStats) -> None:
        if stats.index == 0:
            pool.stop()  # as the CLI does on Ctrl-C

    starts: list[float] = []
    pool = WorkerPool(
        scenario,
        service.url,
        2,
        on_interval=stop_after_the_first,
        on_start=starts.append,
        settings=SETTINGS,
    )
    assert pool.start_epoch_s is None
    with anyio.fail_after(60):
        result = await pool.run()
    assert starts == [pool.start_epoch_s] == [result.start_epoch_s]
    assert result.partial and result.stop_reason == "interrupted"
    assert accounting(result)["identity_holds"]
    assert 100 <= result.tally.sent < 400


def test_closed_users_are_split_without_loss() -> None:
    text = STEADY.replace('rate = "200/s"', 'arrival = "closed"\nusers = 7\nthink = "10ms"')
    sc = parse_scenario(text)
    users = [sum(s.closed.users for s in closed_share(sc, i, 3)) for i in range(3)]
    assert users == [3, 2, 2] and sum(users) == closed_streams(sc)[0].closed.users
    assert closed_share(sc, 0, 8) and not closed_share(sc, 7, 8)


def test_engine_config_splits_the_in_flight_bound_and_probes_once() -> None:
    sc = parse_scenario(STEADY)
    assert engine_config(sc).max_in_flight == 512
    assert [engine_config(sc, i, 3).max_in_flight for i in range(3)] == [171, 171, 171]
    assert engine_config(sc, 0, 3).health_probe_interval_s == 1.0
    assert engine_config(sc, 1, 3).health_probe_interval_s is None
