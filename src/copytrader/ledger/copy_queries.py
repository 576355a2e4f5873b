"""Reads of the copies: one copy, a master order's copies, a user's pending work, counts."""

from __future__ import annotations

from copytrader.ledger.records import CopyRecord, CopyState, LedgerError
from copytrader.ledger.schema import CANCEL_WHERE, UNSENT_WHERE, select_copies
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

    def all_copies(self) -> list[CopyRecord]:
        with self._reading() as db:
            return select_copies(db, "1 = 1", ())

    def pending_copies(self, user_id: str) -> list[CopyRecord]:
        """This user's unfinished work, in the order the master orders were first seen."""
        with self._reading() as db:
            found = select_copies(db, f"c.user_id = ? AND {UNSENT_WHERE}", (user_id,))
            found += select_copies(db, f"c.user_id = ? AND {CANCEL_WHERE}", (user_id,))
        return sorted(found, key=lambda copy: copy.seq)

    def users_with_pending_work(self) -> list[str]:
        users: set[str] = set()
        with self._reading() as db:
            for where in (UNSENT_WHERE, CANCEL_WHERE):
                rows = db.execute(
                    f"SELECT DISTINCT c.user_id FROM copies c WHERE {where}"  # noqa: S608
                ).fetchall()
                users.update(str(row[0]) for row in rows)
        return sorted(users)

    def state_counts(self) -> dict[str, int]:
        """Copies per state, for heartbeats and summaries."""
        with self._reading() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM copies GROUP BY state").fetchall()
        counts = {state.value: 0 for state in CopyState}
        counts.update({str(state): int(count) for state, count in rows})
        return counts
