"""Running a task: the model chain, the output's claims, their check, and the answer.

Guarantees:
- the answer's claims are the honest claims of the task (see `claims`), hallucinated
  when the task says `hallucinate: true`, or else when a seeded draw falls under the
  hallucination rate set by faults (the agent's own rate first, then the global one);
- every answer carries the hallucination check of its claims; `correct: true` adds the
  corrected output and claims;
- the cost is that of the model that answered; failed attempts cost nothing;
- no model answering gives None, so the caller answers 503 `models_unavailable`.
Defects: `fallback=False` tries only the chain's first model; `check=False` passes every
output unchecked (never flagged).
"""

from __future__ import annotations

import itertools
import random
import time

from zg_load.aiops.claims import (
    ClaimCheck,
    check_claims,
    correct_claims,
    hallucinate,
    render_output,
    task_claims,
)
from zg_load.aiops.faults import Faults
from zg_load.aiops.knowledge import Fact
from zg_load.aiops.pool import ChainResult, ModelPool
from zg_load.aiops.schema import TaskRequest


class TaskRunner:
    def __init__(
        self,
        pool: ModelPool,
        faults: Faults,
        seed: int,
        *,
        fallback: bool = True,
        check: bool = True,
    ) -> None:
        self._pool = pool
        self._fallback = fallback
        self._check = check
        self._faults = faults
        self._seed = seed
        self._ids = itertools.count(1)
        self._rng = random.Random(f"{seed}:hallucination")

    def reset(self) -> None:
        self._rng = random.Random(f"{self._seed}:hallucination")

    async def run(self, request: TaskRequest) -> tuple[dict[str, object] | None, ChainResult]:
        """The task's answer (None when no model answered) and the chain's result."""
        started_s = time.perf_counter()
        chain = request.chain if self._fallback else request.chain[:1]
        result = await self._pool.run_chain(chain, request.timeout_s)
        if result.used is None:
            return None, result
        answer = self._answer(request, result)
        answer["latency_ms"] = round((time.perf_counter() - started_s) * 1000, 3)
        return answer, result

    def _answer(self, request: TaskRequest, result: ChainResult) -> dict[str, object]:
        used = result.used
        assert used is not None
        claims = task_claims(request.task_type, request.description, request.task_input)
        if self._hallucinates(request):
            claims = hallucinate(claims, request.task_type, request.description)
        answer: dict[str, object] = {
            "task_id": f"tsk_{next(self._ids)}",
            "status": "completed",
            "output": render_output(request.task_type, request.description, claims),
            "claims": claims,
            "model_used": used.name,
            "tier": used.tier,
            "quality": used.quality,
            "fallback_index": result.fallback_index,
            "attempts": [a.as_json() for a in result.attempts],
            "actual_cost_usd": used.cost_usd,
            "checks": {"hallucination": self._check_claims(claims).as_json()},
        }
        if request.correct:
            fixed = correct_claims(claims)
            answer["corrected_output"] = render_output(
                request.task_type, request.description, fixed
            )
            answer["corrected_claims"] = fixed
        return answer

    def _check_claims(self, claims: dict[str, Fact]) -> ClaimCheck:
        if self._check:
            return check_claims(claims)
        return ClaimCheck(len(claims), 0, 0, [])  # the "checks" defect: nothing is checked

    def _hallucinates(self, request: TaskRequest) -> bool:
        if request.hallucinate:
            return True
        rate = self._faults.hallucination_rate(request.agent_id)
        return rate > 0 and self._rng.random() < rate
