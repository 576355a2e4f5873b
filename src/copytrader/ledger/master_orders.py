"""The master orders the feed has seen, and the feed's own state (baseline time, cursor):
recorded once each, with their copies planned in the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from copytrader.domain import OrderStatus
from copytrader.ledger.records import (
    CopyRecord,
    CopyState,
    Decision,
    LedgerError,
    MasterOrderRecord,
    MasterState,
    copy_client_order_id,
)
from copytrader.ledger.schema import (
    MASTER_COLUMNS,
    first_row,
    master_from_row,
    select_copies,
    text_or_none,
)
from copytrader.ledger.store import LedgerStore


class MasterOrderBook(LedgerStore):
    """Master orders and the feed's baseline and cursor."""

    # How many times a master order's status was updated in this process: lets the copier
    # tell, without a read, that no master order changed since it sized a batch of copies.
    master_updates = 0

    def get_meta(self, key: str) -> str | None:
        with self._reading() as db:
            row = first_row(db.execute("SELECT value FROM meta WHERE key = ?", (key,)))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        def _op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        return self._write(_op)

    def baseline_at(self) -> float | None:
        """When the daemon first started on this data folder; None before the first start."""
        value = self.get_meta("baseline_at")
        return None if value is None else float(value)

    def feed_cursor(self) -> float | None:
        value = self.get_meta("feed_cursor")
        return None if value is None else float(value)

    def set_feed_cursor(self, value: float) -> None:
        self.set_meta("feed_cursor", repr(value))

    def record_baseline(
        self, baseline_at: float, orders: Iterable[MasterOrderRecord], cursor: float
    ) -> None:
        """First start: remember the time, the orders that already exist (never copied), and
        the cursor, all at once, so a crash halfway leaves no partial baseline."""

        def _op(db: sqlite3.Connection) -> None:
            for order in orders:
                self._insert_master(db, order, baseline=True)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('baseline_at', ?)"
                " ON CONFLICT(key) DO NOTHING",
                (repr(baseline_at),),
            )
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('feed_cursor', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (repr(cursor),),
            )

        return self._write(_op)

    # ---- master orders ------------------------------------------------------------------

    def _insert_master(
        self, db: sqlite3.Connection, order: MasterOrderRecord, *, baseline: bool = False
    ) -> bool:
        now = self._clock()
        decision = Decision.BASELINE if baseline else order.decision
        cursor = db.execute(
            "INSERT INTO master_orders (txid, pair, side, order_type, volume, price, price2,"
            " oflags, timeinforce, expiretm, opentm, status, vol_exec, avg_price, decision,"
            " skip_reason, master_equity, master_base_before, first_seen_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(txid) DO NOTHING",
            (
                order.txid,
                order.pair,
                order.side.value,
                order.order_type.value if order.order_type else "unsupported",
                str(order.volume),
                text_or_none(order.price),
                text_or_none(order.price2),
                ",".join(sorted(order.oflags)),
                order.timeinforce.value,
                order.expiretm,
                order.opentm,
                order.status.value,
                str(order.vol_exec),
                text_or_none(order.avg_price),
                decision.value,
                order.skip_reason,
                text_or_none(order.master_equity),
                text_or_none(order.master_base_before),
                order.first_seen_at or now,
                now,
            ),
        )
        return cursor.rowcount == 1

    def record_master_order(
        self,
        order: MasterOrderRecord,
        user_ids: Sequence[str],
        *,
        unavailable: Mapping[str, str] | None = None,
    ) -> bool:
        """Record a newly seen master order and, in the same transaction, one copy row per user:
        `planned` when the order is to be copied, `skipped` (with the order's skip reason)
        otherwise, none for a baseline order. Users in `unavailable` (user id -> why, e.g. not
        connected) get a `skipped` row with that reason. Returns False, changing nothing, when
        the order was already known."""

        def _op(db: sqlite3.Connection) -> bool:
            if not self._insert_master(db, order):
                return False
            if order.decision is Decision.BASELINE:
                return True
            now = self._clock()
            state = CopyState.PLANNED if order.decision is Decision.COPY else CopyState.SKIPPED
            reason = None if state is CopyState.PLANNED else order.skip_reason
            for user_id in user_ids:
                state_here: CopyState
                reason_here: str | None
                if unavailable and user_id in unavailable and state is CopyState.PLANNED:
                    state_here, reason_here = CopyState.SKIPPED, unavailable[user_id]
                else:
                    state_here, reason_here = state, reason
                db.execute(
                    "INSERT INTO copies (master_txid, user_id, cl_ord_id, state, reason,"
                    " created_at, updated_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        order.txid,
                        user_id,
                        copy_client_order_id(order.txid, user_id),
                        state_here.value,
                        reason_here,
                        now,
                        now,
                        self.run_id,
                    ),
                )
            return True

        return self._write(_op)

    def record_master_update(
        self, txid: str, status: OrderStatus, vol_exec: Decimal, *, reason: str = ""
    ) -> list[CopyRecord]:
        """Store the master order's new status and executed volume. When it ended without
        filling completely (cancelled, expired), copies not yet sent are skipped and copies
        sent or being sent are marked for cancelling. Returns the copies so marked."""

        def _op(db: sqlite3.Connection) -> list[CopyRecord]:
            row = first_row(db.execute("SELECT status FROM master_orders WHERE txid = ?", (txid,)))
            if row is None:
                raise LedgerError(f"unknown master order {txid}")
            now = self._clock()
            db.execute(
                "UPDATE master_orders SET status = ?, vol_exec = ?, updated_at = ? WHERE txid = ?",
                (status.value, str(vol_exec), now, txid),
            )
            if status not in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
                return []
            skip_reason = reason or f"master order {status.value} before the copy was sent"
            db.execute(
                "UPDATE copies SET state = 'skipped', reason = ?, updated_at = ?"
                " WHERE master_txid = ? AND state = 'planned'",
                (skip_reason, now, txid),
            )
            # A placed copy's cancel is a step of its own, with attempts of its own; a copy
            # still being sent keeps counting the tries at placing it.
            db.execute(
                "UPDATE copies SET cancel_requested = 1, updated_at = ?,"
                " attempts = CASE WHEN state = 'placed' THEN 0 ELSE attempts END"
                " WHERE master_txid = ? AND state IN ('submitting', 'placed')",
                (now, txid),
            )
            return select_copies(db, "c.master_txid = ? AND c.cancel_requested = 1", (txid,))

        marked = self._write(_op)
        self.master_updates += 1
        return marked

    def master_states(self, txids: Iterable[str]) -> dict[str, MasterState]:
        """What was last seen of these master orders; unknown txids are absent."""
        wanted = list(dict.fromkeys(txids))
        found: dict[str, MasterState] = {}
        with self._reading() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    "SELECT txid, status, vol_exec, decision FROM master_orders"  # noqa: S608
                    f" WHERE txid IN ({marks})",
                    chunk,
                ).fetchall()
                for txid, status, vol_exec, decision in rows:
                    found[txid] = MasterState(
                        txid, OrderStatus(status), Decimal(vol_exec), Decision(decision)
                    )
        return found

    def unfinished_master_txids(self) -> list[str]:
        """Known master orders last seen open or pending (the feed checks these each poll)."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT txid FROM master_orders WHERE status IN ('open', 'pending') ORDER BY seq"
            ).fetchall()
        return [str(row[0]) for row in rows]

    def master_order(self, txid: str) -> MasterOrderRecord:
        with self._reading() as db:
            row = first_row(
                db.execute(
                    f"SELECT {MASTER_COLUMNS} FROM master_orders WHERE txid = ?",  # noqa: S608
                    (txid,),
                )
            )
        if row is None:
            raise LedgerError(f"unknown master order {txid}")
        return master_from_row(row)

    def master_orders(self) -> list[MasterOrderRecord]:
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {MASTER_COLUMNS} FROM master_orders ORDER BY seq"  # noqa: S608
            ).fetchall()
        return [master_from_row(row) for row in rows]

    def newer_master_orders(self, pair: str, after_opentm: float) -> list[MasterOrderRecord]:
        """Copyable master orders on `pair` opened after `after_opentm` (for sizing a sell by
        the holding the master had before it)."""
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {MASTER_COLUMNS} FROM master_orders"  # noqa: S608
                " WHERE pair = ? AND opentm > ? AND decision != 'baseline' ORDER BY seq",
                (pair, after_opentm),
            ).fetchall()
        return [master_from_row(row) for row in rows]
