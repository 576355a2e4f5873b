"""What a rebuild of the ledger writes: copies found on the exchange recorded `placed` (never
sent again), with a cancel request when their master order has ended, and which master orders
the rebuild recorded.

These writes are for the start-up comparison with the exchange and for `copytrader resync
--apply`, never for a copy lane: each runs while no lane works (before the copier starts, or
with the data folder held), so a row it moves is not being sent at the same moment."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal

from copytrader.ledger.records import CopyRecord, CopyState, copy_client_order_id
from copytrader.ledger.schema import first_row, select_copies, text_or_none
from copytrader.ledger.store import LedgerStore

# A copy in one of these states whose order is on the exchange was sent after all (by a run
# whose record of it was lost): it becomes `placed`.
_ADOPTABLE = (CopyState.PLANNED, CopyState.SUBMITTING, CopyState.SKIPPED, CopyState.FAILED)


class LedgerRecovery(LedgerStore):
    """Writes of the rebuild (see the module's docstring)."""

    def adopt_found_copy(
        self,
        master_txid: str,
        user_id: str,
        *,
        txid: str,
        volume: Decimal,
        price: Decimal | None,
        price2: Decimal | None,
        cancel: bool,
        reason: str,
    ) -> CopyRecord | None:
        """Record the copy found on the exchange as `placed` (inserting its row if the ledger
        has none), asking for its cancel when `cancel`. Returns the row when this changed it,
        None when the ledger already said as much (placed, or cancelled). The master order
        must be recorded first."""

        def _op(db: sqlite3.Connection) -> CopyRecord | None:
            now = self._clock()
            row = first_row(
                db.execute(
                    "SELECT state, cancel_requested, txid FROM copies"
                    " WHERE master_txid = ? AND user_id = ?",
                    (master_txid, user_id),
                )
            )
            found = (txid, str(volume), text_or_none(price), text_or_none(price2))
            if row is None:
                db.execute(
                    "INSERT INTO copies (master_txid, user_id, cl_ord_id, state, txid, volume,"
                    " price, price2, reason, cancel_requested, created_at, updated_at, acked_at,"
                    " run_id) VALUES (?, ?, ?, 'placed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (master_txid, user_id, copy_client_order_id(master_txid, user_id), *found,
                     reason, int(cancel), now, now, now, self.run_id),
                )  # fmt: skip
            elif CopyState(str(row[0])) in _ADOPTABLE:
                db.execute(
                    "UPDATE copies SET state = 'placed', txid = ?, volume = ?, price = ?,"
                    " price2 = ?, reason = ?, error = NULL, next_attempt_at = NULL,"
                    " cancel_requested = ?, attempts = 0, acked_at = ?, updated_at = ?,"
                    " run_id = ? WHERE master_txid = ? AND user_id = ?",
                    (*found, reason, int(cancel), now, now, self.run_id, master_txid, user_id),
                )
            elif CopyState(str(row[0])) is CopyState.PLACED and (
                (cancel and not row[1]) or row[2] is None
            ):
                db.execute(
                    "UPDATE copies SET txid = COALESCE(txid, ?),"
                    " cancel_requested = MAX(cancel_requested, ?),"
                    " attempts = CASE WHEN ? AND cancel_requested = 0 THEN 0 ELSE attempts END,"
                    " updated_at = ?, run_id = ? WHERE master_txid = ? AND user_id = ?",
                    (txid, int(cancel), int(cancel), now, self.run_id, master_txid, user_id),
                )
            else:
                return None
            return select_copies(db, "c.master_txid = ? AND c.user_id = ?", (master_txid, user_id))[
                0
            ]

        return self._write(_op)

    def mark_recorded_by_rebuild(self, txids: Iterable[str]) -> None:
        """Note that these master orders were recorded by a rebuild, not seen by the feed."""
        wanted = list(dict.fromkeys(txids))

        def _op(db: sqlite3.Connection) -> None:
            for txid in wanted:
                db.execute(
                    "UPDATE master_orders SET recorded_by = 'rebuild' WHERE txid = ?", (txid,)
                )

        if wanted:
            self._write(_op)

    def recorded_by_rebuild(self) -> list[str]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT txid FROM master_orders WHERE recorded_by = 'rebuild' ORDER BY seq"
            ).fetchall()
        return [str(row[0]) for row in rows]
