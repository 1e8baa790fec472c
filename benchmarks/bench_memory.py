"""Memory of a long open-loop run: resident set size at minute 1 and at the last minute.

Runs zg_load's Engine with full recording (approvals at a constant rate, fast transport by
default) against a loopback target pinned to another core, samples this process's RSS
every 10 s and prints the samples and the ratio of the last minute to minute 1 (target:
within 10 %).

  python benchmarks/bench_memory.py                      # 10 minutes at 5,000/s
  python benchmarks/bench_memory.py --minutes 2 --rate 2000 --transport aiohttp
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from collections.abc import Iterator

import loopback
import uvloop

from zg_load.clock import RealClock
from zg_load.engine import Engine, EngineConfig
from zg_load.plan import Planned
from zg_load.recorder import Recorder
from zg_load.transport import make_client
from zg_load.validation import Observations

NS_PER_S = 1_000_000_000
SAMPLE_S = 10


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def planned(rate: float, duration_s: float) -> Iterator[Planned]:
    for i in range(int(rate * duration_s)):
        yield Planned(int(i * NS_PER_S // rate), 0, "approval", 1 + i % 5, 0.01, "bench", "a1")


async def run(url: str, args: argparse.Namespace) -> list[tuple[int, float]]:
    duration_s = args.minutes * 60
    client = make_client(args.transport, url, timeout_s=5.0, max_connections=256)
    await client.health()
    samples: list[tuple[int, float]] = []

    async def sample() -> None:
        for t in range(0, int(duration_s) + 1, SAMPLE_S):
            samples.append((t, rss_mib()))
            print(f"{t:5d} s  rss {samples[-1][1]:7.1f} MiB", flush=True)
            await asyncio.sleep(SAMPLE_S)

    config = EngineConfig(int(duration_s * NS_PER_S), health_probe_interval_s=1.0)
    observations = Observations()  # what `zg-load run` keeps of each answer, for validation
    engine = Engine(client, RealClock(), Recorder(NS_PER_S), config, observer=observations.observe)
    sampler = asyncio.create_task(sample())
    result = await engine.run(planned(args.rate, duration_s))
    sampler.cancel()
    await client.aclose()
    tally = result.tally
    print(
        f"sent {tally.sent}, ok {tally.ok}, completed {tally.completed}, intended {tally.intended}"
    )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5000.0, help="approvals per second")
    parser.add_argument("--transport", choices=["fast", "aiohttp"], default="fast")
    parser.add_argument("--target", choices=["auto", "nginx", "builtin"], default="auto")
    args = parser.parse_args()
    gen_core, target_core = loopback.cores()
    if gen_core != target_core:
        os.sched_setaffinity(0, {gen_core})
    with loopback.start_target(loopback.pick_target(args.target), target_core) as url:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            samples = runner.run(run(url, args))
    # RSS saw-tooths with each fold's allocations: compare minutes, not single samples
    end_s = samples[-1][0]
    first = [mib for t, mib in samples if 60 <= t < 120] or [samples[0][1]]
    last = [mib for t, mib in samples if t > end_s - 60]
    for name, window in (("minute 1 (60-120 s)", first), (f"last minute (to {end_s} s)", last)):
        print(f"rss {name}: median {statistics.median(window):.1f} MiB, max {max(window):.1f}")
    ratio = statistics.median(last) / statistics.median(first)
    print(f"ratio of medians {ratio:.3f}, of maxima {max(last) / max(first):.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
