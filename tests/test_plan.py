"""The plan: deterministic, split exactly across workers; the pure core stays pure."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from zg_load.plan import NS_PER_S, plan, round_usd
from zg_load.scenario import parse_scenario

STORM = Path(__file__).parent.parent / "scenarios" / "high_priority_storm.toml"


def test_plan_is_deterministic_and_ordered() -> None:
    sc = parse_scenario(STORM.read_text(), str(STORM))
    a, b = list(plan(sc)), list(plan(sc))
    assert a == b
    assert all(x.intended_ns <= y.intended_ns for x, y in zip(a, a[1:], strict=False))
    # the storm's constant 650/s stream plans exactly 3,250 priority-5 requests (5 s)
    storm = [r for r in a if r.phase == 1 and r.task == "incident_response"]
    assert len(storm) == 3_250
    assert {r.priority for r in storm} == {5}


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_worker_shares_are_the_global_plan(workers: int) -> None:
    sc = parse_scenario(STORM.read_text(), str(STORM))
    whole = list(plan(sc))
    shares = [list(plan(sc, i, workers)) for i in range(workers)]
    assert sorted((r.intended_ns, r.priority, r.cost_usd) for s in shares for r in s) == sorted(
        (r.intended_ns, r.priority, r.cost_usd) for r in whole
    )
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1


MIXED = """
name = "mixed"
seed = 42
[[mixes.m]]
op = "approval"
weight = 3.0
priority = { 1 = 1, 3 = 2, 5 = 0.5 }
cost_usd = [0.001, 0.25]
task = "spend"
agents = ["a", "b", "c"]
[[mixes.m]]
op = "approval"
weight = 1.0
priority = 2
cost_usd = 0.5
task = "fixed"
agents = ["solo"]
[[phases]]
name = "p"
duration = "20s"
[[phases.streams]]
arrival = "constant"
rate = "1000/s"
mix = "m"
"""


def test_draws_are_the_random_modules_own() -> None:
    """A request's op, priority, cost and agent are what Random.choices, Random.uniform,
    round(., 6) and Random.choice draw, in that order, from the stream's seeded RNG (the
    sampler writes them out for speed; the plan of a seed must not change)."""
    sc = parse_scenario(MIXED, "mixed.toml")
    ops = sc.mixes["m"]
    rng = random.Random((sc.seed * 1_000_003 + 0) * 1_009 + 0)
    planned = list(plan(sc))
    assert len(planned) == 20_000
    for k, req in enumerate(planned):
        (op,) = rng.choices(ops, weights=[o.weight for o in ops])
        (priority,) = rng.choices(
            [p for p, _ in op.priority_weights], weights=[w for _, w in op.priority_weights]
        )
        lo, hi = op.cost_usd
        cost = round(lo if lo == hi else rng.uniform(lo, hi), 6)
        agent = op.agents[0] if len(op.agents) == 1 else rng.choice(op.agents)
        expected = (k * NS_PER_S // 1000, op.task, priority, cost, agent)
        assert (req.intended_ns, req.task, req.priority, req.cost_usd, req.agent) == expected


def test_round_usd_is_round_to_six_places() -> None:
    rng = random.Random(5)
    values = [0.0, -0.0, 1e-7, -1e-7, 2.5e-6, 0.0000015, 123.4565, 1e12, 1e15, math.inf]
    for i in range(200_000):
        kind = i % 4
        if kind == 0:
            values.append(rng.uniform(0.0, 1.0))
        elif kind == 1:  # within a hair of a half millionth: round's own decision
            values.append((rng.randrange(10**9) + 0.5) / 1e6 + rng.choice((0.0, 1e-12, -1e-12)))
        elif kind == 2:
            values.append(rng.uniform(-1e3, 1e3))
        else:
            values.append(rng.uniform(0.0, 1e13))
    for value in values:
        got, want = round_usd(value), round(value, 6)
        assert got == want and math.copysign(1, got) == math.copysign(1, want), value
    assert math.isnan(round_usd(math.nan))


def test_pure_core_loads_no_event_loop_or_http() -> None:
    code = (
        "import sys; import zg_load.plan, zg_load.analysis, zg_load.summary, zg_load.render, "
        "zg_load.recorder, zg_load.hdr, zg_load.hlog, zg_load.scenario, zg_load.checks; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'asyncio', 'anyio', 'aiohttp', 'uvloop'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
