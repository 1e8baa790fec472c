"""Task outputs and their checks: claims drawn from the knowledge set, and verified.

Guarantees:
- `task_claims` is a pure function of (type, description, input): 3 to 5 facts chosen by
  a hash of type and description, plus the scalar entries of an `input` object, echoed;
- `hallucinate` contradicts every claim but the first (by key) and adds one unsourced
  claim, so a hallucinated output of n >= 1 claims scores at most 1/(n+1) <= 0.5 and,
  with the 3 to 5 generated facts, is always flagged;
- `check_claims` sorts each claim into supported / contradicted / unverifiable against
  the knowledge set; score = supported / all (1.0 with no claims); flagged below 0.5;
- `correct_claims` puts the knowledge value in place of each contradicted claim and
  drops unverifiable ones.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from zg_load.aiops.knowledge import FACTS, Fact, same_value

FLAG_BELOW = 0.5
CHECK_TOLERANCE = 1e-6
_KEYS = sorted(FACTS)
_TEXTS = sorted({v for v in FACTS.values() if isinstance(v, str)})


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    supported: int
    contradicted: int
    unverifiable: int
    unsupported_claims: list[str]

    @property
    def score(self) -> float:
        total = self.supported + self.contradicted + self.unverifiable
        return self.supported / total if total else 1.0

    @property
    def flagged(self) -> bool:
        return self.score < FLAG_BELOW

    def as_json(self) -> dict[str, object]:
        return {
            "flagged": self.flagged,
            "score": self.score,
            "supported": self.supported,
            "contradicted": self.contradicted,
            "unverifiable": self.unverifiable,
            "unsupported_claims": self.unsupported_claims,
        }


def task_claims(task_type: str, description: str, task_input: object) -> dict[str, Fact]:
    """The claims an honest output of this task makes (see the module docstring)."""
    rng = random.Random(_digest(task_type, description))
    chosen = rng.sample(_KEYS, 3 + rng.randrange(3))
    claims: dict[str, Fact] = {key: FACTS[key] for key in sorted(chosen)}
    if isinstance(task_input, dict):
        for key, value in task_input.items():
            if isinstance(value, str | int | float | bool):
                claims[str(key)] = value
    return dict(sorted(claims.items()))


def hallucinate(claims: dict[str, Fact], task_type: str, description: str) -> dict[str, Fact]:
    """The same claims, all but the first contradicted, plus one unsourced claim."""
    keys = sorted(claims)
    wrong: dict[str, Fact] = {
        k: claims[k] if i == 0 else _wrong(claims[k]) for i, k in enumerate(keys)
    }
    wrong[f"unsourced_{_digest(task_type, description) % 10_000:04d}"] = "reported without a source"
    return dict(sorted(wrong.items()))


def check_claims(claims: dict[str, Fact]) -> ClaimCheck:
    supported = contradicted = unverifiable = 0
    unsupported: list[str] = []
    for key, value in claims.items():
        if key not in FACTS:
            unverifiable += 1
        elif same_value(value, FACTS[key], CHECK_TOLERANCE):
            supported += 1
            continue
        else:
            contradicted += 1
        unsupported.append(key)
    return ClaimCheck(supported, contradicted, unverifiable, sorted(unsupported))


def correct_claims(claims: dict[str, Fact]) -> dict[str, Fact]:
    return {key: FACTS[key] for key in claims if key in FACTS}


def render_output(task_type: str, description: str, claims: dict[str, Fact]) -> str:
    """The output text: the task, then each claim as `name: value`."""
    findings = "; ".join(f"{key.replace('_', ' ')}: {value}" for key, value in claims.items())
    return f"[{task_type}] {description}\nFindings: {findings or 'none'}."


def _wrong(value: Fact) -> Fact:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return round(value * 1.5 + 1, 6)
    text = str(value)
    for candidate in _TEXTS:
        if candidate.casefold() > text.casefold():
            return candidate
    return _TEXTS[0] if _TEXTS[0].casefold() != text.casefold() else text + " (disputed)"


def _digest(task_type: str, description: str) -> int:
    data = f"{task_type}\x00{description}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
