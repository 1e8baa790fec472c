"""Cohorts: completions grouped by the interval of their intended start, sealed when done."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from zg_load.cohort import CohortStats, merge_cohorts
from zg_load.hdr import Histogram
from zg_load.recorder import Recorder

S = 1_000_000_000
MS = 1_000_000


def hist_of(values: list[int]) -> Histogram:
    h = Histogram()
    h.record_many(values)
    return h


def flat(cohorts: list[CohortStats]) -> list[tuple[int, dict[object, int], dict[object, str]]]:
    return [(c.index, c.counts, {k: h.encode() for k, h in c.ok.items()}) for c in cohorts]


def expect(counts: dict[int, int]) -> Callable[[int], int]:
    """The requests intended per cohort, as the Engine reports them (0 when unknown)."""
    return Counter(counts).__getitem__


def recorder() -> tuple[Recorder, int, int, int]:
    rec = Recorder(S)
    ok5, ok4 = rec.key("approval", 5, "ok"), rec.key("approval", 4, "ok")
    refused5 = rec.key("approval", 5, "refused")
    return rec, ok5, ok4, refused5


def test_a_cohort_holds_the_requests_intended_in_its_interval_whenever_they_completed() -> None:
    rec, ok5, ok4, refused5 = recorder()
    # intended at 0.9 s, completed at 1.2 s (interval 1); intended at 0.1 s, done at 0.11 s
    rec.record(ok5, 1_200 * MS, 300_000, 1_000, 900 * MS)
    rec.record(ok5, 110 * MS, 10_000, 1_000, 100 * MS)
    rec.record(refused5, 1_001 * MS, 2_000, 1_000, 999 * MS)
    # intended at 1.5 s, done at 1.502 s
    rec.record(ok4, 1_502 * MS, 2_000, 1_000, 1_500 * MS)
    intervals = rec.close_all(2 * S)
    assert [sum(s.counts.values()) for s in intervals] == [1, 3]  # by completion
    cohorts = rec.seal_cohorts(expect({0: 3, 1: 1}), before=2)
    assert [(c.index, c.start_ns, c.end_ns, c.completed) for c in cohorts] == [
        (0, 0, S, 3),
        (1, S, 2 * S, 1),
    ]
    assert cohorts[0].counts == {("approval", 5, "ok"): 2, ("approval", 5, "refused"): 1}
    assert cohorts[0].ok[("approval", 5)].encode() == hist_of([300_000, 10_000]).encode()
    assert cohorts[1].counts == {("approval", 4, "ok"): 1}
    assert cohorts[1].ok[("approval", 4)].max_us == 2_000


def test_a_cohort_is_sealed_only_when_all_its_requests_are_done_and_its_interval_is_over() -> None:
    rec, ok5, _, _ = recorder()
    rec.record(ok5, 500 * MS, 1_000, 1_000, 499 * MS)
    rec.record(ok5, 600 * MS, 1_000, 1_000, 599 * MS)
    rec.record(ok5, 1_100 * MS, 1_000, 1_000, 1_099 * MS)
    assert rec.seal_cohorts(expect({0: 3, 1: 2}), before=2) == []  # 2 of 3 done, 1 of 2 done
    [first] = rec.seal_cohorts(expect({0: 2, 1: 1}), before=1)  # 1 is complete but not below 1
    assert (first.index, first.completed) == (0, 2)
    assert rec.open_cohort_values == 1
    rec.record(ok5, 1_200 * MS, 1_000, 1_000, 1_199 * MS)
    assert rec.seal_cohorts(expect({1: 3}), before=2) == []
    [last] = rec.seal_all_cohorts()  # the run is over: sealed as it stands
    assert (last.index, last.completed) == (1, 2)
    assert rec.open_cohort_values == 0
    assert rec.seal_all_cohorts() == []


def test_how_completions_are_batched_changes_no_cohort() -> None:
    rng = random.Random(3)
    rows = []
    for _ in range(5_000):
        intended_ns = rng.randrange(0, 5 * S)
        latency_us = int(rng.lognormvariate(8, 1.5))
        done_ns = intended_ns + latency_us * 1000
        rows.append((rng.randrange(3), done_ns, latency_us, 1, intended_ns))
    rows.sort(key=lambda r: r[1])  # completions arrive in completion order
    at_once, sliced = recorder()[0], recorder()[0]
    for rec in (at_once, sliced):
        for i, row in enumerate(rows):
            rec.record_row(row)
            if rec is sliced and i % 337 == 0:
                rec.fold_pending()
    at_once.close_all(rows[-1][1] + 1)
    sliced.close_all(rows[-1][1] + 1)
    a, b = at_once.seal_all_cohorts(), sliced.seal_all_cohorts()
    assert flat(a) == flat(b)
    assert sum(c.completed for c in a) == 5_000
    for c in a:
        inside = [r for r in rows if r[4] // S == c.index]
        assert c.completed == len(inside)
        for key_id, (op, priority, outcome) in enumerate(at_once.keys()):
            values = [r[2] for r in inside if r[0] == key_id]
            if outcome == "ok" and values:
                assert c.ok[(op, priority)].encode() == hist_of(values).encode()


def test_a_completion_for_a_sealed_cohort_is_refused_and_changes_nothing() -> None:
    rec, ok5, _, _ = recorder()
    rec.record(ok5, 500 * MS, 1_000, 1_000, 499 * MS)
    rec.seal_cohorts(expect({0: 1}), before=1)
    rec.record(ok5, 1_500 * MS, 1_000, 1_000, 1_499 * MS)  # cohort 1: fine
    rec.record(ok5, 1_600 * MS, 700_000, 1_000, 900 * MS)  # cohort 0: sealed already
    with pytest.raises(ValueError, match="sealed"):
        rec.fold_pending()
    assert rec.pending_rows == 2
    assert rec.open_cohort_values == 0


def test_cohorts_of_shares_merge_into_the_cohort_of_the_whole() -> None:
    rng = random.Random(5)
    whole, shares = recorder()[0], [recorder()[0], recorder()[0]]
    for i in range(2_000):
        intended_ns = rng.randrange(0, 3 * S)
        latency_us = int(rng.lognormvariate(7, 1))
        row = (rng.randrange(3), intended_ns + latency_us * 1000, latency_us, 1, intended_ns)
        whole.record_row(row)
        shares[i % 2].record_row(row)
    merged = [
        merge_cohorts([a, b]) for a, b in zip(*(s.seal_all_cohorts() for s in shares), strict=True)
    ]
    assert flat(merged) == flat(whole.seal_all_cohorts())
