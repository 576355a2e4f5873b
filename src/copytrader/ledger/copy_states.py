"""Copy state transitions: planned -> submitting -> placed | skipped | failed | cancelled.

Each transition is one conditional UPDATE (returning the row, in one call into SQLite: see
LedgerStore._write_statement) that only succeeds from its allowed states, so a
copy that moved on meanwhile (the master's cancel skipped it) raises LedgerError instead of
being overwritten; every row written records the run that wrote it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from copytrader.ledger.records import CopyRecord, CopyState, CopySummary, LedgerError
from copytrader.ledger.schema import COPY_RETURNING, copy_from_row, first_row, select_copies
from copytrader.ledger.store import LedgerStore


@dataclass(frozen=True)
class _Move:
    """A transition: the states a copy may be in before it, the state after it."""

    from_states: tuple[CopyState, ...]
    to_state: CopyState
    count_attempt: bool = False


_NOT_SENT = (CopyState.PLANNED, CopyState.SUBMITTING)
# Re-entered (from submitting) for each new attempt, which counts it.
_SUBMIT = _Move(_NOT_SENT, CopyState.SUBMITTING, count_attempt=True)
# The batch (copying/batch.py) decides from a read taken a moment earlier: it may only move
# rows that are still planned, never re-enter one a lane has meanwhile marked (and sent).
_SUBMIT_PLANNED = _Move((CopyState.PLANNED,), CopyState.SUBMITTING, count_attempt=True)
_PLACE = _Move((CopyState.SUBMITTING,), CopyState.PLACED)
_SKIP = _Move(_NOT_SENT, CopyState.SKIPPED)
_FAIL = _Move(_NOT_SENT, CopyState.FAILED)
_CANCEL = _Move((CopyState.PLACED,), CopyState.CANCELLED)
_KEEP_PLACED = _Move((CopyState.PLACED,), CopyState.PLACED)
# A copy skipped before it was sent whose order turns out to be on the exchange (an earlier
# run sent it): it is placed after all.
_FOUND_AFTER_SKIP = _Move((CopyState.SKIPPED,), CopyState.PLACED)


class CopyStateMachine(LedgerStore):
    """The copies' states, moved only along the allowed transitions."""

    def _transition_statement(
        self, move: _Move, master_txid: str, user_id: str, fields: dict[str, object]
    ) -> tuple[str, tuple[object, ...]]:
        """The conditional UPDATE of one transition, returning the row it moved (or none)."""
        allowed = tuple(state.value for state in move.from_states)
        assignments = ["state = ?", "updated_at = ?", "run_id = ?"]
        if move.count_attempt:
            assignments.append("attempts = attempts + 1")
        values: list[object] = [move.to_state.value, self._clock(), self.run_id]
        for column, value in fields.items():
            assignments.append(f"{column} = ?")
            values.append(str(value) if isinstance(value, Decimal) else value)
        marks = ",".join("?" * len(allowed))
        sql = (
            f"UPDATE copies SET {', '.join(assignments)}"  # noqa: S608
            f" WHERE master_txid = ? AND user_id = ? AND state IN ({marks})"
            f" RETURNING {COPY_RETURNING}"
        )
        return sql, (*values, master_txid, user_id, *allowed)

    def _transition(
        self, move: _Move, master_txid: str, user_id: str, **fields: object
    ) -> CopyRecord:
        rows = self._write_statement(
            *self._transition_statement(move, master_txid, user_id, fields)
        )
        if len(rows) != 1:
            with self._reading() as db:
                found = select_copies(
                    db, "c.master_txid = ? AND c.user_id = ?", (master_txid, user_id)
                )
            current = found[0].state.value if found else "absent"
            allowed = ", ".join(state.value for state in move.from_states)
            raise LedgerError(
                f"copy of {master_txid} for {user_id}: cannot go {current} -> "
                f"{move.to_state.value} (allowed from {allowed})"
            )
        return copy_from_row(rows[0])

    def mark_submitting(
        self,
        master_txid: str,
        user_id: str,
        *,
        volume: Decimal,
        price: Decimal | None,
        price2: Decimal | None,
    ) -> CopyRecord:
        """Written just before AddOrder: from here on the outcome must be looked up, not guessed.
        Re-entered (from submitting) for each new attempt, which counts it."""
        order = {"volume": volume, "price": price, "price2": price2}
        return self._transition(
            _SUBMIT, master_txid, user_id, **order, next_attempt_at=None, error=None
        )

    def mark_submitting_many(
        self, copies: list[tuple[str, str, Decimal, Decimal | None, Decimal | None]]
    ) -> list[CopyRecord | None]:
        """`mark_submitting` of many copies, (master txid, user id, volume, price, price2) each,
        in one transaction: the copier sizes the copies of a new master order together and
        writes them at once, before any lane sends (see Copier.kick). None for a copy that
        was no longer planned (the master's cancel or its lane moved it meanwhile)."""
        statements = [
            self._transition_statement(
                _SUBMIT_PLANNED, master_txid, user_id,
                {"volume": volume, "price": price, "price2": price2,
                 "next_attempt_at": None, "error": None},
            )
            for master_txid, user_id, volume, price, price2 in copies
        ]  # fmt: skip

        def _op(db: sqlite3.Connection) -> list[CopyRecord | None]:
            moved: list[CopyRecord | None] = []
            for sql, params in statements:
                rows = db.execute(sql, params).fetchall()
                moved.append(copy_from_row(rows[0]) if rows else None)
            return moved

        return self._write(_op)

    def mark_placed(
        self,
        master_txid: str,
        user_id: str,
        *,
        txid: str | None,
        acked_at: float,
        latency_ms: float | None,
        reason: str | None = None,
    ) -> CopyRecord:
        ack = {"txid": txid, "acked_at": acked_at, "latency_ms": latency_ms, "reason": reason}
        return self._transition(
            _PLACE, master_txid, user_id, **ack, error=None, next_attempt_at=None
        )

    def mark_found_after_skip(
        self,
        master_txid: str,
        user_id: str,
        *,
        txid: str,
        volume: Decimal,
        price: Decimal | None,
        price2: Decimal | None,
        acked_at: float,
        cancel: bool,
        reason: str,
    ) -> CopyRecord:
        """A skipped copy's order was found on the exchange: record it placed, with a cancel
        request if it is still open (it was skipped because it should not be there)."""
        found = {"txid": txid, "volume": volume, "price": price, "price2": price2}
        return self._transition(
            _FOUND_AFTER_SKIP, master_txid, user_id, **found, acked_at=acked_at,
            cancel_requested=int(cancel), reason=reason, error=None, next_attempt_at=None,
        )  # fmt: skip

    def mark_skipped(self, master_txid: str, user_id: str, *, reason: str) -> CopyRecord:
        return self._transition(_SKIP, master_txid, user_id, reason=reason, next_attempt_at=None)

    def mark_failed(self, master_txid: str, user_id: str, *, error: str) -> CopyRecord:
        return self._transition(_FAIL, master_txid, user_id, error=error, next_attempt_at=None)

    def schedule_retry(
        self,
        master_txid: str,
        user_id: str,
        *,
        next_attempt_at: float,
        error: str,
        state: CopyState = CopyState.SUBMITTING,
        count_attempt: bool = False,
    ) -> CopyRecord:
        """A try failed transiently: keep the state (`planned`, nothing was sent; `submitting`,
        so the next try starts with a lookup on Kraken; or `placed` with a cancel still to do)
        and wait until `next_attempt_at`. `count_attempt`: the failed try counts against the
        copy's attempts (a send already counted itself when it wrote `submitting`)."""
        if state not in (CopyState.PLANNED, CopyState.SUBMITTING, CopyState.PLACED):
            raise LedgerError(f"retries are for unfinished or placed copies, not {state.value}")
        stay = _Move((state,), state, count_attempt=count_attempt)
        return self._transition(
            stay, master_txid, user_id, next_attempt_at=next_attempt_at, error=error
        )

    def mark_cancelled(self, master_txid: str, user_id: str, *, reason: str) -> CopyRecord:
        return self._transition(_CANCEL, master_txid, user_id, cancel_requested=0, reason=reason)

    def clear_cancel_request(
        self, master_txid: str, user_id: str, *, reason: str, error: str | None = None
    ) -> CopyRecord:
        """The copy is not to be cancelled after all (it already filled, or cancelling it
        failed for good, `error` then says why): keep it placed, note why."""
        return self._transition(
            _KEEP_PLACED, master_txid, user_id, cancel_requested=0, reason=reason, error=error,
            next_attempt_at=None,
        )  # fmt: skip

    # ---- summaries ----------------------------------------------------------------------

    def claim_summary(self, master_txid: str) -> CopySummary | None:
        """Once every copy of the master order is terminal, return its summary exactly once
        (to whichever thread asks first); None before that and after."""
        # Every copy's outcome asks, but only the last one can claim: a read (this thread's
        # own connection, no writer round trip) answers the others. It runs after the
        # caller's own outcome was committed, so the last copy to finish always sees all
        # copies finished; the write below checks again and claims exactly once.
        if not self._summary_due(master_txid):
            return None

        def _op(db: sqlite3.Connection) -> tuple[float, list[CopyRecord]] | None:
            row = first_row(
                db.execute(
                    "SELECT summary_logged, first_seen_at FROM master_orders WHERE txid = ?",
                    (master_txid,),
                )
            )
            if row is None or row[0]:
                return None
            unfinished = first_row(
                db.execute(
                    "SELECT COUNT(*) FROM copies WHERE master_txid = ?"
                    " AND state IN ('planned', 'submitting')",
                    (master_txid,),
                )
            )[0]
            if unfinished:
                return None
            copies = select_copies(db, "c.master_txid = ?", (master_txid,))
            db.execute("UPDATE master_orders SET summary_logged = 1 WHERE txid = ?", (master_txid,))
            return float(row[1]), copies

        claimed = self._write(_op)
        if claimed is None:
            return None
        first_seen_at, copies = claimed
        return CopySummary.of(master_txid, first_seen_at, copies)

    def _summary_due(self, master_txid: str) -> bool:
        """Whether every copy of the master order is finished and no summary was claimed."""
        with self._reading() as db:
            row = first_row(
                db.execute(
                    "SELECT m.summary_logged, (SELECT COUNT(*) FROM copies c"
                    " WHERE c.master_txid = m.txid AND c.state IN ('planned', 'submitting'))"
                    " FROM master_orders m WHERE m.txid = ?",
                    (master_txid,),
                )
            )
        return row is not None and not row[0] and not row[1]
