"""The plan of a run: every request the scenario intends, in intended-start order.

Pure: a scenario in, an iterator of ``Planned`` requests out. Each stream of each
phase yields its arrival offsets (from ``schedule``), shifted by the phase start, and
draws its operation, priority, cost and agent from its mix with a seeded RNG, so the
same scenario always plans the same requests. Worker ``i`` of ``N`` plans exactly its
share of the one global plan.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, repeat
from typing import Any

from zg_load.scenario import OpSpec, Scenario
from zg_load.schedule import ClosedLoop, merge_streams, starts, with_offset

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class Planned:
    """One intended request. ``intended_ns`` is the offset from the start of the run.

    Treated as immutable, but not ``frozen``: a frozen dataclass's ``__init__`` sets each
    field through ``object.__setattr__``, 870 ns per request against 166 ns, and one is
    made per request.
    """

    intended_ns: int
    phase: int
    op: str
    priority: int
    cost_usd: float
    task: str
    agent: str
    payload: Any = None  # op-specific request parts (task body, conflict results)
    truth: Any = None  # ground truth the generator injected (hallucination, conflict)


class _Choice:
    """A weighted choice drawing exactly what ``Random.choices(items, cum_weights=...)[0]``
    draws (the same RNG call, the same bisection), without its per-call set-up."""

    __slots__ = ("items", "cum", "total", "hi")

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1] + 0.0
        if not self.total > 0.0:
            raise ValueError("weights must add up to more than zero")
        self.hi = len(self.cum) - 1

    def draw(self, rng: random.Random) -> Any:
        return self.items[bisect_right(self.cum, rng.random() * self.total, 0, self.hi)]


class _MixSampler:
    """Draws (op spec, priority, cost, agent) from a mix with one seeded RNG."""

    def __init__(self, ops: tuple[OpSpec, ...], rng: random.Random) -> None:
        # Per op, what a draw reads, looked up once here (a draw is made per request).
        entries = []
        for op in ops:
            priorities = _Choice(
                [p for p, _ in op.priority_weights], [w for _, w in op.priority_weights]
            )
            lo, hi = op.cost_usd
            only_agent = op.agents[0] if len(op.agents) == 1 else None
            entries.append((op, priorities, lo, hi, only_agent))
        self._op = _Choice(entries, [op.weight for op in ops])
        self._rng = rng

    def draw(self, intended_ns: int, phase: int) -> Planned:
        # The same RNG calls in the same order as Random.choices (op, then priority),
        # Random.uniform and Random.choice (agent), written out: one Python frame a draw.
        rng, choice = self._rng, self._op
        op, p, lo, hi, agent = choice.items[
            bisect_right(choice.cum, rng.random() * choice.total, 0, choice.hi)
        ]
        priority: int = p.items[bisect_right(p.cum, rng.random() * p.total, 0, p.hi)]
        cost = round_usd(lo if lo == hi else lo + (hi - lo) * rng.random())
        if agent is None:  # Random.choice, written out (its _randbelow by getrandbits)
            agents = op.agents
            n = len(agents)
            bits = n.bit_length()
            index = rng.getrandbits(bits)
            while index >= n:
                index = rng.getrandbits(bits)
            agent = agents[index]
        if op.op == "approval":
            return Planned(intended_ns, phase, op.op, priority, cost, op.task, agent)
        if op.op == "conflict_check":
            payload, truth = conflict_payload(op, rng)
        else:
            payload, truth = task_payload(op, rng)
        return Planned(intended_ns, phase, op.op, priority, cost, op.task, agent, payload, truth)


def round_usd(value: float) -> float:
    """``round(value, 6)``, exactly, in about a quarter of its time (it formats a decimal
    string; a request's cost is rounded once per request).

    ``value * 1e6`` is off by at most half an ulp, under 2**-13 below 2**40: when its
    fraction is not within 1e-3 of one half, the nearest integer is the one ``round``
    picks, and dividing by 1e6 (correctly rounded) gives the float ``round`` returns.
    Anything else (zero and negative values among it: their signed zeros) takes ``round``.
    """
    scaled = value * 1e6
    if 0.0 < scaled < 1e12:
        whole = math.floor(scaled)
        fraction = scaled - whole
        if fraction < 0.499 or fraction > 0.501:
            return (whole if fraction < 0.5 else whole + 1) / 1e6
    return round(value, 6)


def task_payload(op: OpSpec, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """A task body; the generator decides (seeded) which tasks must hallucinate."""
    inject = op.hallucinate_rate > 0 and rng.random() < op.hallucinate_rate
    task = {
        "type": op.task_type or op.task,
        "description": f"{op.task} #{rng.randrange(1_000_000)}",
        "hallucinate": inject,
    }
    options: dict[str, Any] = {"model": op.model, "correct": op.correct or None}
    if op.fallbacks is not None:
        options["fallbacks"] = list(op.fallbacks)
    return {"task": task, "options": options}, {"hallucinated": inject}


CATEGORIES = ("low", "medium", "high")


def conflict_payload(op: OpSpec, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """Agents' results that agree, or (seeded) one agent dissenting on one claim.

    The truth is what the majority says: a correct resolution recovers it.
    """
    claims: dict[str, Any] = {
        "market_growth_pct": round(rng.uniform(1.0, 10.0), 1),
        "risk_level": rng.choice(CATEGORIES),
        "headcount": rng.randrange(10, 500),
    }
    results = {agent: {"claims": dict(claims)} for agent in op.agents}
    if not (op.conflict_rate > 0 and rng.random() < op.conflict_rate):
        return {"results": results}, {"conflict": False}
    dissenter = rng.choice(op.agents)
    key = rng.choice(sorted(claims))
    true_value = claims[key]
    if key == "risk_level":
        wrong: Any = rng.choice([c for c in CATEGORIES if c != true_value])
    else:
        wrong = (
            round(true_value * 1.5 + 1, 1) if isinstance(true_value, float) else true_value * 2 + 1
        )
    results[dissenter]["claims"][key] = wrong
    truth = {"conflict": True, "key": key, "true_value": true_value, "dissenter": dissenter}
    return {"results": results}, truth


def phase_starts_ns(scenario: Scenario) -> list[int]:
    """Start offset (ns) of each phase."""
    out, t = [], 0
    for phase in scenario.phases:
        out.append(t)
        t += round(phase.duration_s * NS_PER_S)
    return out


def _sampler(
    scenario: Scenario, phase_index: int, stream_index: int, worker: int = 0
) -> _MixSampler:
    stream = scenario.phases[phase_index].streams[stream_index]
    seed = (scenario.seed * 1_000_003 + phase_index) * 1_009 + stream_index + worker * 7_919
    return _MixSampler(scenario.mixes[stream.mix], random.Random(seed))


def _stream(scenario: Scenario, phase_index: int, stream_index: int) -> Iterator[Planned]:
    arrival = scenario.phases[phase_index].streams[stream_index].arrival
    assert not isinstance(arrival, ClosedLoop)
    sampler = _sampler(scenario, phase_index, stream_index)
    offset = phase_starts_ns(scenario)[phase_index]
    return map(sampler.draw, with_offset(starts(arrival), offset), repeat(phase_index))


@dataclass
class ClosedStream:
    """Closed-loop users of one phase: the engine runs them; ``draw`` makes their requests."""

    phase: int
    start_ns: int
    closed: ClosedLoop
    sampler: _MixSampler

    def draw(self, intended_ns: int) -> Planned:
        return self.sampler.draw(intended_ns, self.phase)


def closed_streams(scenario: Scenario, worker: int = 0) -> list[ClosedStream]:
    """The scenario's closed-loop streams (virtual users with think time); each worker's
    users draw their requests from their own seeded sequence."""
    starts_ns = phase_starts_ns(scenario)
    return [
        ClosedStream(i, starts_ns[i], s.arrival, _sampler(scenario, i, j, worker))
        for i, phase in enumerate(scenario.phases)
        for j, s in enumerate(phase.streams)
        if isinstance(s.arrival, ClosedLoop)
    ]


def plan(scenario: Scenario, worker: int = 0, workers: int = 1) -> Iterator[Planned]:
    """Every request of the run (or of one worker's share) in intended-start order."""
    streams = [
        _stream(scenario, i, j)
        for i, phase in enumerate(scenario.phases)
        for j, s in enumerate(phase.streams)
        if not isinstance(s.arrival, ClosedLoop)
    ]
    # (one stream needs no merge: ~100 ns a request, on the engine's hot path)
    merged = streams[0] if len(streams) == 1 else merge_streams(streams, key=_intended)
    # Index-based selection: the union of all workers' shares is the global plan.
    return merged if workers == 1 else islice(merged, worker, None, workers)


def _intended(req: Planned) -> int:
    return req.intended_ns
