"""Reads of the copies: one copy, a master order's copies, a user's pending work, counts."""

from __future__ import annotations

from copytrader.ledger.records import CopyRecord, CopyState, LedgerError
from copytrader.ledger.schema import (
    CANCEL_WHERE,
    COPY_COLUMNS,
    UNSENT_WHERE,
    copy_from_row,
    select_copies,
)
from copytrader.ledger.store import LedgerStore


class CopyQueries(LedgerStore):
    """Read models of the copies table (each read on the calling thread's own connection)."""

    def copy(self, master_txid: str, user_id: str) -> CopyRecord:
        with self._reading() as db:
            found = select_copies(db, "c.master_txid = ? AND c.user_id = ?", (master_txid, user_id))
        if not found:
            raise LedgerError(f"no copy of {master_txid} for {user_id}")
        return found[0]

    def copies_of(self, master_txid: str) -> list[CopyRecord]:
        with self._reading() as db:
            return select_copies(db, "c.master_txid = ?", (master_txid,))

    def copies_failed_with_unknown_outcome(self, since: float) -> list[CopyRecord]:
        """Copies that ended `failed` while they may have been sent (their ledger error starts
        "outcome unknown"), updated at or after `since`."""
        with self._reading() as db:
            return select_copies(
                db,
                "c.state = 'failed' AND c.error LIKE 'outcome unknown%' AND c.updated_at >= ?",
                (since,),
            )

    def all_copies(self) -> list[CopyRecord]:
        with self._reading() as db:
            return select_copies(db, "1 = 1", ())

    def pending_copies(self, user_id: str) -> list[CopyRecord]:
        """This user's unfinished work, in the order the master orders were first seen."""
        return self._pending("c.user_id = ? AND ", (user_id, user_id))

    def pending_copies_by_user(self) -> dict[str, list[CopyRecord]]:
        """Every user's unfinished work (as `pending_copies`), in one statement."""
        by_user: dict[str, list[CopyRecord]] = {}
        for copy in self._pending("", ()):
            by_user.setdefault(copy.user_id, []).append(copy)
        return by_user

    def _pending(self, narrowing: str, params: tuple[str, ...]) -> list[CopyRecord]:
        # One statement (each lane runs it before and after every copy): two SELECTs joined
        # by UNION ALL, so that each condition still uses its index.
        parts = [
            f"SELECT {COPY_COLUMNS} FROM copies c JOIN master_orders m"  # noqa: S608
            f" ON m.txid = c.master_txid WHERE {narrowing}{where}"
            for where in (UNSENT_WHERE, CANCEL_WHERE)
        ]
        with self._reading() as db:
            rows = db.execute(" UNION ALL ".join(parts), params).fetchall()
        return sorted((copy_from_row(row) for row in rows), key=lambda copy: copy.seq)

    def state_counts(self) -> dict[str, int]:
        """Copies per state, for heartbeats and summaries."""
        with self._reading() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM copies GROUP BY state").fetchall()
        counts = {state.value: 0 for state in CopyState}
        counts.update({str(state): int(count) for state, count in rows})
        return counts
