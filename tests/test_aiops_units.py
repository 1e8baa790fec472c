"""Pure parts of the reference service: breaker, claims, conflicts, rate limit, anomalies."""

from __future__ import annotations

import pytest

from zg_load.aiops.anomalies import AnomalyDesk
from zg_load.aiops.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerPolicy
from zg_load.aiops.claims import check_claims, correct_claims, hallucinate, task_claims
from zg_load.aiops.conflicts import find_conflicts
from zg_load.aiops.knowledge import FACTS
from zg_load.aiops.ratelimit import RateLimiter


class ManualClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_breaker_closed_open_half_open_closed() -> None:
    clock = ManualClock()
    breaker = Breaker(BreakerPolicy(open_wait_s=5.0), clock)
    for ok in (True, False, False, True):
        assert breaker.acquire()
        breaker.record(ok)
    assert breaker.state == CLOSED  # 4 calls: under the 5-call minimum
    assert breaker.acquire()
    breaker.record(False)  # 3 of 5 failed
    assert (breaker.state, breaker.acquire()) == (OPEN, False)
    clock.now_s += 4.999
    assert breaker.state == OPEN
    clock.now_s += 0.001
    assert breaker.state == HALF_OPEN
    assert breaker.acquire() and not breaker.acquire(), "one trial at a time"
    breaker.record(False)
    assert breaker.state == OPEN and breaker.recovery_attempts == 1
    clock.now_s += 5.0
    assert breaker.acquire()
    breaker.record(True)
    assert (breaker.state, breaker.failure_rate(), breaker.recovery_attempts) == (CLOSED, 0.0, 2)


def test_breaker_window_forgets_old_calls() -> None:
    clock = ManualClock()
    breaker = Breaker(BreakerPolicy(window_s=10.0), clock)
    for _ in range(4):
        breaker.acquire()
        breaker.record(False)
    clock.now_s += 10.5
    breaker.acquire()
    breaker.record(False)
    assert breaker.state == CLOSED and breaker.failure_rate() == 1.0


def test_abandoned_trial_frees_the_slot() -> None:
    clock = ManualClock()
    breaker = Breaker(BreakerPolicy(open_wait_s=1.0), clock)
    breaker.trip()
    clock.now_s += 1.0
    assert breaker.acquire()
    breaker.abandon()
    assert breaker.state == HALF_OPEN and breaker.acquire()


def test_claims_are_deterministic_and_checked() -> None:
    claims = task_claims("research", "capital cities", {"capital_france": "paris", "x": 1})
    assert claims == task_claims("research", "capital cities", {"capital_france": "paris", "x": 1})
    check = check_claims(claims)
    assert (check.contradicted, check.unverifiable, check.unsupported_claims) == (0, 1, ["x"])
    wrong = hallucinate(claims, "research", "capital cities")
    bad = check_claims(wrong)
    assert bad.flagged and bad.supported == 1 and bad.unverifiable == 2
    assert bad.score == pytest.approx(1 / len(wrong))
    assert correct_claims(wrong) == {k: FACTS[k] for k in claims if k in FACTS}
    assert check_claims({}).score == 1.0 and not check_claims({}).flagged


def test_numeric_conflict_resolves_to_the_median() -> None:
    report = find_conflicts(
        {"a": {"n": 100, "k": "x"}, "b": {"n": 100.5, "k": "x"}, "c": {"n": 130}}, 0.01
    )
    assert report.compared_keys == 2 and report.agreement_ratio == 0.5
    (conflict,) = report.conflicts
    assert conflict.as_json() == {
        "key": "n",
        "values": {"a": 100, "b": 100.5, "c": 130},
        "resolved_value": 100.5,
        "dissenting_agents": ["c"],
        "method": "median",
    }


@pytest.mark.parametrize(
    ("values", "resolved", "dissenting", "method"),
    [
        ({"a": 100, "b": 100, "c": 130}, 100, ["c"], "median"),
        ({"a": "Paris", "b": "paris ", "c": "Lyon"}, "Paris", ["c"], "majority"),
        ({"a": "Lyon", "b": "Nice"}, "Lyon", ["b"], "majority"),
        ({"a": 1, "b": 2, "c": 3, "d": 4}, 2.5, ["a", "b", "c", "d"], "median"),
    ],
)
def test_conflict_rules(
    values: dict[str, object], resolved: object, dissenting: list[str], method: str
) -> None:
    claims = {agent: {"q": value} for agent, value in values.items()}
    (conflict,) = find_conflicts(claims, 0.01).conflicts  # type: ignore[arg-type]
    assert (conflict.resolved_value, conflict.dissenting_agents, conflict.method) == (
        resolved,
        dissenting,
        method,
    )


def test_known_keys_resolve_to_knowledge() -> None:
    claims = {
        "a": {"boiling_point_water_c": 90, "capital_japan": "Kyoto"},
        "b": {"boiling_point_water_c": 95, "capital_japan": "Osaka"},
        "c": {"boiling_point_water_c": 100},
    }
    conflicts = find_conflicts(claims, 0.01).conflicts  # type: ignore[arg-type]
    assert [(c.key, c.resolved_value, c.method, c.dissenting_agents) for c in conflicts] == [
        ("boiling_point_water_c", 100, "knowledge", ["a", "b"]),
        ("capital_japan", "Tokyo", "knowledge", ["a", "b"]),
    ]


def test_no_compared_keys_is_full_agreement() -> None:
    report = find_conflicts({"a": {"x": 1}, "b": {"y": 2}}, 0.01)
    assert (report.compared_keys, report.conflicts, report.agreement_ratio) == (0, [], 1.0)


def test_rate_limiter_token_bucket() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock)
    assert [limiter.take("a", 2.0, 2.0) for _ in range(3)] == [None, None, 1]
    assert limiter.take("b", 2.0, 2.0) is None, "buckets are per agent"
    clock.now_s += 0.5
    assert limiter.take("a", 2.0, 2.0) is None
    assert limiter.take("a", 0.1, 1.0) == 10


def test_anomaly_rules_and_dedupe() -> None:
    clock = ManualClock()
    desk = AnomalyDesk(60.0, clock)
    first = desk.receive("high_latency", "critical", {})
    assert (first.anomaly_id, first.actions, first.shed_priorities) == (
        "anm_1",
        ["notify", "shed_priority:1", "shed_priority:2"],
        (1, 2),
    )
    again = desk.receive("high_latency", "critical", {"x": 1})
    assert (again.anomaly_id, again.actions, again.deduplicated) == ("anm_1", [], True)
    model = desk.receive("model_errors", "high", {"model": "premium"})
    assert (model.actions, model.cool_down) == (["notify", "cool_down:premium"], "premium")
    assert desk.receive("high_latency", "low", {}).actions == ["notify"]
    clock.now_s += 60.0
    assert not desk.receive("high_latency", "critical", {}).deduplicated
