"""Validation of admission: the budget-exhaustion and high-priority-storm sections.

Pure: observed approvals, the scenario and the summary's own figures in, one JSON-ready
dict per section out (None when the section does not apply). Every figure is counted
from the run's answers and the target's ledger and notifications; see the definitions
on ``budget_section`` and ``storm_section``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from zg_load.scenario import Scenario
from zg_load.validation_common import (
    NS_PER_S,
    USD_EPSILON,
    first_note,
    priority_pair_share,
    ratio,
    run_notes,
)
from zg_load.validation_observe import ApprovalKey, Approvals, Observations

BUDGET_EXCEEDED = "budget_exceeded"
OVERLOADED = "overloaded"
FAILED = ("error", "timeout", "transport")
DEFAULT_SOFT_SHARE = 0.8  # the soft limit the API defaults to when none is set


def budget_limits(scenario: Scenario) -> tuple[float | None, float | None]:
    """The (hard, soft) budget the scenario sets: the last one, if phases change it."""
    limit, soft = scenario.target.budget_usd, scenario.target.soft_budget_usd
    for phase in scenario.phases:
        if phase.setup is not None and phase.setup.budget_usd is not None:
            limit, soft = phase.setup.budget_usd, phase.setup.soft_budget_usd
    return limit, soft


def budget_watch(
    scenario: Scenario, target_state: Mapping[str, Any] | None = None
) -> tuple[float, ...]:
    """The approved sums whose crossing ``budget_section`` may ask for (``Approvals``'s
    ``watch_usd``): for the target's budget and every phase's, the soft limit as the
    scenario sets it and as the API defaults it (80 %), and just past the hard limit (an
    overrun); and the soft limit the target's ledger has before the run."""
    budgets = [(scenario.target.budget_usd, scenario.target.soft_budget_usd)]
    budgets += [
        (phase.setup.budget_usd, phase.setup.soft_budget_usd)
        for phase in scenario.phases
        if phase.setup is not None
    ]
    watch: set[float] = set()
    for limit, soft in budgets:
        if limit is not None:
            watch.update((round(limit * DEFAULT_SOFT_SHARE, 6), limit + 2 * USD_EPSILON))
            if soft is not None:
                watch.add(soft)
    ledger = _ledger(target_state)
    if watch and ledger is not None:
        watch.add(ledger["soft"])
    return tuple(sorted(watch))


def budget_section(
    approvals: Approvals,
    scenario: Scenario,
    start_epoch_s: float,
    target_state: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The seed's budget validation, measured; None without approvals or a budget limit.

    Operations are the approvals that ask for money (free ones touch no budget and are
    only counted, as ``free_operations``).

    - ``total_cost``: the sum of the approved estimated costs (client-side);
      ``budget_respected``: that sum and the ledger's spent + reserved (when served)
      both within the limit;
    - ``priority_based_denial``: the share of (denied for budget,
      approved) pairs whose denied priority <= approved priority (1.0: denials fell on
      lower priorities first; None: no pair);
    - ``soft_limit_crossed_at_s``: when the approved sum, in answer order, reached the
      soft limit (the ledger's, else the scenario's, else 80 % of the limit);
      ``notification_delay_s``: the first ``budget_soft_limit`` notification's
      created_at minus that moment, both on the wall clock (negative when the service
      wrote it before the client heard of the approval that crossed);
    - ``risk_flagged_before_exhaustion``: a soft-limit notification written before the
      budget ran out (the ``budget_exhausted`` notification, else the first
      ``budget_exceeded`` answer, else the answer that took the approved sum past the
      limit); None when the budget never ran out.

    A crossing moment is kept only near the sums of ``budget_watch`` (``Approvals``): a
    soft limit the target set to another value during the run, that the sum reached,
    gives None.
    """
    limit, soft_given = budget_limits(scenario)
    paid = Counter({key: n for key, n in approvals.counts.items() if key[4]})
    free = sum(n for key, n in approvals.counts.items() if not key[4])
    if limit is None or not paid:
        return None
    ledger = _ledger(target_state)
    soft = _soft_limit(limit, soft_given, ledger)
    approved = _by_key(paid, lambda outcome, reason: outcome == "ok")
    denied = _by_key(paid, lambda outcome, reason: reason == BUDGET_EXCEEDED)
    total = round(approvals.approved_cost_usd, 6)
    committed, ledger_ok = None, None
    if ledger is not None:
        committed = round(ledger["spent"] + ledger["reserved"], 6)
        ledger_ok = committed <= ledger["max"] + USD_EPSILON
    client_ok = total <= limit + USD_EPSILON
    notes = run_notes(target_state, start_epoch_s)
    crossed_s = _crossed_at_s(approvals, soft)
    soft_note = first_note(notes, "budget_soft_limit")
    exhausted_note = first_note(notes, "budget_exhausted")
    exhausted_s = (
        exhausted_note.at_s
        if exhausted_note
        else _seconds(approvals.first_done_ns.get(BUDGET_EXCEEDED))
    )
    if exhausted_s is None:
        exhausted_s = _crossed_at_s(approvals, limit + 2 * USD_EPSILON)  # an overrun
    return {
        "total_operations": paid.total(),
        "free_operations": free,
        "approved_operations": approved.total(),
        "denied_operations": denied.total(),
        "shed_operations": _by_key(paid, lambda outcome, reason: reason == OVERLOADED).total(),
        "failed_operations": _by_key(paid, lambda outcome, reason: outcome in FAILED).total(),
        "total_cost": total,
        "limit_usd": limit,
        "soft_limit_usd": soft,
        "ledger_committed_usd": committed,
        "budget_respected": client_ok and ledger_ok is not False,
        "client_sum_respected": client_ok,
        "ledger_respected": ledger_ok,
        "priority_based_denial": priority_pair_share(denied, approved),
        "approved_by_priority": _by_priority(approved),
        "denied_by_priority": _by_priority(denied),
        "budget_notification_sent": None
        if notes is None
        else any(n.kind in ("budget_soft_limit", "budget_exhausted") for n in notes),
        "soft_limit_crossed_at_s": crossed_s,
        "notification_at_s": soft_note.at_s if soft_note else None,
        "notification_delay_s": None
        if crossed_s is None or soft_note is None
        else round(soft_note.at_s - crossed_s, 6),
        "exhausted_at_s": exhausted_s,
        "risk_flagged_before_exhaustion": None
        if exhausted_s is None
        else soft_note is not None and soft_note.at_s <= exhausted_s,
    }


def budget_detect_s(section: Mapping[str, Any]) -> tuple[bool, float | None]:
    """(applies, seconds): the budget risk must be detected once the soft limit is crossed."""
    if section.get("soft_limit_crossed_at_s") is None:
        return False, None
    return True, section["notification_delay_s"]


def _ledger(target_state: Mapping[str, Any] | None) -> dict[str, float] | None:
    raw = (target_state or {}).get("budget")
    if not isinstance(raw, dict):
        return None
    fields = {
        "max": "max_usd",
        "soft": "soft_usd",
        "spent": "spent_usd",
        "reserved": "reserved_usd",
    }
    values = {k: raw.get(v) for k, v in fields.items()}
    if not all(isinstance(v, int | float) for v in values.values()):
        return None
    return {k: float(v) for k, v in values.items() if v is not None}


def _soft_limit(limit: float, given: float | None, ledger: Mapping[str, float] | None) -> float:
    if ledger is not None and abs(ledger["max"] - limit) <= USD_EPSILON:
        return ledger["soft"]
    return given if given is not None else round(limit * DEFAULT_SOFT_SHARE, 6)


def _crossed_at_s(approvals: Approvals, usd: float) -> float | None:
    try:
        return _seconds(approvals.crossed_ns(usd))
    except LookupError:  # the moment was not kept (see budget_section)
        return None


def _seconds(done_ns: int | None) -> float | None:
    return None if done_ns is None else done_ns / NS_PER_S


def _by_key(
    counts: Mapping[ApprovalKey, int], keep: Callable[[str, str | None], bool]
) -> Counter[int]:
    """Approvals per priority among ``counts`` whose (outcome, reason) ``keep`` accepts."""
    out: Counter[int] = Counter()
    for (_, priority, outcome, reason, _), n in counts.items():
        if keep(outcome, reason):
            out[priority] += n
    return out


def _by_priority(counts: Counter[int]) -> dict[str, int]:
    return {str(p): counts[p] for p in sorted(counts) if counts[p]}


def storm_section(
    obs: Observations, scenario: Scenario, summary: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The seed's storm validation, measured; None without a phase of role "storm".

    - ``tasks_sent``: requests sent in the storm phase; ``tasks_processed``: those
      answered ok; ``processing_rate``: processed per second of the storm phase as it ran
      (``execution_time_s``: all of it, or as much as an interrupted run reached);
    - ``priority_based_shedding``: among the storm's approvals, the share of (shed,
      admitted) pairs whose shed priority <= admitted priority (1.0: shedding fell on
      lower priorities first); ``refusal_rate_by_priority``: what happened to each
      priority during the storm;
    - ``system_stability``: the lower of the share of health probes answered in time
      during the run and the share of sent requests that did not fail (error, timeout,
      transport; designed refusals are not failures);
    - ``priority_adherence`` and ``recovery_time`` come from the run's analysis.
    """
    storm = next((i for i, p in enumerate(scenario.phases) if p.role == "storm"), None)
    if storm is None:
        return None
    duration_s = summary["phases"][storm]["ran_s"]  # less than planned when interrupted
    approvals = {key: n for key, n in obs.approvals.counts.items() if key[0] == storm}
    admitted = _by_key(approvals, lambda outcome, reason: outcome == "ok")
    processed = admitted.total()
    processed += obs.processed_by_phase[storm]
    shed = _by_key(approvals, lambda outcome, reason: reason == OVERLOADED)
    return {
        "tasks_sent": summary["phases"][storm]["sent"],
        "tasks_processed": processed,
        "execution_time_s": duration_s,
        "processing_rate": round(processed / duration_s, 3) if duration_s else None,
        "priority_adherence": summary["priority_adherence"],
        "priority_based_shedding": priority_pair_share(shed, admitted),
        "refusal_rate_by_priority": _refusal_rates(approvals),
        **_stability(summary),
        "recovery_time": summary.get("recovery_time_s"),
    }


def _refusal_rates(approvals: Mapping[ApprovalKey, int]) -> dict[str, float | None]:
    sent = _by_key(approvals, lambda outcome, reason: True)
    refused = _by_key(approvals, lambda outcome, reason: outcome == "refused")
    return {str(p): ratio(refused[p], sent[p]) for p in sorted(sent)}


def _stability(summary: Mapping[str, Any]) -> dict[str, Any]:
    acc, probes = summary["accounting"], summary["stability"]
    failed = acc["error"] + acc["timeout"] + acc["transport"]
    unfailed = None if not acc["sent"] else round(1 - failed / acc["sent"], 6)
    parts = [v for v in (probes["ratio"], unfailed) if v is not None]
    return {
        "system_stability": min(parts) if parts else None,
        "health_probes": probes["probes"],
        "health_probes_answered": probes["answered"],
        "failed_requests": failed,
    }
