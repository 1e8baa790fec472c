"""Engine tests on virtual time: exact counts and hand-computed latencies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
import pytest

from zg_load.client import Answer
from zg_load.engine import Engine, EngineConfig
from zg_load.outcome import Outcome
from zg_load.plan import Planned
from zg_load.recorder import Recorder
from zg_load.result import RunResult
from zg_load.schedule import Constant, starts
from zg_load.testing import ManualClock, ScriptedClient

pytestmark = pytest.mark.anyio
S = 1_000_000_000
MS_US = 1000


def planned(rate_per_s: float, duration_s: float, priority: int = 3) -> Iterator[Planned]:
    for t in starts(Constant(rate_per_s, duration_s)):
        yield Planned(t, 0, "approval", priority, 0.01, "t", "a")


async def run(
    client_kw: dict[str, object],
    cfg: EngineConfig,
    reqs: Iterator[Planned],
    client_class: type[ScriptedClient] = ScriptedClient,
) -> RunResult:
    clock = ManualClock()
    with clock.installed():
        client = client_class(clock, **client_kw)  # type: ignore[arg-type]
        engine = Engine(client, clock, Recorder(S), cfg)
        with anyio.fail_after(3600):  # virtual seconds
            return await engine.run(reqs)


def identity(r: RunResult) -> None:
    t = r.tally
    assert t.intended == t.sent + t.not_sent
    assert t.sent == t.ok + t.refused + t.error + t.timeout + t.transport + t.in_flight


def within_hdr(got: int | None, expected_us: int) -> bool:
    # 3 significant figures: a bucket's highest equivalent value is at most 1/1024 above.
    return got is not None and expected_us <= got <= expected_us + expected_us // 1024 + 1


async def test_stall_is_seen_in_full_from_the_intended_start() -> None:
    cfg = EngineConfig(duration_ns=10 * S, health_probe_interval_s=None)
    r = await run({"service_time_s": 0.001, "stalls": [(4.0, 6.0)]}, cfg, planned(1000, 10))
    identity(r)
    assert (r.tally.intended, r.tally.sent, r.tally.ok, r.tally.in_flight) == (
        10000,
        10000,
        10000,
        0,
    )
    lat = r.recorder.latency(("approval", 3, "ok"))
    # 8000 requests take 1 ms; the 2000 intended during the stall finish at 6.001 s,
    # so their latencies are 2001, 2000, ..., 2 ms.
    assert lat.count == 10000
    assert lat.min_us == 1 * MS_US
    assert lat.percentile(50) == 1 * MS_US
    assert within_hdr(lat.percentile(90), 1001 * MS_US)
    assert within_hdr(lat.percentile(99), 1901 * MS_US)
    assert within_hdr(lat.percentile(99.9), 1991 * MS_US)
    assert lat.percentile(100) == lat.max_us == 2001 * MS_US
    assert r.recorder.lag().max_us == 0  # virtual time: every send exactly on schedule


async def test_bounded_in_flight_keeps_service_time_small_but_not_latency() -> None:
    cfg = EngineConfig(duration_ns=10 * S, max_in_flight=10, health_probe_interval_s=None)
    r = await run({"service_time_s": 0.001, "stalls": [(4.0, 6.0)]}, cfg, planned(1000, 10))
    identity(r)
    assert (r.tally.intended, r.tally.sent, r.tally.ok) == (10000, 10000, 10000)
    lat = r.recorder.latency(("approval", 3, "ok"))
    svc = r.recorder.service(("approval", 3, "ok"))
    assert svc.percentile(99) == 1 * MS_US  # only the 10 stuck in the server took long
    assert svc.max_us == 2001 * MS_US  # sent at 4.000 s, done at 6.001 s
    p99 = lat.percentile(99)
    assert p99 is not None and p99 > 1800 * MS_US  # the backlog behind the stall is counted
    assert lat.max_us == 2001 * MS_US  # intended at 4.000 s, done at 6.001 s
    assert r.recorder.lag().max_us is not None and r.recorder.lag().max_us > 1000 * MS_US


async def test_overloaded_run_reports_its_shortfall() -> None:
    # 100 in flight, each taking 1 s: only 200 of the 2000 intended can be sent in 2 s.
    cfg = EngineConfig(
        duration_ns=2 * S, max_in_flight=100, drain_s=2.0, health_probe_interval_s=None
    )
    r = await run({"service_time_s": 1.0}, cfg, planned(1000, 2))
    identity(r)
    t = r.tally
    assert (t.intended, t.sent, t.not_sent, t.ok, t.in_flight, t.drained) == (
        2000,
        200,
        1800,
        200,
        0,
        100,
    )
    assert r.phase_intended == [2000] and r.phase_sent == [200]


async def test_requests_hanging_at_the_end_are_measured_as_timeouts() -> None:
    # The drain lasts at least the timeout, so a request that hangs near the end is
    # recorded (as a timeout, from its intended start), not left out as in flight.
    cfg = EngineConfig(duration_ns=2 * S, timeout_s=5.0, drain_s=0.5, health_probe_interval_s=None)
    r = await run({"service_time_s": 10.0}, cfg, planned(10, 2))
    identity(r)
    t = r.tally
    assert (t.intended, t.sent, t.ok, t.timeout, t.in_flight) == (20, 20, 0, 20, 0)
    assert r.recorder.latency(("approval", 3, "timeout")).min_us == 5_000_000


async def test_run_stopped_with_requests_in_flight_lists_them() -> None:
    clock = ManualClock()
    cfg = EngineConfig(duration_ns=10 * S, health_probe_interval_s=None)
    with clock.installed():
        engine = Engine(ScriptedClient(clock, service_time_s=10.0), clock, Recorder(S), cfg)

        async def stopper() -> None:
            await clock.sleep_until(1_550_000_000)
            engine.stop("interrupted")

        async with anyio.create_task_group() as tg:
            tg.start_soon(stopper)
            r = await engine.run(planned(10, 10))
    identity(r)
    t = r.tally
    assert r.partial
    assert (t.intended, t.sent, t.ok, t.in_flight, t.not_sent) == (16, 16, 0, 16, 0)
    assert r.recorder.counts() == {}  # nothing recorded for requests that never finished


async def test_timeouts_are_their_own_outcome_and_never_lower_success_latency() -> None:
    cfg = EngineConfig(duration_ns=1 * S, timeout_s=0.5, drain_s=1.0, health_probe_interval_s=None)
    r = await run({"service_time_s": 0.001, "stalls": [(0.2, 0.9)]}, cfg, planned(10, 1))
    identity(r)
    # Requests at 0.2 .. 0.8 s are answered at 0.901 s: those sent at 0.2, 0.3 and 0.4 s
    # would wait over 0.5 s and time out; 0.5 .. 0.8 s take 401 .. 101 ms.
    assert (r.tally.ok, r.tally.timeout) == (7, 3)
    assert r.recorder.latency(("approval", 3, "timeout")).count == 3
    assert r.recorder.latency(("approval", 3, "timeout")).min_us == 500 * MS_US
    assert r.recorder.latency(("approval", 3, "ok")).max_us == 401 * MS_US


async def test_refusals_are_counted_by_priority_and_reason() -> None:
    reqs = [Planned(i * S // 100, 0, "approval", 1 + i % 5, 0.01, "t", "a") for i in range(100)]
    cfg = EngineConfig(duration_ns=1 * S, health_probe_interval_s=None)
    refuse = {1: "overloaded", 2: "budget_exceeded"}
    r = await run({"refuse": lambda p, _t: refuse.get(p)}, cfg, iter(reqs))
    identity(r)
    assert (r.tally.ok, r.tally.refused) == (60, 40)
    assert dict(r.refusals) == {
        ("approval", 1, "overloaded"): 20,
        ("approval", 2, "budget_exceeded"): 20,
    }


async def test_stop_keeps_what_was_measured_and_marks_the_run_partial() -> None:
    clock = ManualClock()
    cfg = EngineConfig(duration_ns=10 * S, health_probe_interval_s=None)
    with clock.installed():
        engine = Engine(ScriptedClient(clock, service_time_s=0.001), clock, Recorder(S), cfg)

        async def stopper() -> None:
            await clock.sleep_until(1_500_000_000)
            engine.stop("interrupted")

        async with anyio.create_task_group() as tg:
            tg.start_soon(stopper)
            r = await engine.run(planned(100, 10))
    identity(r)
    assert r.partial and r.stop_reason == "interrupted"
    assert r.tally.intended == 151  # starts at 0, 10 ms, ..., 1500 ms
    assert r.tally.sent + r.tally.not_sent == 151


async def test_health_probes_are_counted() -> None:
    cfg = EngineConfig(duration_ns=5 * S, health_probe_interval_s=1.0)
    r = await run({"stalls": [(2.0, 3.5)]}, cfg, planned(10, 5))
    # probes at 0,1,2,3,4 s; the one at 2 s waits until 3.5 s (> 1 s timeout), the one
    # at 3 s until 3.501 s (0.501 s, in time).
    assert (r.probes_total, r.probes_ok) == (5, 4)


async def test_closed_loop_users_wait_for_answers_and_think() -> None:
    import random

    from zg_load.plan import ClosedStream, _MixSampler
    from zg_load.scenario import OpSpec
    from zg_load.schedule import ClosedLoop

    op = OpSpec("approval", 1.0, ((2, 1.0),), (0.01, 0.01), "t", ("a",))
    # 2 users, 10 ms service, 40 ms think, for 1 s: each user starts every 50 ms -> 20 each.
    stream = ClosedStream(0, 0, ClosedLoop(2, 0.040, 1.0), _MixSampler((op,), random.Random(0)))
    clock = ManualClock()
    cfg = EngineConfig(duration_ns=1 * S, health_probe_interval_s=None)
    with clock.installed():
        engine = Engine(ScriptedClient(clock, service_time_s=0.010), clock, Recorder(S), cfg)
        with anyio.fail_after(60):
            r = await engine.run(iter(()), [stream])
    identity(r)
    assert (r.tally.intended, r.tally.sent, r.tally.ok) == (40, 40, 40)
    lat = r.recorder.latency(("approval", 2, "ok"))
    assert lat.min_us == lat.max_us == 10 * MS_US


async def test_fast_schedules_are_sent_in_batches_not_busy_polled() -> None:
    # 5,000/s is a request every 0.2 ms; the scheduler wakes at most once per ms
    # (min_sleep) and sends every request that fell due, recording their lag.
    clock = ManualClock()
    cfg = EngineConfig(duration_ns=S // 100, health_probe_interval_s=None, min_sleep_ns=1_000_000)
    with clock.installed():
        client = ScriptedClient(clock, service_time_s=0.001)
        engine = Engine(client, clock, Recorder(S), cfg)
        with anyio.fail_after(60):
            r = await engine.run(planned(5000, 0.01))
    identity(r)
    assert (r.tally.intended, r.tally.sent, r.tally.ok) == (50, 50, 50)
    send_times = sorted({t for t, _ in client.calls})
    # one batch per millisecond: 0, 1, ..., 10 ms (9.2 .. 9.8 ms go out at the last wake)
    assert send_times == [pytest.approx(k / 1000) for k in range(11)]
    lag = r.recorder.lag()
    assert lag.min_us == 0 and lag.max_us == 800  # the request at +0.2 ms waits for +1 ms


class _EarlyClock(ManualClock):
    """Wakes the engine 300 us before each deadline, as uvloop's timers can (its sleeps
    round); ``exact`` is the same time for the scripted service, whose sleeps are exact."""

    async def sleep_until(self, deadline_ns: int) -> None:
        early_ns = deadline_ns - 300_000
        await super().sleep_until(early_ns if early_ns > self.now_ns() else deadline_ns)

    @property
    def exact(self) -> ManualClock:
        clock = self

        class Exact(ManualClock):
            def now_ns(self) -> int:
                return clock.now_ns()

            async def sleep_until(self, deadline_ns: int) -> None:
                await ManualClock.sleep_until(clock, deadline_ns)

        return Exact()


async def test_closed_loop_users_never_send_before_their_intended_start() -> None:
    import random

    from zg_load.plan import ClosedStream, _MixSampler
    from zg_load.scenario import OpSpec
    from zg_load.schedule import ClosedLoop

    op = OpSpec("approval", 1.0, ((2, 1.0),), (0.01, 0.01), "t", ("a",))
    stream = ClosedStream(0, 0, ClosedLoop(2, 0.040, 1.0), _MixSampler((op,), random.Random(0)))
    clock = _EarlyClock()
    cfg = EngineConfig(duration_ns=1 * S, health_probe_interval_s=None)
    with clock.installed():
        client = ScriptedClient(clock.exact, service_time_s=0.001)
        engine = Engine(client, clock, Recorder(S), cfg)
        with anyio.fail_after(60):
            r = await engine.run(iter(()), [stream])
    identity(r)
    # each user starts every 41 ms (1 ms answer + 40 ms think): 25 each, none early
    assert (r.tally.intended, r.tally.ok) == (50, 50)
    lat = r.recorder.latency(("approval", 2, "ok"))
    assert lat.min_us == lat.max_us == 1 * MS_US


async def test_an_answer_delivered_inside_a_send_keeps_the_in_flight_bound() -> None:
    import asyncio

    from zg_load.fasthttp import FastHttpClient

    class AnswersEveryThirdAtOnce(FastHttpClient):
        """The fast path's transport; every third request is refused inside its send."""

        def __init__(self) -> None:
            super().__init__("http://127.0.0.1:9")  # never connects: send is scripted
            self.sends = 0
            self.most_in_flight = 0

        def sender(self) -> Callable[[bytes, Callable[[int, bytes], None]], None]:
            return self.scripted_send

        def scripted_send(self, request: bytes, on_done: Callable[[int, bytes], None]) -> None:
            self.sends += 1
            self.most_in_flight = max(self.most_in_flight, engine.in_flight)
            if self.sends % 3 == 0:
                on_done(503, b'{"error": {"type": "overloaded"}}')
            else:
                asyncio.get_running_loop().call_later(0.004, on_done, 200, b"{}")

    clock = ManualClock()
    cfg = EngineConfig(duration_ns=2 * S, max_in_flight=8, health_probe_interval_s=None)
    with clock.installed():
        client = AnswersEveryThirdAtOnce()
        engine = Engine(client, clock, Recorder(S), cfg)
        with anyio.fail_after(3600):
            r = await engine.run(planned(20_000, 2))
    identity(r)
    assert client.most_in_flight == 8  # reached, never exceeded
    assert r.tally.sent == client.sends
    assert r.tally.ok + r.tally.refused + r.tally.error == r.tally.sent - r.tally.in_flight


@dataclass
class TimesOutItself(ScriptedClient):
    """Answers TIMEOUT by itself after ``own_timeout_s``, and says so."""

    own_timeout_s: float = 0.3

    @property
    def enforces_timeout_s(self) -> float:
        return self.own_timeout_s

    async def request_approval(
        self,
        task_description: str,
        estimated_cost: float,
        priority: int,
        agent_id: str | None = None,
    ) -> Answer:
        with anyio.move_on_after(self.own_timeout_s):
            return await super().request_approval(task_description, estimated_cost, priority)
        return Answer(Outcome.TIMEOUT, 0, "own timeout")


@pytest.mark.parametrize(
    ("client_timeout_s", "reason", "timeout_ms"),
    [
        (0.3, "own timeout", 300),  # within the run's 0.5 s: the client's own answers count
        (2.0, "timeout", 500),  # longer than the run's: the Engine cuts the calls itself
    ],
)
async def test_a_client_timeout_counts_when_it_is_within_the_run_timeout(
    client_timeout_s: float, reason: str, timeout_ms: int
) -> None:
    cfg = EngineConfig(duration_ns=1 * S, timeout_s=0.5, drain_s=1.0, health_probe_interval_s=None)
    client_kw: dict[str, object] = {"service_time_s": 10.0, "own_timeout_s": client_timeout_s}
    r = await run(client_kw, cfg, planned(10, 1), TimesOutItself)
    identity(r)
    assert (r.tally.sent, r.tally.timeout, r.tally.in_flight) == (10, 10, 0)
    assert r.errors == Counter({f"timeout: {reason}": 10})
    assert r.recorder.latency(("approval", 3, "timeout")).min_us == timeout_ms * MS_US


async def test_a_client_that_says_it_times_out_by_itself_is_trusted() -> None:
    # This one says so but never does: the Engine puts no timer of its own around its
    # calls, so they are still in flight when the drain (1.1 x the timeout + 0.1 s) ends.
    class SaysButDoesNot(ScriptedClient):
        enforces_timeout_s = 0.5

    cfg = EngineConfig(duration_ns=1 * S, timeout_s=0.5, drain_s=0.1, health_probe_interval_s=None)
    r = await run({"service_time_s": 10.0}, cfg, planned(10, 1), SaysButDoesNot)
    identity(r)
    assert (r.tally.sent, r.tally.timeout, r.tally.in_flight) == (10, 0, 10)


async def test_an_error_inside_a_request_ends_the_run_and_is_raised() -> None:
    # The general path's requests are tasks of their own: a bug in one (here the
    # observer) is not lost, and no request outlives the run.
    seen: list[int] = []

    def observer(req: Planned, answer: Answer, done_ns: int) -> None:
        seen.append(done_ns)
        if len(seen) == 3:
            raise RuntimeError("observer bug")

    clock = ManualClock()
    cfg = EngineConfig(duration_ns=10 * S, health_probe_interval_s=None)
    with clock.installed():
        client = ScriptedClient(clock, service_time_s=0.05)
        engine = Engine(client, clock, Recorder(S), cfg, observer=observer)
        with anyio.fail_after(3600), pytest.raises(RuntimeError, match="observer bug"):
            await engine.run(planned(100, 10))
        await anyio.sleep(0.1)
        assert engine._tasks == set()
    assert len(seen) == 3


async def test_a_run_cancelled_from_outside_leaves_no_request_running() -> None:
    # The requests in flight are cancelled and have let go before run() returns; none is
    # counted as answered afterwards.
    clock = ManualClock()
    cfg = EngineConfig(duration_ns=10 * S, timeout_s=5.0, health_probe_interval_s=None)
    with clock.installed():
        engine = Engine(ScriptedClient(clock, service_time_s=0.3), clock, Recorder(S), cfg)
        with anyio.fail_after(3600), anyio.move_on_after(2.0001):
            await engine.run(planned(100, 10))
        tally = engine._st.tally
        assert engine._tasks == set()
        answered = tally.sent - tally.in_flight
        await anyio.sleep(1.0)
    assert (tally.sent, tally.sent - tally.in_flight) == (201, answered)
    assert answered == 171  # sent at 0 .. 1.7 s, answered 0.3 s later


async def test_cohorts_hold_requests_by_intended_start_and_seal_once_all_are_done() -> None:
    # 1,000/s for 2 s, 1 ms service; the service stalls from 0.5 s to 1.5 s, so the 1,000
    # requests intended in [0.5, 1.5) all complete at 1.501 s.
    cfg = EngineConfig(duration_ns=2 * S, min_sleep_ns=0, health_probe_interval_s=None)
    clock = ManualClock()
    sealed_at: list[tuple[int, int]] = []
    with clock.installed():
        client = ScriptedClient(clock, service_time_s=0.001, stalls=[(0.5, 1.5)])
        engine = Engine(
            client,
            clock,
            Recorder(S),
            cfg,
            on_cohort=lambda c: sealed_at.append((c.index, clock.now_ns())),
        )
        with anyio.fail_after(3600):
            r = await engine.run(planned(1000, 2))
    identity(r)
    # by completion: 500 in interval 0, the rest in interval 1 but the last (done at 2 s)
    assert [sum(v.counts.values()) for v in r.intervals] == [500, 1499, 1]
    # by intended start: 1,000 each
    assert [(v.index, sum(v.counts.values())) for v in r.cohorts] == [(0, 1000), (1, 1000)]
    # cohort 0: 500 at 1 ms, then latencies 1001 ms down to 502 ms (one per ms intended);
    # its p99 is the 990th value: the 490th of the stalled ones, counted from the fastest
    expected = [1_000] * 500 + [(1_501 - 500 - i) * MS_US for i in range(500)]
    assert within_hdr(r.cohorts[0].p99_ok_us[("approval", 3)], sorted(expected)[989])
    # cohort 0 is sealed at the first close after its last answer (1.501 s): at 2 s, while
    # the run still drains; cohort 1 when the run ends
    assert sealed_at[0] == (0, 2 * S)
    assert [i for i, _ in sealed_at] == [0, 1]


async def test_closed_loop_users_requests_count_in_their_cohort() -> None:
    import random

    from zg_load.plan import ClosedStream, _MixSampler
    from zg_load.scenario import OpSpec
    from zg_load.schedule import ClosedLoop

    op = OpSpec("approval", 1.0, ((2, 1.0),), (0.01, 0.01), "t", ("a",))
    # 2 users, each starting every 50 ms for 3 s: 20 requests per user and second
    stream = ClosedStream(0, 0, ClosedLoop(2, 0.040, 3.0), _MixSampler((op,), random.Random(0)))
    clock = ManualClock()
    cfg = EngineConfig(duration_ns=3 * S, health_probe_interval_s=None)
    sealed_at: list[tuple[int, int]] = []
    with clock.installed():
        engine = Engine(
            ScriptedClient(clock, service_time_s=0.010),
            clock,
            Recorder(S),
            cfg,
            on_cohort=lambda c: sealed_at.append((c.index, clock.now_ns())),
        )
        with anyio.fail_after(60):
            r = await engine.run(iter(()), [stream])
    identity(r)
    assert [(v.index, sum(v.counts.values())) for v in r.cohorts] == [(0, 40), (1, 40), (2, 40)]
    assert r.intended_at == {0: 40, 1: 40, 2: 40}
    # cohorts 0 and 1 are sealed during the run, at the close of the interval after theirs
    assert [i for i, t in sealed_at if t < 3 * S] == [0, 1]


async def test_cohorts_come_in_index_order_whenever_each_was_sealed() -> None:
    class SlowPriorityOne(ScriptedClient):
        async def request_approval(
            self,
            task_description: str,
            estimated_cost: float,
            priority: int,
            agent_id: str | None = None,
        ) -> Answer:
            if priority == 1:  # answered 3 s later
                await self.clock.sleep_until(self.clock.now_ns() + 3 * S)
                return Answer(Outcome.OK, 201, None, {"approved": True})
            return await super().request_approval(task_description, estimated_cost, priority)

    def reqs() -> Iterator[Planned]:
        yield Planned(S // 10, 0, "approval", 1, 0.01, "t", "a")  # cohort 0, done at 3.1 s
        for i in range(2, 40):
            yield Planned(i * S // 10, 0, "approval", 3, 0.01, "t", "a")

    clock = ManualClock()
    cfg = EngineConfig(duration_ns=4 * S, health_probe_interval_s=None)
    sealed: list[int] = []
    with clock.installed():
        engine = Engine(
            SlowPriorityOne(clock),
            clock,
            Recorder(S),
            cfg,
            on_cohort=lambda c: sealed.append(c.index),
        )
        with anyio.fail_after(60):
            r = await engine.run(reqs())
    assert sealed == [1, 2, 0, 3]
    assert [(v.index, sum(v.counts.values())) for v in r.cohorts] == [
        (0, 9),
        (1, 10),
        (2, 10),
        (3, 10),
    ]
