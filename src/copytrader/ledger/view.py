"""A read-only view of a ledger file, for `copytrader resync` beside a running daemon: it never
writes (SQLite's read-only mode), so it neither takes the write lock nor migrates the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from copytrader.domain import OrderStatus
from copytrader.ledger.records import CopyRecord, Decision, LedgerError, MasterState
from copytrader.ledger.schema import first_row, select_copies


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
