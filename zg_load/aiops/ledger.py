"""The budget ledger: one SQLite file holding the limit, reservations and notifications.

Guarantees:
- a reservation is admitted only inside one `BEGIN IMMEDIATE` transaction that checks
  spent + reserved + cost <= max, so committed money never exceeds the limit, whatever
  the concurrency and however many processes share the file;
- amounts are integer micro-USD: "limit 10, cost 3" admits exactly 3, with no float drift;
- the budget row carries running totals for the current window, so a check is O(1);
  they equal the sums over the window's reservations (tests check this);
- a notification is written in the transaction that causes it, at most once per kind
  per window and per limit (PUT /v1/budget re-arms both kinds);
- notification and reservation ids only increase, even across `reset`;
- a reservation ends once: settled (its actual cost replaces it), released, or expired
  (unused for the reservation lifetime; its money goes back).
The "reservation" and "notifications" defects (`enforce=False` on `reserve`, and
`notifications=False`) break the first and the notification guarantees on purpose.
WAL mode with synchronous=NORMAL: a commit survives a crash of the process; the last
commits may be lost on power loss. One connection, used from one thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import orjson

from zg_load.aiops.notify import Notice, Notification, exhausted_notice, soft_limit_notice
from zg_load.aiops.window import iso_utc, parse_window_s, window_start_s

MICROS_PER_USD = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    max_micros INTEGER NOT NULL,
    soft_micros INTEGER NOT NULL,
    window TEXT NOT NULL,
    window_s INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    spent_micros INTEGER NOT NULL,
    reserved_micros INTEGER NOT NULL,
    soft_notified INTEGER NOT NULL,
    exhausted_notified INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    amount_micros INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    agent_id TEXT,
    created_at REAL NOT NULL,
    window_start INTEGER NOT NULL,
    state TEXT NOT NULL,
    settled_micros INTEGER
);
CREATE INDEX IF NOT EXISTS reservations_open ON reservations (created_at)
    WHERE state = 'reserved';
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL,
    details TEXT NOT NULL
);
"""
_SELECT_BUDGET = (
    "SELECT max_micros, soft_micros, window, window_s, window_start, spent_micros,"
    " reserved_micros, soft_notified, exhausted_notified FROM budget WHERE id = 1"
)
_INSERT_BUDGET = (
    "INSERT INTO budget (max_micros, soft_micros, window, window_s, window_start,"
    " spent_micros, reserved_micros, soft_notified, exhausted_notified, id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
)
_SAVE_BUDGET = (
    "UPDATE budget SET max_micros = ?, soft_micros = ?, window = ?, window_s = ?,"
    " window_start = ?, spent_micros = ?, reserved_micros = ?, soft_notified = ?,"
    " exhausted_notified = ? WHERE id = 1"
)
_INSERT_RESERVATION = (
    "INSERT INTO reservations (amount_micros, priority, agent_id, created_at, window_start,"
    " state) VALUES (?, ?, ?, ?, ?, 'reserved')"
)
_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (kind, message, created_at, details) VALUES (?, ?, ?, ?)"
)


def to_micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def to_usd(micros: int) -> float:
    return micros / MICROS_PER_USD


@dataclass(frozen=True, slots=True)
class Budget:
    """The budget of the current window, in micro-USD."""

    max_micros: int
    soft_micros: int
    window: str
    window_s: int
    window_start_s: int
    spent_micros: int
    reserved_micros: int
    soft_notified: bool
    exhausted_notified: bool

    @property
    def committed_micros(self) -> int:
        return self.spent_micros + self.reserved_micros

    @property
    def remaining_micros(self) -> int:
        return max(0, self.max_micros - self.committed_micros)

    def as_json(self) -> dict[str, object]:
        return {
            "max_usd": to_usd(self.max_micros),
            "soft_usd": to_usd(self.soft_micros),
            "spent_usd": to_usd(self.spent_micros),
            "reserved_usd": to_usd(self.reserved_micros),
            "remaining_usd": to_usd(self.remaining_micros),
            "window": self.window,
            "resets_at": iso_utc(self.window_start_s + self.window_s),
        }


@dataclass(frozen=True, slots=True)
class Reservation:
    """An admitted approval: its money is reserved in the ledger."""

    id: int
    amount_micros: int
    budget: Budget


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused approval: the reservation would have crossed the hard limit."""

    requested_micros: int
    budget: Budget


class Ledger:
    """The SQLite budget ledger; see the module docstring for its guarantees."""

    def __init__(
        self,
        path: str,
        *,
        default_max_usd: float,
        default_window: str,
        clock: Callable[[], float] = time.time,
        notifications: bool = True,
    ) -> None:
        self._clock = clock
        self._notifications = notifications
        self._db = sqlite3.connect(path, isolation_level=None, cached_statements=64)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        with self._transaction():
            if self._db.execute(_SELECT_BUDGET).fetchone() is None:
                fresh = self._fresh_budget(to_micros(default_max_usd), None, default_window)
                self._db.execute(_INSERT_BUDGET, _budget_row(fresh))

    def close(self) -> None:
        self._db.close()

    def budget(self) -> Budget:
        """The current window's budget; a read that never writes."""
        return self._rolled(self._select())

    def set_budget(self, max_usd: float, soft_usd: float | None, window: str | None) -> Budget:
        """Set the limit (soft default: 80 % of max); keeps spend, re-arms notifications."""
        with self._transaction():
            current = self._rolled(self._select())
            fresh = self._fresh_budget(
                to_micros(max_usd),
                None if soft_usd is None else to_micros(soft_usd),
                window or current.window,
            )
            budget = replace(
                fresh, spent_micros=current.spent_micros, reserved_micros=current.reserved_micros
            )
            self._save(budget)
            return budget

    def reserve(
        self, cost_usd: float, priority: int, agent_id: str | None, *, enforce: bool = True
    ) -> Reservation | Refusal:
        """Reserve `cost_usd` if spent + reserved + cost <= max (always, unless `enforce`)."""
        cost_micros = to_micros(cost_usd)
        now_s = self._clock()
        with self._transaction():
            loaded = self._select()
            budget = self._rolled(loaded, now_s)
            if enforce and budget.committed_micros + cost_micros > budget.max_micros:
                refused = self._note_exhausted(budget, cost_micros, priority, now_s)
                if refused != loaded:
                    self._save(refused)
                return Refusal(cost_micros, refused)
            row = (cost_micros, priority, agent_id, now_s, budget.window_start_s)
            reservation_id = self._db.execute(_INSERT_RESERVATION, row).lastrowid
            budget = replace(budget, reserved_micros=budget.reserved_micros + cost_micros)
            budget = self._note_soft(budget, now_s)
            self._save(budget)
            return Reservation(int(reservation_id or 0), cost_micros, budget)

    def settle(self, reservation_id: int, actual_usd: float) -> bool:
        """Turn a reservation into spend of `actual_usd`; False if it is not reserved."""
        return self._close_reservation(reservation_id, "settled", to_micros(actual_usd))

    def release(self, reservation_id: int) -> bool:
        """Give a reservation's money back; False if it is not reserved."""
        return self._close_reservation(reservation_id, "released", 0)

    def is_reserved(self, reservation_id: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM reservations WHERE id = ? AND state = 'reserved'", (reservation_id,)
        ).fetchone()
        return row is not None

    def expire(self, ttl_s: float) -> int:
        """Release every reservation older than `ttl_s`; returns how many expired."""
        cutoff_s = self._clock() - ttl_s
        with self._transaction():
            rows = self._db.execute(
                "SELECT amount_micros, window_start FROM reservations"
                " WHERE state = 'reserved' AND created_at <= ?",
                (cutoff_s,),
            ).fetchall()
            if not rows:
                return 0
            self._db.execute(
                "UPDATE reservations SET state = 'expired', settled_micros = 0"
                " WHERE state = 'reserved' AND created_at <= ?",
                (cutoff_s,),
            )
            budget = self._rolled(self._select())
            freed = sum(amount for amount, start in rows if start == budget.window_start_s)
            self._save(replace(budget, reserved_micros=budget.reserved_micros - freed))
            return len(rows)

    def notify(self, notice: Notice) -> None:
        """Write a notification that no budget change caused (models, conflicts, alerts)."""
        with self._transaction():
            self._write(notice, self._clock())

    def notifications(self, since_id: int, limit: int) -> list[Notification]:
        """Notifications with id > since_id, oldest first, at most `limit`."""
        rows = self._db.execute(
            "SELECT id, kind, message, created_at, details FROM notifications"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (since_id, limit),
        ).fetchall()
        return [Notification(r[0], r[1], r[2], r[3], orjson.loads(r[4])) for r in rows]

    def reset(self) -> Budget:
        """Clear spend, reservations and notifications; keep the limit and the window."""
        with self._transaction():
            self._db.execute("DELETE FROM reservations")
            self._db.execute("DELETE FROM notifications")
            budget = replace(
                self._rolled(self._select()),
                spent_micros=0,
                reserved_micros=0,
                soft_notified=False,
                exhausted_notified=False,
            )
            self._save(budget)
            return budget

    def _close_reservation(self, reservation_id: int, state: str, spent_micros: int) -> bool:
        with self._transaction():
            row = self._db.execute(
                "SELECT amount_micros, window_start FROM reservations"
                " WHERE id = ? AND state = 'reserved'",
                (reservation_id,),
            ).fetchone()
            if row is None:
                return False
            self._db.execute(
                "UPDATE reservations SET state = ?, settled_micros = ? WHERE id = ?",
                (state, spent_micros, reservation_id),
            )
            budget = self._rolled(self._select())
            if row[1] == budget.window_start_s:  # money of past windows is not counted
                budget = replace(
                    budget,
                    reserved_micros=budget.reserved_micros - row[0],
                    spent_micros=budget.spent_micros + spent_micros,
                )
                budget = self._note_soft(budget, self._clock())
            self._save(budget)
            return True

    def _fresh_budget(self, max_micros: int, soft_micros: int | None, window: str) -> Budget:
        window_s = parse_window_s(window)
        soft = max_micros * 4 // 5 if soft_micros is None else soft_micros
        start_s = window_start_s(self._clock(), window_s)
        return Budget(
            max_micros, soft, window.strip().lower(), window_s, start_s, 0, 0, False, False
        )

    def _select(self) -> Budget:
        r = self._db.execute(_SELECT_BUDGET).fetchone()
        return Budget(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), bool(r[8]))

    def _rolled(self, budget: Budget, now_s: float | None = None) -> Budget:
        start_s = window_start_s(self._clock() if now_s is None else now_s, budget.window_s)
        if start_s <= budget.window_start_s:
            return budget
        return replace(
            budget,
            window_start_s=start_s,
            spent_micros=0,
            reserved_micros=0,
            soft_notified=False,
            exhausted_notified=False,
        )

    def _save(self, budget: Budget) -> None:
        self._db.execute(_SAVE_BUDGET, _budget_row(budget))

    def _note_soft(self, budget: Budget, now_s: float) -> Budget:
        if budget.soft_notified or budget.committed_micros < budget.soft_micros:
            return budget
        self._write(
            soft_limit_notice(
                to_usd(budget.committed_micros),
                to_usd(budget.soft_micros),
                to_usd(budget.max_micros),
            ),
            now_s,
        )
        return replace(budget, soft_notified=True)

    def _note_exhausted(
        self, budget: Budget, cost_micros: int, priority: int, now_s: float
    ) -> Budget:
        if budget.exhausted_notified:
            return budget
        self._write(
            exhausted_notice(
                to_usd(budget.committed_micros),
                to_usd(cost_micros),
                to_usd(budget.max_micros),
                priority,
            ),
            now_s,
        )
        return replace(budget, exhausted_notified=True)

    def _write(self, notice: Notice, now_s: float) -> None:
        if not self._notifications:
            return
        details = orjson.dumps(notice.details).decode()
        self._db.execute(_INSERT_NOTIFICATION, (notice.kind, notice.message, now_s, details))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _budget_row(b: Budget) -> tuple[int | str, ...]:
    return (
        b.max_micros,
        b.soft_micros,
        b.window,
        b.window_s,
        b.window_start_s,
        b.spent_micros,
        b.reserved_micros,
        int(b.soft_notified),
        int(b.exhausted_notified),
    )
