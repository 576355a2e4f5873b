"""A read-only view of a ledger file, for `copytrader resync` and the status page beside a running
daemon: it never writes (SQLite's read-only mode), so it neither takes the write lock nor
migrates the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from copytrader.domain import OrderStatus
from copytrader.ledger.records import (
    CopyRecord,
    Decision,
    LedgerError,
    MasterOrderRecord,
    MasterState,
)
from copytrader.ledger.schema import MASTER_COLUMNS, first_row, master_from_row, select_copies


class LedgerView:
    """What `resync` compares with the exchange: baseline, master orders' states, copies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0,
                isolation_level=None,
            )  # fmt: skip
            self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        except sqlite3.Error as error:
            raise LedgerError(f"{path}: cannot be read ({error})") from error

    def close(self) -> None:
        self._db.close()

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchall()[0][0])

    def integrity(self) -> str:
        """SQLite's quick check: "ok", or what is wrong with the file."""
        rows = self._db.execute("PRAGMA quick_check").fetchall()
        return "; ".join(str(row[0]) for row in rows[:5])

    def baseline_at(self) -> float | None:
        try:
            row = first_row(self._db.execute("SELECT value FROM meta WHERE key = 'baseline_at'"))
        except sqlite3.Error:  # no tables yet
            return None
        return None if row is None else float(row[0])

    def master_states(self, txids: Iterable[str]) -> dict[str, MasterState]:
        wanted = list(dict.fromkeys(txids))
        found: dict[str, MasterState] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT txid, status, vol_exec, decision FROM master_orders"  # noqa: S608
                f" WHERE txid IN ({marks})",
                chunk,
            ).fetchall()
            for txid, status, vol_exec, decision in rows:
                found[txid] = MasterState(
                    txid, OrderStatus(status), Decimal(vol_exec), Decision(decision)
                )
        return found

    def all_copies(self) -> list[CopyRecord]:
        return select_copies(self._db, "1 = 1", ())

    def recent_master_orders(self, limit: int) -> list[MasterOrderRecord]:
        """The last `limit` master orders seen after the baseline, newest first."""
        rows = self._db.execute(
            f"SELECT {MASTER_COLUMNS} FROM master_orders"  # noqa: S608
            " WHERE decision != 'baseline' ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [master_from_row(row) for row in rows]

    def recent_copies(self, limit: int) -> list[CopyRecord]:
        """The copies of the last `limit` master orders that have copies, newest first."""
        newest = self._db.execute(
            "SELECT m.seq FROM master_orders m WHERE EXISTS (SELECT 1 FROM copies c"
            " WHERE c.master_txid = m.txid) ORDER BY m.seq DESC LIMIT 1 OFFSET ?",
            (max(0, limit - 1),),
        ).fetchall()
        floor = int(newest[0][0]) if newest else 0
        return list(reversed(select_copies(self._db, "m.seq >= ?", (floor,))))
