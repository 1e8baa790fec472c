"""Conflicts between agents' claims: which keys disagree and what each resolves to.

Guarantees (a pure function; the caller times it):
- a key is compared when at least two agents claim it; agreement_ratio is the share of
  compared keys without a conflict (1.0 when none are compared);
- numbers agree when every pair is within the relative tolerance; a numeric conflict
  resolves to the knowledge-set value when the key is known (method "knowledge"), else
  to the median of the claimed values (method "median");
- other values (text, booleans, mixed) conflict when they differ (text ignoring case);
  they resolve by majority; a tie goes to the knowledge value when the key is known
  (method "knowledge"), else to the lexicographically smallest tied value ("majority");
- dissenting agents are those whose value does not agree with the resolved one, in
  agent-id order.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from zg_load.aiops.knowledge import FACTS, Fact, is_number, same_value

MAJORITY = "majority"
MEDIAN = "median"
KNOWLEDGE = "knowledge"
DEFAULT_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class Conflict:
    key: str
    values: dict[str, Fact]
    resolved_value: Fact
    dissenting_agents: list[str]
    method: str

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "values": self.values,
            "resolved_value": self.resolved_value,
            "dissenting_agents": self.dissenting_agents,
            "method": self.method,
        }


@dataclass(frozen=True, slots=True)
class ConflictReport:
    compared_keys: int
    conflicts: list[Conflict]

    @property
    def agreement_ratio(self) -> float:
        if not self.compared_keys:
            return 1.0
        return (self.compared_keys - len(self.conflicts)) / self.compared_keys


def find_conflicts(claims_by_agent: dict[str, dict[str, Fact]], tolerance: float) -> ConflictReport:
    """Compare every key that two or more agents claim; see the module docstring."""
    agents = sorted(claims_by_agent)
    keys = sorted({key for claims in claims_by_agent.values() for key in claims})
    compared = 0
    conflicts: list[Conflict] = []
    for key in keys:
        values = {a: claims_by_agent[a][key] for a in agents if key in claims_by_agent[a]}
        if len(values) < 2:
            continue
        compared += 1
        conflict = _resolve(key, values, tolerance)
        if conflict is not None:
            conflicts.append(conflict)
    return ConflictReport(compared, conflicts)


def _resolve(key: str, values: dict[str, Fact], tolerance: float) -> Conflict | None:
    claimed = list(values.values())
    if all(same_value(a, b, tolerance) for a in claimed for b in claimed):
        return None
    if all(is_number(v) for v in claimed):
        resolved, method = _numeric(key, claimed)
    else:
        resolved, method = _categorical(key, values)
    dissenting = [a for a, v in values.items() if not same_value(v, resolved, tolerance)]
    return Conflict(key, values, resolved, dissenting, method)


def _numeric(key: str, claimed: list[Fact]) -> tuple[Fact, str]:
    known = FACTS.get(key)
    if known is not None and is_number(known):
        return known, KNOWLEDGE
    numbers = [float(v) for v in claimed]
    median = statistics.median(numbers)
    return (int(median) if median.is_integer() else median), MEDIAN


def _categorical(key: str, values: dict[str, Fact]) -> tuple[Fact, str]:
    first_of: dict[object, Fact] = {}
    for value in values.values():
        first_of.setdefault(_category(value), value)
    counts = Counter(_category(v) for v in values.values())
    top = max(counts.values())
    tied = [first_of[c] for c, n in counts.items() if n == top]
    if len(tied) == 1:
        return tied[0], MAJORITY
    if key in FACTS:
        return FACTS[key], KNOWLEDGE
    return min(tied, key=lambda v: (str(v), type(v).__name__)), MAJORITY


def _category(value: Fact) -> object:
    if isinstance(value, str):
        return ("str", value.strip().casefold())
    return (type(value).__name__, value)
