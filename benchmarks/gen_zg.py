"""One zg_load generator run against a loopback URL; prints one JSON line of results.

Every mode records every completion in full (``Recorder.record``: latency from the
intended start, service time, key per outcome) and folds the raw values into HDR
histograms once a second, as a real run does; the percentiles printed come from them.

Modes:
  raw     fast transport, callback API (``route`` + ``send``), closed loop, N connections
  open    fast transport, callback API, open loop at --rate: every due request is sent on
          each timer wake-up (the task-free hot path the engine could use)
  client  an ``AIOpsClient`` (--transport fast|aiohttp), N looping tasks awaiting health();
          --transport aiohttp-bare: the same loop on a bare aiohttp session, no zg_load code
  engine  zg_load's Engine, open loop at --rate, approvals (the fast transport's callback path),
          as `zg-load run` drives it: the scenario's seeded plan, the validation observer,
          its connections opened before the clock starts

  python benchmarks/gen_zg.py raw --url http://127.0.0.1:8080 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import uvloop

from zg_load.clock import RealClock
from zg_load.engine import Engine, EngineConfig
from zg_load.fasthttp import FastHttpClient
from zg_load.plan import plan
from zg_load.recorder import Recorder
from zg_load.scenario import parse_scenario
from zg_load.transport import WARM_CONNECTIONS, make_client, warm
from zg_load.validation import observations_for

NS_PER_S = 1_000_000_000
WARMUP_S = 1.0
# The engine mode's load: approvals of five priorities with costs in a range, against a
# budget it never reaches (nginx answers every request 200).
ENGINE_SCENARIO = """
name = "bench"
seed = 1
timeout = "10s"
[target]
budget_usd = 1000000000.0
[[mixes.approvals]]
op = "approval"
priority = {{ 1 = 1, 2 = 1, 3 = 1, 4 = 1, 5 = 1 }}
cost_usd = [0.001, 0.002]
task = "bench"
agents = ["agent-1", "agent-2"]
[[phases]]
name = "load"
duration = "{duration_s}s"
[[phases.streams]]
arrival = "constant"
rate = "{rate}/s"
mix = "approvals"
"""


def cpu_s() -> tuple[float, float]:
    """(user, system) CPU seconds this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def cpu_figures(n: int, seconds: float, start: tuple[float, float]) -> dict[str, float]:
    """Cores used over the window, requests per CPU second, and user / system CPU
    microseconds per request."""
    user_s, system_s = (b - a for a, b in zip(start, cpu_s(), strict=True))
    return {
        "cores": (user_s + system_s) / seconds,
        "per_core": n / max(user_s + system_s, 1e-9),
        "user_us_per_request": user_s * 1e6 / max(n, 1),
        "system_us_per_request": system_s * 1e6 / max(n, 1),
    }


class Counter:
    """Completions, and the count at the start of the measured window."""

    def __init__(self) -> None:
        self.done = 0
        self.ok = 0


def summary(rec: Recorder, end_ns: int, **figures: Any) -> dict[str, Any]:
    rec.close_all(end_ns)
    ok = rec.latency(("get", 3, "ok"))
    return {
        **figures,
        "recorded": {"-".join(map(str, k)): n for k, n in rec.counts().items()},
        "p50_us": ok.percentile(50),
        "p99_us": ok.percentile(99),
        "lag_p99_us": rec.lag().percentile(99),
    }


async def fold_every_second(rec: Recorder, t0: int, stop: asyncio.Event) -> None:
    """Close each second, and seal the cohorts no answer can still join (older than the
    10 s timeout), as a run does."""
    while not stop.is_set():
        await asyncio.sleep(1.0)
        now_ns = time.perf_counter_ns() - t0
        rec.close_until(now_ns)
        rec.seal_cohorts(lambda _: 0, now_ns // NS_PER_S - 11)


async def run_raw(url: str, connections: int, duration_s: float) -> dict[str, Any]:
    client = FastHttpClient(url, max_connections=connections, timeout_s=10.0)
    rec = Recorder(NS_PER_S)
    ok_key, err_key = rec.key("get", 3, "ok"), rec.key("get", 3, "error")
    request, send, record, perf = (
        client.route("GET", "/").bare,
        client.send,
        rec.record_row,
        time.perf_counter_ns,
    )
    count, running, t0 = Counter(), [True], perf()

    def slot() -> Callable[[int, bytes], None]:
        sent = perf()

        def done(status: int, body: bytes) -> None:
            nonlocal sent
            now = perf()
            latency_us = (now - sent) // 1000
            key = ok_key if status == 200 else err_key
            record((key, now - t0, latency_us, latency_us, sent - t0))
            count.done += 1
            if running[0]:
                sent = now
                send(request, done)

        send(request, done)
        return done

    stop = asyncio.Event()
    folder = asyncio.create_task(fold_every_second(rec, t0, stop))
    for _ in range(connections):
        slot()
    await asyncio.sleep(WARMUP_S)
    start_n, start_ns, start_cpu = count.done, perf(), cpu_s()
    await asyncio.sleep(duration_s)
    n, end_ns = count.done - start_n, perf()
    cpu = cpu_figures(n, (end_ns - start_ns) / NS_PER_S, start_cpu)
    running[0] = False
    stop.set()
    await asyncio.sleep(0.2)
    folder.cancel()
    await client.aclose()
    seconds = (end_ns - start_ns) / NS_PER_S
    return summary(rec, perf() - t0, requests=n, seconds=seconds, rate=n / seconds, **cpu)


async def run_open(url: str, connections: int, duration_s: float, rate: float) -> dict[str, Any]:
    client = FastHttpClient(url, max_connections=connections, timeout_s=10.0)
    rec = Recorder(NS_PER_S)
    ok_key, err_key = rec.key("get", 3, "ok"), rec.key("get", 3, "error")
    request, send, perf = client.route("GET", "/").bare, client.send, time.perf_counter_ns
    record, record_lag = rec.record_row, rec.record_lag_row
    loop = asyncio.get_running_loop()
    await client.request(request)  # one connection open before the clock starts
    total = int(rate * duration_s)
    count, sent = Counter(), [0]
    finished = loop.create_future()
    t0, start_cpu = perf(), cpu_s()

    def on_done_for(intended_ns: int, sent_ns: int) -> Callable[[int, bytes], None]:
        def done(status: int, body: bytes) -> None:
            now = perf() - t0
            key = ok_key if status == 200 else err_key
            record((key, now, (now - intended_ns) // 1000, (now - sent_ns) // 1000, intended_ns))
            count.done += 1
            if count.done == total and not finished.done():
                finished.set_result(None)

        return done

    def tick() -> None:
        now = perf() - t0
        i = sent[0]
        due = min(total, now * rate // NS_PER_S + 1)
        while i < due:
            intended = int(i * NS_PER_S // rate)
            record_lag((now, (now - intended) // 1000))
            send(request, on_done_for(intended, now))
            i += 1
        sent[0] = i
        if i < total:
            next_ns = int(i * NS_PER_S // rate) - (perf() - t0)
            loop.call_later(max(0.0005, next_ns / NS_PER_S), tick)

    stop = asyncio.Event()
    folder = asyncio.create_task(fold_every_second(rec, t0, stop))
    tick()
    try:
        await asyncio.wait_for(finished, duration_s + 10)
    except TimeoutError:
        pass
    end_ns = perf() - t0
    cpu = cpu_figures(count.done, end_ns / NS_PER_S, start_cpu)
    stop.set()
    folder.cancel()
    await client.aclose()
    return summary(
        rec,
        end_ns,
        **cpu,
        requested_rate=rate,
        requests=count.done,
        seconds=end_ns / NS_PER_S,
        rate=count.done / duration_s,
        achieved_ratio=count.done / total,
    )


class BareAiohttp:
    """aiohttp's own client with nothing of zg_load around it (the session settings of
    ``HttpClient``): what the aiohttp transport could reach at best."""

    def __init__(self, url: str, connections: int) -> None:
        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=10.0), raise_for_status=False
        )
        self._url = url + "/v1/health"

    async def health(self) -> Any:
        async with self._session.get(self._url) as resp:
            await resp.read()
            return SimpleNamespace(ok=resp.status == 200)

    async def aclose(self) -> None:
        await self._session.close()


async def run_client(
    url: str, transport: str, connections: int, duration_s: float
) -> dict[str, Any]:
    client: Any = (
        BareAiohttp(url, connections)
        if transport == "aiohttp-bare"
        else make_client(transport, url, timeout_s=10.0, max_connections=connections)  # type: ignore[arg-type]
    )
    rec = Recorder(NS_PER_S)
    ok_key, err_key = rec.key("get", 3, "ok"), rec.key("get", 3, "error")
    perf, count, running, t0 = time.perf_counter_ns, Counter(), [True], time.perf_counter_ns()

    async def worker() -> None:
        while running[0]:
            sent = perf()
            answer = await client.health()
            now = perf()
            latency_us = (now - sent) // 1000
            key = ok_key if answer.ok else err_key
            rec.record_row((key, now - t0, latency_us, latency_us, sent - t0))
            count.done += 1

    stop = asyncio.Event()
    folder = asyncio.create_task(fold_every_second(rec, t0, stop))
    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(WARMUP_S)
    start_n, start_ns, start_cpu = count.done, perf(), cpu_s()
    await asyncio.sleep(duration_s)
    n, end_ns = count.done - start_n, perf()
    cpu = cpu_figures(n, (end_ns - start_ns) / NS_PER_S, start_cpu)
    running[0] = False
    await asyncio.wait(workers, timeout=5)
    stop.set()
    folder.cancel()
    await client.aclose()
    seconds = (end_ns - start_ns) / NS_PER_S
    return summary(rec, perf() - t0, requests=n, seconds=seconds, rate=n / seconds, **cpu)


async def run_engine(
    url: str, transport: str, connections: int, duration_s: float, rate: float
) -> dict[str, Any]:
    client: Any = make_client(transport, url, timeout_s=10.0, max_connections=connections)  # type: ignore[arg-type]
    await client.health()
    await warm(client, min(connections, WARM_CONNECTIONS))  # as a real run does
    duration_ns = int(duration_s * NS_PER_S)

    # What `zg-load run` does per request: the scenario's plan (a seeded draw of priority,
    # cost and agent) and the observer that keeps what validation needs.
    scenario = parse_scenario(
        ENGINE_SCENARIO.format(rate=f"{rate:.3f}", duration_s=duration_s), "bench"
    )
    observations = observations_for(scenario, None)
    rec = Recorder(NS_PER_S)
    config = EngineConfig(
        duration_ns, timeout_s=10.0, max_in_flight=connections, health_probe_interval_s=None
    )
    engine = Engine(client, RealClock(), rec, config, observer=observations.observe)
    started_ns, start_cpu = time.perf_counter_ns(), cpu_s()
    result = await engine.run(plan(scenario))
    seconds = (time.perf_counter_ns() - started_ns) / NS_PER_S
    cpu = cpu_figures(result.tally.completed, seconds, start_cpu)
    # how many connections the run opened (fast transport): more than it needs costs CPU
    opened = await client.open_connections(0) if transport == "fast" else None
    await client.aclose()
    tally = result.tally
    ok = rec.latency(("approval", 3, "ok"))
    return {
        "requested_rate": rate,
        "requests": tally.completed,
        "intended": tally.intended,
        "sent": tally.sent,
        "ok": tally.ok,
        "rate": tally.completed / duration_s,
        "achieved_ratio": tally.completed / max(1, int(rate * duration_s)),
        "ok_ratio": tally.ok / max(1, int(rate * duration_s)),
        "p50_us": ok.percentile(50),
        "p99_us": ok.percentile(99),
        "lag_p99_us": rec.lag().percentile(99),
        "connections": opened,
        **cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["raw", "open", "client", "engine"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--transport", choices=["fast", "aiohttp", "aiohttp-bare"], default="fast")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10_000.0)
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1:"):
        raise SystemExit("benchmarks only drive http://127.0.0.1:PORT")
    runs = {
        "raw": lambda: run_raw(args.url, args.connections, args.duration),
        "open": lambda: run_open(args.url, args.connections, args.duration, args.rate),
        "client": lambda: run_client(args.url, args.transport, args.connections, args.duration),
        "engine": lambda: run_engine(
            args.url, args.transport, args.connections, args.duration, args.rate
        ),
    }
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        figures = runner.run(runs[args.mode]())
    print(json.dumps({"mode": args.mode, "transport": args.transport, **figures}), flush=True)


if __name__ == "__main__":
    main()
