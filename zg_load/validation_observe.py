"""What validation keeps of each answer: the engine's observer, in memory that does not grow
with the run.

``Observations.observe(req, answer, done_ns)`` is the engine's observer hook: it sees
every answer once, with the request's planned ground truth (``Planned.truth``), and
counts what validation judges of each: approvals as counts per key (``Approvals``: they
are the hot path's requests), tasks (any of the task operations) and conflict checks
read into a record (``validation_records``) and folded into tallies of counts, sums,
first moments and HDR histograms (``HallucinationTally``, ``ConflictTally``,
``DowngradeTally``), then dropped. Pure: no I/O, no clock; the times are the engine's
run-relative offsets. A malformed answer body never raises; the record then says what
could not be read (None).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zg_load.outcome import Outcome
from zg_load.validation_common import NS_PER_S, USD_EPSILON
from zg_load.validation_downgrade import DowngradeTally
from zg_load.validation_outputs import ConflictTally, HallucinationTally
from zg_load.validation_records import ConflictSeen, TaskSeen, conflict_seen, task_seen

if TYPE_CHECKING:  # the client module loads aiohttp; validation must not
    from zg_load.client import Answer
    from zg_load.plan import Planned

TASK_OPS = ("task", "agent_task", "fallback_task")
# an outcome's name as a plain str (Enum.value is a Python-level descriptor: slow per request)
_NAME: dict[Outcome, str] = {outcome: str(outcome.value) for outcome in Outcome}
MICROS_PER_USD = 1_000_000
# Crossings are kept for sums within this of a watched one: the soft limit a service
# derives from a limit may round either way (80 % of 2.000001 USD: 1.6 or 1.600001).
WATCH_WINDOW_MICROS = 100


@dataclass(frozen=True, slots=True)
class ApprovalSeen:
    """One approval request and how it was answered (what ``Approvals.of`` takes)."""

    phase: int
    priority: int
    cost_usd: float
    outcome: str  # ok / refused / error / timeout / transport
    reason: str | None  # refusal reason: budget_exceeded / overloaded / rate_limited
    done_ns: int


ApprovalKey = tuple[int, int, str, str | None, bool]  # phase, priority, outcome, reason, paid


class Approvals:
    """A run's approvals as validation counts them, in memory that does not grow with the run
    (an approval is the hot path's request: one record each grew a run ~210 bytes per request).

    - ``counts``: approvals per (phase, priority, outcome, refusal reason, paid); paid means
      a cost above zero (a free approval touches no budget);
    - ``approved_micros``: the sum of the paid approved costs in micro-USD, the ledger's unit
      (``round(cost * 1e6)`` each, summed exactly; ``approved_cost_usd`` in USD);
    - ``first_done_ns``: per refusal reason, the first paid approval refused for it;
    - ``crossed_ns(usd)``: when the approved sum, in answer order, first reached ``usd``
      (within one micro-USD), for sums within ``WATCH_WINDOW_MICROS`` of one watched from the
      start (``watch_usd``: the budget's soft and hard limits as the scenario and the target
      give them before the run). The answers inside those windows are kept, a few hundred at
      most; a sum outside every window that the run reached raises ``LookupError``.

    ``add`` must be called in answer order (``done_ns`` never decreasing), as the engine's
    observer is; ``of`` sorts records first.
    """

    __slots__ = ("counts", "approved_micros", "first_done_ns", "_windows", "_open", "_points")

    def __init__(self, watch_usd: Iterable[float] = ()) -> None:
        self.counts: dict[ApprovalKey, int] = {}  # (a dict: a Counter's += costs ~120 ns more)
        self.approved_micros = 0
        self.first_done_ns: dict[str, int] = {}
        self._windows = _windows(watch_usd)
        self._open = list(self._windows)  # windows the sum has not passed yet, lowest first
        self._points: list[tuple[int, int]] = []  # (sum in micro-USD, done_ns), in windows

    @classmethod
    def of(cls, seen: Iterable[ApprovalSeen], watch_usd: Iterable[float] = ()) -> Approvals:
        """The approvals of ``seen`` (any order: added by answer time, ties as given)."""
        approvals = cls(watch_usd)
        for a in sorted(seen, key=lambda a: a.done_ns):
            approvals.add(a.phase, a.priority, a.cost_usd, a.outcome, a.reason, a.done_ns)
        return approvals

    @property
    def approved_cost_usd(self) -> float:
        return self.approved_micros / MICROS_PER_USD

    def add(
        self,
        phase: int,
        priority: int,
        cost_usd: float,
        outcome: str,
        reason: str | None,
        done_ns: int,
    ) -> None:
        paid = cost_usd > 0
        key = (phase, priority, outcome, reason, paid)
        self.counts[key] = self.counts.get(key, 0) + 1
        if not paid:
            return
        if reason is not None and reason not in self.first_done_ns:
            self.first_done_ns[reason] = done_ns
        if outcome == "ok":
            self.approved_micros = micros = self.approved_micros + round(cost_usd * MICROS_PER_USD)
            windows = self._open
            if windows and micros >= windows[0][0]:
                points = self._points
                if not points or points[-1][0] < micros:  # the first answer at each sum
                    points.append((micros, done_ns))
                while windows and micros >= windows[0][1]:
                    windows.pop(0)

    def crossed_ns(self, usd: float) -> int | None:
        """When the approved sum first reached ``usd`` (within one micro-USD); None when it
        never did. Raises ``LookupError`` when the sum reached it outside every window."""
        threshold = usd - USD_EPSILON
        if self.approved_cost_usd < threshold:
            return None
        micros = threshold * MICROS_PER_USD
        if not any(lo <= micros <= hi for lo, hi in self._windows):
            raise LookupError(f"the approved sum reached {usd} USD, which was not watched")
        # (None also when no approval was needed: a sum of zero at a threshold of zero)
        points = self._points
        return next((done_ns for at, done_ns in points if at / MICROS_PER_USD >= threshold), None)


def _windows(watch_usd: Iterable[float]) -> list[tuple[int, int]]:
    """The micro-USD spans whose crossings are kept: around each watched sum, merged."""
    spans = sorted(
        (
            math.floor((usd - USD_EPSILON) * MICROS_PER_USD) - WATCH_WINDOW_MICROS,
            math.ceil((usd - USD_EPSILON) * MICROS_PER_USD) + WATCH_WINDOW_MICROS,
        )
        for usd in watch_usd
    )
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


@dataclass
class Observations:
    """What validation needs of every answer, folded in as it comes; see the module docstring.

    ``downgrade`` (kept for the scenario's outage, ``validation_downgrade.outage``) and
    ``interval_ns`` (the report's interval) are fixed when the observer is made: tasks are
    counted against them.
    """

    approvals: Approvals = field(default_factory=Approvals)
    downgrade: DowngradeTally = field(default_factory=DowngradeTally)  # counts no outage
    interval_ns: int = NS_PER_S
    hallucination: HallucinationTally = field(default_factory=HallucinationTally)
    conflicts: ConflictTally = field(default_factory=ConflictTally)
    processed_by_phase: Counter[int] = field(default_factory=Counter)  # tasks and checks, ok
    models_by_interval: Counter[tuple[int, str]] = field(default_factory=Counter)

    def observe(self, req: Planned, answer: Answer, done_ns: int) -> None:
        """The engine's observer: count what validation needs of one answer."""
        outcome = _NAME[answer.outcome]
        if req.op == "approval":  # once per request of the hot path: kept short
            reason = answer.reason if outcome == "refused" else None
            self.approvals.add(req.phase, req.priority, req.cost_usd, outcome, reason, done_ns)
            return
        body = answer.body if isinstance(answer.body, dict) and outcome == "ok" else {}
        if req.op in TASK_OPS:
            self.add_task(task_seen(req, outcome, body, done_ns))
        elif req.op == "conflict_check":
            self.add_conflict(conflict_seen(req, outcome, body, done_ns))

    def add_task(self, task: TaskSeen) -> None:
        self.hallucination.add(task)
        self.downgrade.add(task)
        if task.outcome == "ok":
            self.processed_by_phase[task.phase] += 1
        if task.model is not None:
            self.models_by_interval[task.done_ns // self.interval_ns, task.model] += 1

    def add_conflict(self, check: ConflictSeen) -> None:
        self.conflicts.add(check)
        if check.outcome == "ok":
            self.processed_by_phase[check.phase] += 1

    def model_usage(self) -> list[dict[str, Any]]:
        """Per interval (by completion time): how many tasks each model answered."""
        rows: dict[int, dict[str, int]] = {}
        for (index, model), n in sorted(self.models_by_interval.items()):
            rows.setdefault(index, {})[model] = n
        return [
            {
                "start_s": i * self.interval_ns / 1e9,
                "end_s": (i + 1) * self.interval_ns / 1e9,
                "models": rows[i],
            }
            for i in sorted(rows)
        ]
