"""The open-loop engine: sends each planned request at its intended time, never waiting
for answers, and records what the caller of the service experienced.

Guarantees:
- latency is measured from the request's intended start, service time from the
  actual send, and schedule lag (send - intended) for every send;
- every request whose intended time has passed when the engine wakes is sent on that
  wake-up (or queued behind the in-flight bound), not one per wake-up;
- every intended request is accounted exactly once: not sent (still queued at the
  stop), completed with one outcome, or still in flight at the stop;
- an interrupted run keeps what it measured and says it is partial.
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.abc
import orjson

from zg_load.analysis import IntervalView, PhaseAccumulator, view_cohort, view_interval
from zg_load.client import AIOpsClient, Answer
from zg_load.clock import Clock
from zg_load.cohort import CohortStats
from zg_load.fasthttp import FastHttpClient, answer_for
from zg_load.outcome import Outcome
from zg_load.plan import ClosedStream, Planned
from zg_load.recorder import IntervalStats, Recorder
from zg_load.result import RunResult, Tally
from zg_load.scenario import Scenario
from zg_load.schedule import closed_next

NS_PER_S = 1_000_000_000
# Buffered rows are folded into histograms once this many are pending: about 1 ms of work,
# about 24 times a second at 100,000 requests/s, which add a completion and a lag row each
# (a whole second folded at once: ~20 ms).
FOLD_ROWS = 8192
_runs_in_gc_freeze = 0  # Engine runs under the one gc.freeze() of this process


@dataclass(frozen=True)
class EngineConfig:
    duration_ns: int
    interval_ns: int = NS_PER_S
    timeout_s: float = 5.0
    max_in_flight: int = 4096
    drain_s: float = 2.0
    health_probe_interval_s: float | None = 1.0
    phase_ends_ns: tuple[int, ...] = ()
    # uvloop rounds sleeps under ~0.5 ms to zero, which would busy-poll a core; the
    # scheduler sleeps at least this long and then sends everything that fell due.
    min_sleep_ns: int = 1_000_000

    @property
    def phases(self) -> int:
        return max(1, len(self.phase_ends_ns))


def engine_config(scenario: Scenario, index: int = 0, workers: int = 1) -> EngineConfig:
    """The engine settings of worker ``index`` of ``workers`` (of a single run when 0 of 1)."""
    probe_s = scenario.analysis.health_probe_interval_s if index == 0 else None
    return EngineConfig(
        duration_ns=round(scenario.duration_s * NS_PER_S),
        interval_ns=round(scenario.interval_s * NS_PER_S),
        timeout_s=scenario.timeout_s,
        max_in_flight=math.ceil(scenario.max_in_flight / workers),
        drain_s=scenario.drain_s,
        health_probe_interval_s=probe_s,
        phase_ends_ns=tuple(round(end * NS_PER_S) for _, end in scenario.phase_bounds()),
    )


@dataclass
class _State:
    tally: Tally = field(default_factory=Tally)
    backlog: deque[Planned] = field(default_factory=deque)
    refusals: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    probes_total: int = 0
    probes_ok: int = 0
    first_send_ns: int | None = None
    last_done_ns: int | None = None
    schedule_over: bool = False


async def call(client: AIOpsClient, req: Planned) -> Answer:
    """Issue one planned request through the client."""
    op, p = req.op, req.payload
    if op == "approval":
        return await client.request_approval(req.task, req.cost_usd, req.priority, req.agent)
    if op == "conflict_check":
        return await client.check_for_conflicts(p["results"])
    options = {k: v for k, v in p["options"].items() if v is not None}
    if op == "task":
        return await client.execute_task_with_monitoring(p["task"], agent_id=req.agent, **options)
    if op == "agent_task":
        return await client.execute_task_for_agent(req.agent, p["task"], **options)
    if op == "fallback_task":
        return await client.execute_task_with_fallback(p["task"], **options)
    raise ValueError(f"unknown operation {op!r}")


_OK = Answer(Outcome.OK, 200)
# Tally field of each outcome (Enum.value is a Python-level descriptor: slow on the hot path)
_FIELD = {outcome: outcome.value for outcome in Outcome}


def approval_encoder(client: AIOpsClient) -> Callable[[Planned], bytes | None] | None:
    """Pre-encodes approvals for the fast transport (None: every request takes the general path)."""
    if not isinstance(client, FastHttpClient):
        return None
    prefix = client.route("POST", "/v1/approvals").body_prefix

    def encode(req: Planned) -> bytes | None:
        if req.op != "approval":
            return None
        body = orjson.dumps(
            {
                "task_description": req.task,
                "estimated_cost": req.cost_usd,
                "priority": req.priority,
                "agent_id": req.agent,
            }
        )
        return b"%s%d\r\n\r\n%s" % (prefix, len(body), body)  # Route.encode, inlined

    return encode


class Engine:
    """Runs one plan against one client. Create one per run."""

    def __init__(
        self,
        client: AIOpsClient,
        clock: Clock,
        recorder: Recorder,
        config: EngineConfig,
        on_interval: Callable[[IntervalStats], None] | None = None,
        observer: Callable[[Planned, Answer, int], None] | None = None,
        on_phase: Callable[[int], Awaitable[None]] | None = None,
        on_cohort: Callable[[CohortStats], None] | None = None,
    ) -> None:
        """``observer(req, answer, done_ns)`` sees every answer (validation keeps its
        ground truth there); ``on_phase(i)`` runs when phase ``i >= 1`` starts (setup);
        ``on_cohort`` gets each cohort (requests intended in one interval) once sealed."""
        self._client = client
        self._clock = clock
        self._rec = recorder
        self._cfg = config
        self._on_interval = on_interval
        self._observer = observer
        self._on_phase = on_phase
        self._on_cohort = on_cohort
        self._st = _State()
        self._keys: dict[tuple[str, int, str], int] = {}
        self._ok_keys: dict[int, int] = {}  # by priority: admitted approvals of the fast path
        self._intervals: list[IntervalView] = []
        self._cohorts: list[IntervalView] = []
        # closed-loop users' requests whose intended start is set but not reached yet: their
        # cohort waits for them (open-loop requests are counted in _intended_at when pulled)
        self._closed_pending: Counter[int] = Counter()
        self._by_phase = PhaseAccumulator(config.phase_ends_ns or (config.duration_ns,))
        self._intended_at: Counter[int] = Counter()  # per interval index
        self._sent_at: Counter[int] = Counter()
        self._status: list[tuple[float, Any]] = []
        self._phase_intended = [0] * config.phases
        self._phase_sent = [0] * config.phases
        self._t0 = 0
        self._stop_reason = "completed"
        self._sched_scope = anyio.CancelScope()
        self._tg: anyio.abc.TaskGroup | None = None
        self._nxt: Planned | None = None
        self._finished = False
        self._dispatching = False
        self._encode = approval_encoder(client)
        self._fast = client if isinstance(client, FastHttpClient) else None
        # The general path's request tasks: plain asyncio tasks, not task-group children
        # (anyio's start_soon costs ~30 us a task; create_task ~5 us). The run cancels
        # those left at its end and re-raises the first error one of them raised.
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_error: BaseException | None = None
        # A client that enforces the run's timeout itself answers TIMEOUT on its own; the
        # Engine then spares each request a cancel scope (~12 us).
        own_timeout_s = getattr(client, "enforces_timeout_s", None)
        self._scope_timeouts = not (
            isinstance(own_timeout_s, (int, float)) and 0 < own_timeout_s <= config.timeout_s
        )

    @property
    def start_epoch_s(self) -> float:
        return self._clock.epoch_s(self._t0)

    @property
    def in_flight(self) -> int:
        return self._st.tally.in_flight

    def stop(self, reason: str = "interrupted") -> None:
        """Stop sending now (e.g. on Ctrl-C); what was measured is kept."""
        if self._stop_reason == "completed":
            self._stop_reason = reason
        self._sched_scope.cancel()

    async def run(
        self,
        planned: Iterable[Planned],
        closed: Sequence[ClosedStream] = (),
        start_at_ns: int | None = None,
    ) -> RunResult:
        """Send the open-loop plan and run the closed-loop users; return what was measured.

        ``start_at_ns`` (clock time) lets several workers share one start instant: the
        schedule counts from it exactly, so waking late for it shows up as schedule lag.
        """
        it = iter(planned)
        # Objects alive now (modules, the plan, the client) leave the collector's view
        # for the run: a full collection then scans only what the run allocates, instead of
        # pausing the loop for ~15 ms once in a while (measured at 40,000 requests/s).
        global _runs_in_gc_freeze
        freeze = _runs_in_gc_freeze > 0 or gc.get_freeze_count() == 0  # not a caller's freeze
        if freeze:
            if _runs_in_gc_freeze == 0:
                gc.collect()
                gc.freeze()
            _runs_in_gc_freeze += 1
        try:
            return await self._run(it, closed, start_at_ns)
        finally:
            if freeze:
                _runs_in_gc_freeze -= 1
                if _runs_in_gc_freeze == 0:  # the last of the runs that froze
                    gc.unfreeze()

    async def _run(
        self, it: Iterator[Planned], closed: Sequence[ClosedStream], start_at_ns: int | None
    ) -> RunResult:
        if start_at_ns is None:
            self._t0 = self._clock.now_ns()
        else:
            await self._clock.sleep_until(start_at_ns)
            self._t0 = start_at_ns
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                probe_scope = anyio.CancelScope()
                if self._cfg.health_probe_interval_s:
                    tg.start_soon(self._probe_loop, probe_scope)
                for stream in closed:
                    for user in range(stream.closed.users):
                        tg.start_soon(self._closed_user, stream, user)
                if self._on_phase is not None:
                    tg.start_soon(self._phase_starts, self._on_phase)
                with self._sched_scope:
                    await self._schedule(it)
                probe_scope.cancel()
                stop_ns = self._now()
                self._st.schedule_over = True
                self._count_due(it, stop_ns)  # due but never pulled: intended, not sent
                if self._stop_reason == "completed":
                    await self._drain()
                await self._cancel_tasks()
                tg.cancel_scope.cancel()
        finally:
            if self._tasks:  # left by an error or a cancellation from outside
                with anyio.CancelScope(shield=True):  # (a task group, too, waits for them)
                    await self._cancel_tasks()
        if self._task_error is not None:
            raise self._task_error
        return self._result()

    def _spawn(self, req: Planned) -> None:
        task = asyncio.get_running_loop().create_task(self._one(req))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._task_error is None:  # a bug: end the run, raise it
            self._task_error = exc
            if self._tg is not None:
                self._tg.cancel_scope.cancel()

    async def _cancel_tasks(self) -> None:
        """Cancel the requests still in flight and wait until they have let go."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _now(self) -> int:
        return self._clock.now_ns() - self._t0

    def _count_due(self, it: Iterator[Planned], stop_ns: int) -> None:
        """Count requests that fell due before the stop but were never pulled."""
        last_ns = min(stop_ns, self._cfg.duration_ns - 1)
        nxt = self._nxt
        while nxt is not None and nxt.intended_ns <= last_ns:
            self._st.tally.intended += 1
            self._phase_intended[nxt.phase] += 1
            self._intended_at[nxt.intended_ns // self._cfg.interval_ns] += 1
            nxt = next(it, None)
        self._nxt = nxt

    def _pull_due(self, it: Iterator[Planned], now_ns: int) -> None:
        last_ns = min(now_ns, self._cfg.duration_ns - 1)
        nxt = self._nxt
        if nxt is None or nxt.intended_ns > last_ns:
            return
        backlog, phase_intended, intended_at = (
            self._st.backlog,
            self._phase_intended,
            self._intended_at,
        )
        interval_ns = self._cfg.interval_ns
        # The plan comes in intended order: requests are counted per interval in a run,
        # not one Counter update each.
        index = nxt.intended_ns // interval_ns
        end_ns, run, pulled = (index + 1) * interval_ns, 0, 0
        while nxt is not None and nxt.intended_ns <= last_ns:
            if nxt.intended_ns >= end_ns:
                intended_at[index] += run
                index = nxt.intended_ns // interval_ns
                end_ns, run = (index + 1) * interval_ns, 0
            run += 1
            pulled += 1
            phase_intended[nxt.phase] += 1
            backlog.append(nxt)
            nxt = next(it, None)
        intended_at[index] += run
        self._st.tally.intended += pulled
        self._nxt = nxt

    async def _schedule(self, it: Iterator[Planned]) -> None:
        cfg = self._cfg
        self._nxt = next(it, None)
        woke_for = 0  # the start is the first wake
        while True:
            now = self._now()
            self._pull_due(it, now)
            self._dispatch()
            self._close(now)
            if self._rec.pending_rows >= FOLD_ROWS:  # in slices, not one stall at the close
                self._rec.fold_pending()
            if now >= cfg.duration_ns:
                return
            boundary = (now // cfg.interval_ns + 1) * cfg.interval_ns
            wake = min(boundary, cfg.duration_ns)
            if self._nxt is not None:
                wake = min(wake, self._nxt.intended_ns)
            # At least min_sleep after the last wake's target (not after "now", so a wake
            # that lands a little late does not push every later wake further out).
            target = max(wake, woke_for + cfg.min_sleep_ns)
            woke_for = target
            await self._clock.sleep_until(self._t0 + target)

    def _dispatch(self) -> None:
        st = self._st
        assert self._tg is not None
        backlog = st.backlog
        if not backlog or self._dispatching:
            # (an answer delivered inside a send: the loop below goes on, and its room,
            # counted before, can only be too small, so the bound still holds)
            return
        self._dispatching = True
        try:
            self._send_backlog(st, backlog)
        finally:
            self._dispatching = False

    def _send_backlog(self, st: _State, backlog: deque[Planned]) -> None:
        # Called once per answer while requests wait behind the bound: kept short.
        now_ns, t0, tally = self._clock.now_ns, self._t0, st.tally
        sent_at = (now_ns() - t0) // self._cfg.interval_ns
        # The room under the bound is counted once and down per send, not recomputed per
        # request: answers delivered meanwhile only free slots (see _dispatch).
        # (Tally.in_flight, inlined)
        room = self._cfg.max_in_flight - (
            tally.sent - tally.ok - tally.refused - tally.error - tally.timeout - tally.transport
        )
        encode, phase_sent = self._encode, self._phase_sent
        fast = self._fast
        send = fast.sender() if fast is not None else None
        record_lag, answered = self._rec.record_lag_row, self._answered
        sent = 0
        while backlog and room > 0:
            req = backlog.popleft()
            room -= 1
            # count the send now so in_flight is exact before the task starts
            tally.sent += 1
            phase_sent[req.phase] += 1
            sent += 1
            data = encode(req) if encode is not None else None
            if data is None or send is None:
                self._spawn(req)
            else:
                # The hot path: a pre-encoded request handed to the fast transport, answered
                # by a callback; no task and no cancel scope per request (the transport
                # times out). The callback is a C partial: no Python frame of its own.
                # The send is stamped as _stamp_send does, inlined (first_send_ns: below).
                sent_abs = now_ns()
                sent_ns = sent_abs - t0
                lag_ns = sent_ns - req.intended_ns
                record_lag((sent_ns, lag_ns // 1000 if lag_ns > 0 else 0))
                send(data, partial(answered, req, sent_abs))
                if st.first_send_ns is None:
                    st.first_send_ns = sent_ns
        self._sent_at[sent_at] += sent

    def _stamp_send(self, req: Planned) -> int:
        """Stamp a send (both paths): its time, the run's first send, its schedule lag."""
        sent_abs = self._clock.now_ns()
        sent_ns = sent_abs - self._t0
        if self._st.first_send_ns is None:
            self._st.first_send_ns = sent_ns
        self._rec.record_lag_row((sent_ns, max(0, sent_ns - req.intended_ns) // 1000))
        return sent_abs

    def _answered(self, req: Planned, sent_abs: int, status: int, body: bytes) -> None:
        if self._finished:
            return  # answered after the run ended: it stays counted as in flight
        done_abs = self._clock.now_ns()
        st = self._st
        if 200 <= status < 300:
            # _complete for an admitted approval, inlined: this is the hot path. The fast
            # path carries approvals only; nothing reads an admitted approval's body
            # (validation keeps its outcome), so only other answers are parsed.
            st.tally.ok += 1
            if st.schedule_over:
                st.tally.drained += 1
            done_ns = done_abs - self._t0
            st.last_done_ns = done_ns
            if self._observer is not None:
                self._observer(req, _OK, done_ns)
            key = self._ok_keys.get(req.priority)
            if key is None:
                key = self._ok_keys[req.priority] = self._key((req.op, req.priority, "ok"))
            self._rec.record_row(
                (
                    key,
                    done_ns,
                    (done_ns - req.intended_ns) // 1000,
                    (done_abs - sent_abs) // 1000,
                    req.intended_ns,
                )
            )
        else:
            self._complete(req, answer_for(status, body), sent_abs, done_abs)
        if st.backlog and not st.schedule_over:  # _refill, inlined
            self._dispatch()

    def _refill(self) -> None:
        """A slot freed: send what waits behind the in-flight bound (while the schedule runs)."""
        if self._st.backlog and not self._st.schedule_over:
            self._dispatch()

    async def _phase_starts(self, on_phase: Callable[[int], Awaitable[None]]) -> None:
        for i, start_ns in enumerate((0, *self._cfg.phase_ends_ns[:-1])):
            if i == 0:
                continue
            await self._clock.sleep_until(self._t0 + start_ns)
            if self._st.schedule_over:
                return
            await on_phase(i)

    async def _closed_user(self, stream: ClosedStream, user: int) -> None:
        """One virtual user: send, wait for the answer, think, repeat until the phase ends.

        Its intended start is when it decides to send (after thinking), so its latency
        includes any lag of the generator but, by design, no queueing of its own.
        """
        st = self._st
        offset_ns: int | None = 0
        while offset_ns is not None:
            intended_ns = stream.start_ns + offset_ns
            index = intended_ns // self._cfg.interval_ns
            self._closed_pending[index] += 1  # its cohort is not complete without it
            # uvloop may wake a sleep up to ~0.4 ms early; sending before the intended
            # start would record a negative latency (and fail the fold), so wait it out.
            while self._clock.now_ns() < self._t0 + intended_ns:
                await self._clock.sleep_until(self._t0 + intended_ns)
            if st.schedule_over or self._stop_reason != "completed":
                return
            req = stream.draw(intended_ns)
            self._closed_pending[index] -= 1
            st.tally.intended += 1
            st.tally.sent += 1
            self._phase_intended[req.phase] += 1
            self._phase_sent[req.phase] += 1
            self._intended_at[index] += 1
            self._sent_at[self._now() // self._cfg.interval_ns] += 1
            await self._one(req)
            offset_ns = closed_next(stream.closed, user, self._now() - stream.start_ns)

    async def _one(self, req: Planned) -> None:
        sent_abs = self._stamp_send(req)
        answer = await self._answer(req)
        self._complete(req, answer, sent_abs, self._clock.now_ns())
        self._refill()

    async def _answer(self, req: Planned) -> Answer:
        if not self._scope_timeouts:
            return await self._call(req)
        with anyio.move_on_after(self._cfg.timeout_s) as scope:
            return await self._call(req)
        assert scope.cancelled_caught
        return Answer(Outcome.TIMEOUT, 0, "timeout")

    async def _call(self, req: Planned) -> Answer:
        try:
            return await call(self._client, req)
        except Exception as exc:  # an adapter's bug is an error, not a crash
            self._st.errors[type(exc).__name__] += 1
            return Answer(Outcome.ERROR, 0, type(exc).__name__, str(exc))

    def _complete(self, req: Planned, answer: Answer, sent_abs: int, done_abs: int) -> None:
        st = self._st
        outcome = answer.outcome
        name = _FIELD[outcome]
        if outcome is Outcome.OK:  # the common case, without getattr and setattr by name
            st.tally.ok += 1
        else:
            setattr(st.tally, name, getattr(st.tally, name) + 1)
            if outcome is Outcome.REFUSED and answer.reason:
                st.refusals[(req.op, req.priority, answer.reason)] += 1
            elif answer.reason:
                st.errors[f"{name}: {answer.reason}"] += 1
        if st.schedule_over:
            st.tally.drained += 1
        done_ns = done_abs - self._t0
        st.last_done_ns = done_ns
        if self._observer is not None:
            self._observer(req, answer, done_ns)
        key = self._key((req.op, req.priority, name))
        latency_us = (done_ns - req.intended_ns) // 1000
        self._rec.record_row(
            (key, done_ns, latency_us, (done_abs - sent_abs) // 1000, req.intended_ns)
        )

    def _key(self, k: tuple[str, int, str]) -> int:
        """The recorder's id of (operation, priority, outcome)."""
        key = self._keys.get(k)
        if key is None:
            key = self._keys[k] = self._rec.key(*k)
        return key

    def _close(self, now_ns: int) -> None:
        closed = self._rec.close_until(now_ns)
        if closed:
            self._keep(closed)
            # Every request intended before the end of the last closed interval has been
            # pulled (or, for closed-loop users, is pending): those counts are final.
            self._keep_cohorts(self._rec.seal_cohorts(self._expected, closed[-1].index + 1))

    def _expected(self, index: int) -> int:
        """Requests intended in interval ``index`` so far (a Counter reads 0 for a missing key)."""
        return self._intended_at[index] + self._closed_pending[index]

    def _keep_cohorts(self, sealed: list[CohortStats]) -> None:
        for cohort in sealed:
            self._cohorts.append(view_cohort(cohort))
            if self._on_cohort is not None:
                self._on_cohort(cohort)

    def _keep(self, closed: list[IntervalStats]) -> None:
        # Full histograms go to the callback (interval log); the run keeps a digest.
        for stats in closed:
            self._intervals.append(view_interval(stats))
            self._by_phase.add(stats)
            if self._on_interval is not None:
                self._on_interval(stats)

    async def _drain(self) -> None:
        """Wait for requests in flight: up to ``drain_s``, and never less than the request
        timeout (plus a margin for the transport's timeout sweep), so that a request that
        hangs near the end is measured as a timeout, not left out as in flight."""
        drain_s = max(self._cfg.drain_s, self._cfg.timeout_s * 1.1 + 0.1)
        deadline = self._clock.now_ns() + round(drain_s * NS_PER_S)
        while (
            self._st.tally.in_flight > 0
            and self._clock.now_ns() < deadline
            and self._stop_reason == "completed"  # Ctrl-C during the drain stops it too
        ):
            self._close(self._now())
            step = min(deadline, self._clock.now_ns() + self._cfg.interval_ns // 20)
            await self._clock.sleep_until(step)

    async def _probe_loop(self, scope: anyio.CancelScope) -> None:
        interval_ns = round((self._cfg.health_probe_interval_s or 1.0) * NS_PER_S)
        timeout_s = min(1.0, interval_ns / NS_PER_S)
        next_ns = self._t0
        with scope:
            while next_ns - self._t0 < self._cfg.duration_ns:
                await self._clock.sleep_until(next_ns)
                self._st.probes_total += 1
                with anyio.move_on_after(timeout_s):
                    if (await self._client.health()).ok:
                        self._st.probes_ok += 1
                await self._sample_status(timeout_s)
                next_ns += interval_ns

    async def _sample_status(self, timeout_s: float) -> None:
        """The service's own view (budget, queue, models) for the timeline; optional."""
        with anyio.move_on_after(timeout_s):
            answer = await self._client.get_system_status()
            if answer.ok and isinstance(answer.body, dict):
                self._status.append((self._now() / NS_PER_S, answer.body))

    def _result(self) -> RunResult:
        self._finished = True
        st = self._st
        end_ns = self._now()
        self._keep(self._rec.close_all(end_ns))
        self._keep_cohorts(self._rec.seal_all_cohorts())
        return RunResult(
            tally=st.tally,
            recorder=self._rec,
            intervals=self._intervals,
            cohorts=sorted(self._cohorts, key=lambda view: view.index),  # sealed in any order
            phase_latency=self._by_phase.latency,
            intended_at=dict(self._intended_at),
            sent_at=dict(self._sent_at),
            status=self._status,
            phase_intended=self._phase_intended,
            phase_sent=self._phase_sent,
            refusals=st.refusals,
            errors=st.errors,
            probes_total=st.probes_total,
            probes_ok=st.probes_ok,
            start_epoch_s=self._clock.epoch_s(self._t0),
            end_ns=end_ns,
            first_send_ns=st.first_send_ns,
            last_done_ns=st.last_done_ns,
            partial=self._stop_reason != "completed",
            stop_reason=self._stop_reason,
        )
