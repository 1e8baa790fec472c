"""The plan: deterministic, split exactly across workers; the pure core stays pure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zg_load.plan import plan
from zg_load.scenario import parse_scenario

STORM = Path(__file__).parent.parent / "scenarios" / "high_priority_storm.toml"


def test_plan_is_deterministic_and_ordered() -> None:
    sc = parse_scenario(STORM.read_text(), str(STORM))
    a, b = list(plan(sc)), list(plan(sc))
    assert a == b
    assert all(x.intended_ns <= y.intended_ns for x, y in zip(a, a[1:], strict=False))
    # the storm's constant 1500/s stream plans exactly 7,500 priority-5 requests (5 s)
    storm = [r for r in a if r.phase == 1 and r.task == "incident_response"]
    assert len(storm) == 7_500
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


def test_pure_core_loads_no_event_loop_or_http() -> None:
    code = (
        "import sys; import zg_load.plan, zg_load.analysis, zg_load.summary, zg_load.render, "
        "zg_load.recorder, zg_load.hdr, zg_load.hlog, zg_load.scenario, zg_load.checks; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'asyncio', 'anyio', 'aiohttp', 'uvloop'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
