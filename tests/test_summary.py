"""The summary from a virtual-time run: exact figures, honest empties, failing health."""

from __future__ import annotations

import math
from typing import Any

import anyio
import orjson
import pytest

from zg_load.checks import parse_check
from zg_load.engine import Engine, EngineConfig
from zg_load.plan import plan
from zg_load.recorder import Recorder
from zg_load.render import render_text
from zg_load.scenario import Scenario, parse_scenario
from zg_load.summary import build_summary, metrics, with_checks
from zg_load.testing import ManualClock, ScriptedClient

pytestmark = pytest.mark.anyio
S = 1_000_000_000

SCENARIO = """\
name = "unit"
interval = "1s"
drain = "3s"
max_in_flight = {max_in_flight}
checks = ["latency.p99_ms{{op=approval,priority=2}} < 50"]
[[mixes.m]]
op = "approval"
priority = 2
cost_usd = 0.01
task = "t"
[[phases]]
name = "base"
role = "baseline"
duration = "2s"
streams = [{{ rate = "100/s", mix = "m" }}]
[[phases]]
name = "load"
duration = "2s"
streams = [{{ rate = "200/s", mix = "m" }}]
"""


async def summarize(max_in_flight: int, service_time_s: float) -> tuple[Scenario, dict[str, Any]]:
    sc = parse_scenario(SCENARIO.format(max_in_flight=max_in_flight), "unit.toml")
    clock = ManualClock()
    cfg = EngineConfig(
        duration_ns=4 * S,
        drain_s=sc.drain_s,
        max_in_flight=sc.max_in_flight,
        health_probe_interval_s=1.0,
        phase_ends_ns=(2 * S, 4 * S),
    )
    with clock.installed():
        engine = Engine(
            ScriptedClient(clock, service_time_s=service_time_s), clock, Recorder(S), cfg
        )
        with anyio.fail_after(600):
            result = await engine.run(plan(sc))
    summary = build_summary(result, sc, target="http://127.0.0.1:1", embedded=False, started_at="t")
    with_checks(summary, sc.checks)
    return sc, summary


async def test_healthy_run_figures_are_exact() -> None:
    _, s = await summarize(max_in_flight=4096, service_time_s=0.004)
    acc = s["accounting"]
    assert (acc["intended"], acc["sent"], acc["ok"], acc["not_sent"], acc["in_flight"]) == (
        600,
        600,
        600,
        0,
        0,
    )
    assert [
        (p["intended"], p["intended_rate_per_s"], p["achieved_rate_per_s"]) for p in s["phases"]
    ] == [
        (200, 100.0, 100.0),
        (400, 200.0, 200.0),
    ]
    ok = s["latency"]["approval"]["2"]["ok"]["corrected"]
    assert ok["count"] == 600 and ok["min_ms"] == ok["p50_ms"] == ok["max_ms"] == 4.0
    assert s["generator"]["lag_p99_ms"] == 0.0 and s["generator"]["behind"] is False
    # per-interval rates are each interval's own count over its own length
    rates = [row["completed_per_s"] for row in s["timeline"]["intervals"]]
    assert rates[:4] == [100.0, 100.0, 200.0, 200.0]
    assert s["stability"] == {"probes": 4, "answered": 4, "ratio": 1.0}
    # a run with no storm phase has no recovery figure: its default check is n/a
    assert s["recovery"] is None and "recovery_time_s" not in metrics(s)
    assert s["passed"] is True
    assert (s["throughput"]["answered"], s["throughput"]["admitted"]) == (600, 600)


async def test_overloaded_generator_is_reported_and_fails_its_check() -> None:
    # 10 in flight at 100 ms each is 100/s: the 200/s phase cannot be sent on time.
    _, s = await summarize(max_in_flight=10, service_time_s=0.1)
    g = s["generator"]
    assert g["behind"] is True
    assert g["lag_p99_ms"] is not None and g["lag_p99_ms"] > 10
    failed = {c["name"] for c in s["checks"] if c["passed"] is False}
    assert "generator.lag_p99_ms < 10" in failed
    assert s["passed"] is False
    text = render_text(s)
    assert "WARNING: the generator fell behind its schedule" in text
    assert "CHECKS FAILED" in text


async def test_empty_histograms_are_null_and_json_has_no_nan() -> None:
    _, s = await summarize(max_in_flight=4096, service_time_s=0.004)
    row = s["by_priority"]["approval"]["2"]
    assert row["refused"] == 0 and row["refusal_rate"] == 0.0
    assert "refused" not in s["latency"]["approval"]["2"]  # never recorded as 0 ms
    raw = orjson.dumps(s)
    assert b"NaN" not in raw and b"Infinity" not in raw

    def walk(x: Any) -> None:
        if isinstance(x, float):
            assert math.isfinite(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(s)
    assert s["priority_adherence"] is None  # one priority only: nothing to compare
    assert "priority adherence   n/a" in render_text(s)


async def test_a_validation_check_in_a_run_without_validation_says_why_it_fails() -> None:
    # A run with worker processes has no validation section (the answers stay in them).
    _, s = await summarize(max_in_flight=4096, service_time_s=0.004)
    assert "validation" not in s
    checks = tuple(
        parse_check(text)
        for text in ("storm.priority_based_shedding >= 0.98", "storm.no_such_field > 1")
    )
    shedding, unknown = with_checks(s, checks)
    assert shedding.passed is False
    assert shedding.note == (
        "not measured: validation needs a run in one process (without --workers or --ray)"
    )
    assert unknown.passed is False and unknown.note.startswith("no such metric; known: ")


async def test_a_check_on_a_validation_section_the_scenario_lacks_says_so() -> None:
    _, s = await summarize(max_in_flight=4096, service_time_s=0.004)
    s["validation"] = {"storm": {"processing_rate": 10.0}, "resilience": {"score": 1.0}}
    recall, rate, detect = with_checks(
        s,
        (
            parse_check("hallucination.recall > 0.9"),
            parse_check("storm.processing_rate_per_s > 1"),
            parse_check("time_to_detect_s < 30"),  # written by the user: not a default
        ),
    )
    assert (detect.passed, detect.note) == (
        False,
        "not measured: this run applied no stress that has a time to detect",
    )
    assert (recall.passed, recall.note) == (
        False,
        "not measured: this scenario has no hallucination section",
    )
    assert rate.passed is True
