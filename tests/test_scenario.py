from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from zg_load.checks import DEFAULT_CHECKS, lag_check, parse_check
from zg_load.scenario import (
    AnalysisSpec,
    OpSpec,
    Phase,
    Scenario,
    ScenarioError,
    ServiceSpec,
    Stream,
    TargetSetup,
    parse_scenario,
)
from zg_load.schedule import ClosedLoop, Constant, Poisson, Ramp

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

# Error rows below name lines of this text by number: keep its lines where they are.
BASE = """\
name = "unit"
seed = 3
max_in_flight = 100
checks = [
  "priority_adherence >= 0.95",
  "latency.p99_ms{priority=5,op=approval} < 250",
]

[analysis]
lag_p99_limit = "5ms"

[[mixes.mixed]]
op = "approval"
priority = { 1 = 3, 5 = 1 }
cost_usd = [0.01, 0.10]
task = "t"

[[mixes.urgent]]
op = "approval"
weight = 2.5
priority = 5
cost_usd = 0.5
task = "u"
agents = ["a", "b"]

[[phases]]
name = "base"
role = "baseline"
duration = "2s"
[[phases.streams]]
rate = "100/s"
mix = "mixed"

[[phases]]
name = "storm"
role = "storm"
duration = "1.5s"
[[phases.streams]]
arrival = "poisson"
rate = "100/s"
mix = "mixed"
[[phases.streams]]
arrival = "ramp"
rate = "0/s"
to_rate = "1/1ms"
mix = "urgent"

[[phases]]
name = "after"
role = "recovery"
duration = "500ms"
streams = [{ rate = "10/s", mix = "mixed" }]
"""

MINIMAL = """\
name = "minimal"
[[mixes.m]]
op = "approval"
priority = 3
cost_usd = 0.01
task = "t"
[[phases]]
name = "only"
duration = "1s"
streams = [{ rate = "1/s", mix = "m" }]
"""

MIXED = OpSpec("approval", 1.0, ((1, 3.0), (5, 1.0)), (0.01, 0.10), "t", ("agent-1",))
URGENT = OpSpec("approval", 2.5, ((5, 1.0),), (0.5, 0.5), "u", ("a", "b"))


def test_parse_base_exactly() -> None:
    user_checks = (
        parse_check("priority_adherence >= 0.95"),
        parse_check("latency.p99_ms{priority=5,op=approval} < 250"),
    )
    assert parse_scenario(BASE, "unit.toml") == Scenario(
        name="unit",
        description="",
        seed=3,
        interval_s=1.0,
        timeout_s=5.0,
        max_in_flight=100,
        drain_s=2.0,
        target=TargetSetup(None, None, None),
        service=ServiceSpec(None, None, None, None),
        analysis=AnalysisSpec(lag_p99_limit_ms=5.0),
        mixes={"mixed": (MIXED,), "urgent": (URGENT,)},
        phases=(
            Phase("base", "baseline", 2.0, (Stream(Constant(100.0, 2.0), "mixed"),)),
            Phase(
                "storm",
                "storm",
                1.5,
                (
                    Stream(Poisson(100.0, 1.5, seed=13050625669411048249), "mixed"),
                    Stream(Ramp(0.0, 1000.0, 1.5), "urgent"),
                ),
            ),
            Phase("after", "recovery", 0.5, (Stream(Constant(10.0, 0.5), "mixed"),)),
        ),
        checks=(*user_checks, *DEFAULT_CHECKS, lag_check(5.0)),
        source="unit.toml",
    )


def test_poisson_seeds_follow_the_scenario_seed() -> None:
    other = parse_scenario(BASE.replace("seed = 3", "seed = 4"))
    assert other.phases[1].streams[0].arrival == Poisson(100.0, 1.5, seed=12731996771113954620)


def test_defaults() -> None:
    scenario = parse_scenario(MINIMAL)
    assert (scenario.seed, scenario.interval_s, scenario.timeout_s) == (0, 1.0, 5.0)
    assert (scenario.max_in_flight, scenario.drain_s, scenario.source) == (4096, 2.0, "<scenario>")
    assert (scenario.target, scenario.service) == (TargetSetup(), ServiceSpec())
    assert scenario.analysis == AnalysisSpec(0.10, 1.0, 0.5, 5.0, 0.02, 3, 10.0, 1.0)
    assert scenario.phases[0].role == "load"
    assert scenario.mixes["m"] == (
        OpSpec("approval", 1.0, ((3, 1.0),), (0.01, 0.01), "t", ("agent-1",)),
    )
    assert scenario.checks == (*DEFAULT_CHECKS, lag_check(10.0))


@pytest.mark.parametrize(
    ("top_lines", "checks"),
    [
        ('default_checks = false\nchecks = ["stability > 0.9"]', ("stability > 0.9",)),
        ("default_checks = false", ()),
        # A user's check on a metric replaces the default check on the same metric.
        (
            'checks = ["completion_rate >= 99%"]',
            (
                "completion_rate >= 99%",
                "time_to_detect_s < 30",
                "recovery_time_s < 300",
                "stability > 0.99",
                "generator.achieved_ratio >= 0.99",
                "generator.lag_p99_ms < 10",
            ),
        ),
    ],
)
def test_checks_and_default_checks(top_lines: str, checks: tuple[str, ...]) -> None:
    scenario = parse_scenario(f"{top_lines}\n{MINIMAL}")
    assert tuple(check.text for check in scenario.checks) == checks


def test_all_sections() -> None:
    text = MINIMAL.replace(
        "[[mixes.m]]",
        '[target]\nbudget_usd = 10.0\nsoft_budget_usd = 8.0\nwindow = "1d"\n'
        '[service]\napproval_workers = 2\napproval_service_time = "0s"\nqueue_bound = 0\n'
        'max_queue_wait = "250ms"\n'
        "[analysis]\nadherence_tolerance = 0.2\nrecovery_stable_intervals = 5\n"
        'lag_p99_limit = "1.5ms"\nhealth_probe_interval = "2s"\n[[mixes.m]]',
    )
    scenario = parse_scenario(f'interval = "250ms"\ntimeout = "1m"\ndrain = "0s"\n{text}')
    assert (scenario.interval_s, scenario.timeout_s, scenario.drain_s) == (0.25, 60.0, 0.0)
    assert scenario.target == TargetSetup(10.0, 8.0, "1d")
    assert scenario.service == ServiceSpec(2, 0.0, 0, 0.25)
    assert scenario.analysis == AnalysisSpec(
        adherence_tolerance=0.2,
        recovery_stable_intervals=5,
        lag_p99_limit_ms=1.5,
        health_probe_interval_s=2.0,
    )
    assert scenario.checks[-1] == lag_check(1.5)


@pytest.mark.parametrize(
    ("offset_s", "phase"),
    [
        (-0.1, None),
        (0.0, "base"),
        (1.999, "base"),
        (2.0, "storm"),
        (3.5, "after"),
        (3.99, "after"),
        (4.0, None),
    ],
)
def test_phase_at(offset_s: float, phase: str | None) -> None:
    found = parse_scenario(BASE).phase_at(offset_s)
    assert (found.name if found else None) == phase


def test_duration_and_phase_bounds() -> None:
    scenario = parse_scenario(BASE)
    assert scenario.duration_s == 4.0
    assert scenario.phase_bounds() == ((0.0, 2.0), (2.0, 3.5), (3.5, 4.0))


def test_scenario_pickles() -> None:
    # Worker processes receive the scenario by pickle.
    scenario = parse_scenario(BASE)
    assert pickle.loads(pickle.dumps(scenario)) == scenario


def test_smoke_file() -> None:
    scenario = parse_scenario((SCENARIOS / "smoke.toml").read_text(), "smoke.toml")
    assert [(p.name, p.role, p.duration_s) for p in scenario.phases] == [("steady", "load", 2.0)]
    assert scenario.phases[0].streams == (Stream(Constant(50.0, 2.0), "mixed"),)
    assert scenario.duration_s + scenario.drain_s == 3.0
    [op] = scenario.mixes["mixed"]
    assert op.priority_weights == ((1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0))
    assert (op.cost_usd, scenario.target.budget_usd) == ((0.001, 0.002), 1000.0)
    assert [c.metric for c in scenario.checks if not c.default] == [
        "completion_rate",
        "refusal_rate",
        "latency.p99_ms{op=approval,priority=5}",
    ]


def test_high_priority_storm_file() -> None:
    text = (SCENARIOS / "high_priority_storm.toml").read_text()
    scenario = parse_scenario(text, "high_priority_storm.toml")
    phases = [(p.name, p.role, p.duration_s, p.streams) for p in scenario.phases]
    assert phases == [
        (
            "baseline",
            "baseline",
            5.0,
            (Stream(Poisson(150.0, 5.0, seed=_seed(scenario, 0)), "mixed"),),
        ),
        (
            "storm",
            "storm",
            5.0,
            (
                Stream(Poisson(150.0, 5.0, seed=_seed(scenario, 1)), "mixed"),
                Stream(Constant(650.0, 5.0), "urgent"),
            ),
        ),
        (
            "recovery",
            "recovery",
            8.0,
            (Stream(Poisson(150.0, 8.0, seed=_seed(scenario, 2)), "mixed"),),
        ),
    ]
    assert [op.priority_weights for op in scenario.mixes["mixed"]] == [
        ((1, 30.0), (2, 25.0), (3, 20.0), (4, 15.0), (5, 10.0))
    ]
    assert [op.priority_weights for op in scenario.mixes["urgent"]] == [((5, 1.0),)]
    assert {op.cost_usd for ops in scenario.mixes.values() for op in ops} == {(0.01, 0.10)}
    assert scenario.target.budget_usd == 1_000_000.0
    assert [c.text for c in scenario.checks if not c.default] == [
        "priority_adherence >= 0.95",
        "latency.p99_ms{op=approval,priority=5} < 250",
        "storm.priority_based_shedding >= 0.98",
    ]
    assert (scenario.analysis.adherence_tolerance, scenario.analysis.adherence_tolerance_ms) == (
        0.25,
        2.0,
    )


def _seed(scenario: Scenario, phase: int) -> int:
    arrival = scenario.phases[phase].streams[0].arrival
    assert isinstance(arrival, Poisson)
    return arrival.seed


RATE_UNITS = "unit must be one of ns, us, ms, s, m, h (e.g. '200/s', '1/500ms')"
DURATION_UNITS = "(e.g. '1.5s', '250ms', '1m30s')"
CHECK_GRAMMAR = "expected METRIC{label=value,...} OP NUMBER with OP one of < <= > >= == !="


# (line of BASE to replace, its new text, the exact error). New text may add lines.
@pytest.mark.parametrize(
    ("line", "new", "error"),
    [
        # unknown fields, at the top, in a table, in an inline table, in a mix
        (2, "sed = 3", "unit.toml:2: sed: unknown field"),
        (10, 'lag_limit = "5ms"', "unit.toml:10: analysis.lag_limit: unknown field"),
        (
            52,
            'streams = [{ rat = "10/s", mix = "mixed" }]',
            "unit.toml:52: phases[2].streams[0].rat: unknown field",
        ),
        (16, 'tsk = "t"', "unit.toml:16: mixes.mixed[0].tsk: unknown field"),
        # missing fields point at their table
        (31, "", "unit.toml:30: phases[0].streams[0].rate: required field is missing"),
        (1, "", "unit.toml:1: name: required field is missing"),
        # wrong types
        (
            3,
            'max_in_flight = "many"',
            "unit.toml:3: max_in_flight: expected a whole number, got text in quotes",
        ),
        (2, "seed = true", "unit.toml:2: seed: expected a whole number, got true or false"),
        (
            15,
            'cost_usd = "cheap"',
            "unit.toml:15: mixes.mixed[0].cost_usd: expected a number or a list, got text in quotes",
        ),
        # TOML syntax
        (
            2,
            "seed = 3 3",
            "unit.toml:2: invalid TOML: expected newline or end of document after a statement at column 10",
        ),
        (3, "seed = 4", "unit.toml:3: invalid TOML: cannot overwrite a value at column 9"),
        (
            52,
            'streams = [{ rate = "10/s", mix = "mixed" }',
            "unit.toml:52: invalid TOML: unclosed array at end of document",
        ),
        # rates and durations
        (
            40,
            'rate = "10/1x"',
            f"unit.toml:40: phases[1].streams[0].rate: bad rate '10/1x': {RATE_UNITS}",
        ),
        (
            45,
            'to_rate = "fast"',
            "unit.toml:45: phases[1].streams[1].to_rate: bad rate 'fast': "
            "expected COUNT/PERIOD (e.g. '200/s', '1/500ms')",
        ),
        (
            31,
            'rate = "0/s"',
            "unit.toml:31: phases[0].streams[0].rate: must be more than zero, got '0/s'",
        ),
        (
            40,
            'rate = "1000000000000/s"',
            "unit.toml:40: phases[1].streams[0].rate: this arrival would plan 1500000000000 requests; "
            "the limit is 1000000000: lower the rate or the duration",
        ),
        (
            37,
            'duration = "90"',
            "unit.toml:37: phases[1].duration: bad duration '90': every number needs a unit, "
            f"one of ns, us, ms, s, m, h {DURATION_UNITS}",
        ),
        (
            29,
            'duration = "0s"',
            "unit.toml:29: phases[0].duration: must be longer than zero, got '0s'",
        ),
        (
            8,
            'interval = "1x"',
            f"unit.toml:8: interval: bad duration '1x': unit must be one of ns, us, ms, s, m, h {DURATION_UNITS}",
        ),
        (
            10,
            'lag_p99_limit = "0ms"',
            "unit.toml:10: analysis.lag_p99_limit: must be longer than zero, got '0ms'",
        ),
        # arrivals and mixes of streams
        (
            43,
            'arrival = "burst"',
            "unit.toml:43: phases[1].streams[1].arrival: must be one of constant, poisson, ramp, closed",
        ),
        (45, "", "unit.toml:43: phases[1].streams[1].arrival: a ramp needs to_rate, its end rate"),
        (
            41,
            'mix = "mixed"\nto_rate = "1/s"',
            "unit.toml:42: phases[1].streams[0].to_rate: only a ramp has a to_rate",
        ),
        (
            46,
            'mix = "urgnet"',
            "unit.toml:46: phases[1].streams[1].mix: no mix named 'urgnet'; defined: mixed, urgent",
        ),
        # phases: roles and names
        (
            28,
            'role = "warmup"',
            "unit.toml:28: phases[0].role: must be one of baseline, storm, recovery, load",
        ),
        (
            36,
            'role = "baseline"',
            "unit.toml:36: phases[1].role: phases[0] is already the baseline; at most one is allowed",
        ),
        (
            36,
            'role = "load"',
            "unit.toml:50: phases[2].role: a recovery phase needs a storm phase before it",
        ),
        (
            35,
            'name = "base"',
            "unit.toml:35: phases[1].name: 'base' is already the name of phases[0]",
        ),
        # operations
        (
            13,
            'op = "approve"',
            "unit.toml:13: mixes.mixed[0].op: unknown operation 'approve'; known: approval, task, agent_task, fallback_task, conflict_check",
        ),
        (20, "weight = 0", "unit.toml:20: mixes.urgent[0].weight: must be finite and > 0, got 0"),
        (
            21,
            "priority = 6",
            "unit.toml:21: mixes.urgent[0].priority: priorities must be 1..5, got 6",
        ),
        (
            14,
            "priority = { 1 = 3, 6 = 1 }",
            "unit.toml:14: mixes.mixed[0].priority: priorities must be 1..5, got 6",
        ),
        (
            14,
            "priority = { high = 1 }",
            "unit.toml:14: mixes.mixed[0].priority: priorities must be 1..5, got high",
        ),
        (
            14,
            "priority = { 1 = 3, 5 = 0 }",
            "unit.toml:14: mixes.mixed[0].priority: the weight of priority 5 must be finite and > 0, got 0",
        ),
        (14, "priority = {}", "unit.toml:14: mixes.mixed[0].priority: needs at least one priority"),
        (
            15,
            "cost_usd = [0.10, 0.01]",
            "unit.toml:15: mixes.mixed[0].cost_usd: the range [0.1, 0.01] has lo > hi",
        ),
        (
            15,
            "cost_usd = [-1.0, 0.01]",
            "unit.toml:15: mixes.mixed[0].cost_usd: costs must be finite and >= 0",
        ),
        (
            15,
            "cost_usd = [0.1]",
            "unit.toml:15: mixes.mixed[0].cost_usd: expected a number or a range [lo, hi], got 1 values",
        ),
        (
            24,
            "agents = []",
            "unit.toml:24: mixes.urgent[0].agents: needs at least one agent, and no empty names",
        ),
        (8, "[mixes]\nempty = []", "unit.toml:9: mixes.empty: a mix needs at least one operation"),
        # checks (an element of a multi-line array has its own line) and sections
        (
            6,
            '  "latency.p99_ms{priority=5,op=approval} <",',
            f"unit.toml:6: checks[1]: bad check 'latency.p99_ms{{priority=5,op=approval}} <': {CHECK_GRAMMAR}",
        ),
        (3, "max_in_flight = 0", "unit.toml:3: max_in_flight: must be >= 1, got 0"),
        (
            8,
            "[target]\nbudget_usd = 1.0\nsoft_budget_usd = 2.0",
            "unit.toml:10: target.soft_budget_usd: must not exceed budget_usd",
        ),
        (
            8,
            "[service]\napproval_workers = 0",
            "unit.toml:9: service.approval_workers: must be >= 1, got 0",
        ),
    ],
)
def test_errors(line: int, new: str, error: str) -> None:
    lines = BASE.split("\n")
    lines[line - 1] = new
    with pytest.raises(ScenarioError) as info:
        parse_scenario("\n".join(lines), "unit.toml")
    assert str(info.value) == error


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('name = "x"\n', "x.toml:1: phases: a scenario needs at least one phase"),
        (
            'name = "x"\n[[phases]]\nname = "p"\nduration = "1s"\n',
            "x.toml:2: phases[0].streams: a phase needs at least one stream",
        ),
        ('name = " "\n' + MINIMAL.split("\n", 1)[1], "x.toml:1: name: must not be empty"),
        ("mixes = 3\n", "x.toml:1: mixes: expected a table, got a whole number"),
    ],
)
def test_errors_in_other_shapes(text: str, error: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.toml")
    assert str(info.value) == error


def test_scenario_module_is_pure() -> None:
    # The scenario core must not pull in the event loop or the HTTP stack.
    code = (
        "import sys, zg_load.scenario, zg_load.checks; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'anyio', 'aiohttp')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ('{ arrival = "closed", users = 3, think = "250ms", mix = "m" }', ClosedLoop(3, 0.25, 1.0)),
        ('{ arrival = "closed", users = 1, mix = "m" }', ClosedLoop(1, 0.0, 1.0)),
    ],
)
def test_closed_loop_streams(stream: str, expected: ClosedLoop) -> None:
    text = MINIMAL.replace('{ rate = "1/s", mix = "m" }', stream)
    assert parse_scenario(text, "c.toml").phases[0].streams[0].arrival == expected


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (
            '{ arrival = "closed", mix = "m" }',
            "c.toml:10: phases[0].streams[0].users: a closed arrival needs users >= 1",
        ),
        (
            '{ arrival = "closed", users = 2, rate = "1/s", mix = "m" }',
            "c.toml:10: phases[0].streams[0].rate: a closed arrival has users and think, not a rate",
        ),
        (
            '{ arrival = "closed", users = 2, think = "soon", mix = "m" }',
            "c.toml:10: phases[0].streams[0].think: bad duration 'soon'",
        ),
        (
            '{ rate = "1/s", users = 2, mix = "m" }',
            "c.toml:10: phases[0].streams[0].users: only a closed arrival",
        ),
        ('{ mix = "m" }', "c.toml:10: phases[0].streams[0].rate: required field is missing"),
    ],
)
def test_closed_loop_errors(stream: str, error: str) -> None:
    text = MINIMAL.replace('{ rate = "1/s", mix = "m" }', stream)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "c.toml")
    assert str(info.value).startswith(error)


@pytest.mark.parametrize(
    ("check", "error"),
    [
        (
            '"refusal_rat < 0.01"',
            "c.toml:1: checks[0]: unknown metric 'refusal_rat'; did you mean refusal_rate",
        ),
        (
            '"latency.p98_ms{op=approval} < 5"',
            "c.toml:1: checks[0]: unknown metric 'latency.p98_ms'; did you mean",
        ),
        ('"no_such_thing > 1"', "c.toml:1: checks[0]: unknown metric 'no_such_thing'"),
        # a series the scenario cannot produce (MINIMAL sends approvals of priority 3)
        (
            '"latency.p99_ms{op=aproval,priority=3} < 5"',
            "c.toml:1: checks[0]: this scenario sends no 'aproval' requests; did you mean approval?",
        ),
        (
            '"latency.p99_ms{op=approval,priority=9} < 5"',
            "c.toml:1: checks[0]: this scenario sends no approval requests of priority 9 (only 3)",
        ),
        (
            '"latency.p99_ms{op=approval,prio=3} < 5"',
            "c.toml:1: checks[0]: latency.p99_ms has no label 'prio'; its labels are op, priority,",
        ),
        (
            '"service.max_ms < 5"',
            "c.toml:1: checks[0]: service.max_ms needs labels, like service.max_ms{op=approval,",
        ),
        (
            '"latency.p99_ms{op=approval,priority=3,outcome=shed} < 5"',
            "c.toml:1: checks[0]: unknown outcome 'shed'; outcomes are refused, error,",
        ),
        (
            '"latency.p99_ms{op=approval,priority=3,outcome=ok} < 5"',
            "c.toml:1: checks[0]: admitted requests are the series without an outcome: "
            "latency.p99_ms{op=approval,priority=3}",
        ),
        (
            '"latency.p99_ms{op=approval,priority=03} < 5"',
            "c.toml:1: checks[0]: this scenario sends no approval requests of priority 03",
        ),
        ('"stability{op=approval} > 0.9"', "c.toml:1: checks[0]: stability takes no labels"),
    ],
)
def test_checks_on_unknown_metrics_fail_validation(check: str, error: str) -> None:
    text = f"checks = [{check}]\n" + MINIMAL
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "c.toml")
    assert str(info.value).startswith(error)


def test_checks_on_known_metrics_pass_validation() -> None:
    for check in (
        "refusal_rate{op=approval,priority=3} < 0.5",
        "refusal_rate < 0.5",
        "budget.respected == 1",
        "service.max_ms{op=approval,priority=3} < 9",
        "latency.p99_ms{op=approval,outcome=refused,priority=3} < 9",
    ):
        parse_scenario(f'checks = ["{check}"]\n' + MINIMAL, "c.toml")
