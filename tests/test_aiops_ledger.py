from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from zg_load.aiops.ledger import Ledger, Refusal, Reservation
from zg_load.aiops.notify import BUDGET_EXHAUSTED, BUDGET_SOFT_LIMIT

DAY_S = 86_400


class ManualClock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(100 * DAY_S + 10.0)


@pytest.fixture
def ledger(tmp_path: Path, clock: ManualClock) -> Iterator[Ledger]:
    opened = Ledger(str(tmp_path / "l.db"), default_max_usd=10.0, default_window="1d", clock=clock)
    yield opened
    opened.close()


def reserve(ledger: Ledger, cost_usd: float) -> Reservation:
    result = ledger.reserve(cost_usd, 3, "agent")
    assert isinstance(result, Reservation)
    return result


def sums_micros(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(CASE WHEN state = 'reserved' THEN amount_micros END), 0),"
            " COALESCE(SUM(CASE WHEN state = 'settled' THEN settled_micros END), 0)"
            " FROM reservations"
        ).fetchone()
    return int(row[0]), int(row[1])


def test_fresh_ledger_uses_defaults(ledger: Ledger) -> None:
    budget = ledger.budget().as_json()
    assert budget == {
        "max_usd": 10.0,
        "soft_usd": 8.0,
        "spent_usd": 0.0,
        "reserved_usd": 0.0,
        "remaining_usd": 10.0,
        "window": "1d",
        "resets_at": "1970-04-12T00:00:00Z",
    }


def test_reservations_are_exact_in_micro_usd(ledger: Ledger) -> None:
    ids = [reserve(ledger, 0.1).id for _ in range(100)]
    assert ids == list(range(1, 101))
    assert isinstance(ledger.reserve(0.000001, 1, None), Refusal)
    assert ledger.budget().remaining_micros == 0


def test_settle_and_release_move_money(ledger: Ledger, tmp_path: Path) -> None:
    first, second = reserve(ledger, 3.0), reserve(ledger, 2.0)
    assert ledger.settle(first.id, 2.5)
    assert ledger.release(second.id)
    assert not ledger.settle(first.id, 1.0), "a settled reservation settles once"
    budget = ledger.budget()
    assert (budget.reserved_micros, budget.spent_micros) == (0, 2_500_000)
    assert sums_micros(tmp_path / "l.db") == (0, 2_500_000)


def test_running_totals_equal_the_sums(ledger: Ledger, tmp_path: Path) -> None:
    for cost_usd in (1.25, 0.5, 3.0, 2.0):
        reserve(ledger, cost_usd)
    assert ledger.settle(2, 0.75)
    budget = ledger.budget()
    assert (budget.reserved_micros, budget.spent_micros) == sums_micros(tmp_path / "l.db")
    assert budget.as_json()["remaining_usd"] == 10.0 - 6.25 - 0.75


def test_notifications_once_per_window(ledger: Ledger, clock: ManualClock) -> None:
    for _ in range(5):
        ledger.reserve(2.0, 2, None)
    for _ in range(3):
        assert isinstance(ledger.reserve(2.0, 4, None), Refusal)
    kinds = [n.kind for n in ledger.notifications(0, 100)]
    assert kinds == [BUDGET_SOFT_LIMIT, BUDGET_EXHAUSTED]
    clock.now_s += DAY_S
    assert ledger.budget().committed_micros == 0, "a new window starts empty"
    for _ in range(6):
        ledger.reserve(2.0, 2, None)
    kinds = [n.kind for n in ledger.notifications(2, 100)]
    assert kinds == [BUDGET_SOFT_LIMIT, BUDGET_EXHAUSTED]


def test_soft_limit_fires_on_reaching_it(ledger: Ledger) -> None:
    for _ in range(3):
        reserve(ledger, 2.0)
    assert ledger.notifications(0, 10) == []
    reserve(ledger, 2.0)  # 8.0 of 10.0: reaches the 80 % soft limit
    (notice,) = ledger.notifications(0, 10)
    assert (notice.id, notice.kind) == (1, BUDGET_SOFT_LIMIT)
    assert notice.details == {"committed_usd": 8.0, "soft_usd": 8.0, "max_usd": 10.0}


def test_set_budget_keeps_spend_and_rearms(ledger: Ledger) -> None:
    for _ in range(4):
        reserve(ledger, 2.0)
    budget = ledger.set_budget(20.0, 9.0, "12h")
    assert (budget.max_micros, budget.soft_micros, budget.reserved_micros) == (
        20_000_000,
        9_000_000,
        8_000_000,
    )
    reserve(ledger, 1.0)
    kinds = [n.kind for n in ledger.notifications(0, 10)]
    assert kinds == [BUDGET_SOFT_LIMIT, BUDGET_SOFT_LIMIT]


def test_reset_clears_but_ids_keep_increasing(ledger: Ledger) -> None:
    for _ in range(6):
        ledger.reserve(2.0, 2, None)
    budget = ledger.reset()
    assert (budget.committed_micros, budget.max_micros) == (0, 10_000_000)
    assert ledger.notifications(0, 10) == []
    assert reserve(ledger, 8.0).id == 6
    assert [n.id for n in ledger.notifications(0, 10)] == [3]


def test_reopening_keeps_everything(tmp_path: Path, clock: ManualClock) -> None:
    path = str(tmp_path / "l.db")
    first = Ledger(path, default_max_usd=10.0, default_window="1d", clock=clock)
    first.set_budget(50.0, None, None)
    first.reserve(7.5, 5, "a")
    first.close()
    again = Ledger(path, default_max_usd=99.0, default_window="1h", clock=clock)
    try:
        budget = again.budget()
        assert (budget.max_micros, budget.reserved_micros, budget.window) == (
            50_000_000,
            7_500_000,
            "1d",
        )
    finally:
        again.close()
