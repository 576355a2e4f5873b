"""What the risk gates keep: each user's equity high-water mark and drawdown stop
(`risk_state`), and what the gates did (`risk_events`: a drawdown stop, the unfilled part of a
copy capped by `max_slippage_bps`, a stop lifted by the operator)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from copytrader.ledger.schema import decimal_or_none, first_row
from copytrader.ledger.store import LedgerStore


@dataclass(frozen=True)
class RiskState:
    """One user's risk state: the highest equity seen (the mark) and the drawdown stop."""

    user_id: str
    equity_mark: Decimal | None
    mark_at: float | None
    drawdown_stop: bool
    stop_reason: str | None
    stopped_at: float | None


@dataclass(frozen=True)
class RiskEvent:
    id: int
    at: float
    user_id: str
    kind: str
    master_txid: str | None
    detail: dict[str, Any]


_STATE_COLUMNS = "user_id, equity_mark, mark_at, drawdown_stop, stop_reason, stopped_at"


def _state(row: Any, user_id: str) -> RiskState:
    if row is None:
        return RiskState(user_id, None, None, False, None, None)
    return RiskState(
        user_id=str(row[0]),
        equity_mark=decimal_or_none(row[1]),
        mark_at=None if row[2] is None else float(row[2]),
        drawdown_stop=bool(row[3]),
        stop_reason=None if row[4] is None else str(row[4]),
        stopped_at=None if row[5] is None else float(row[5]),
    )


class RiskRecords(LedgerStore):
    """Reads and writes of `risk_state` and `risk_events` (each one transaction)."""

    def risk_state(self, user_id: str) -> RiskState:
        with self._reading() as db:
            row = first_row(
                db.execute(
                    f"SELECT {_STATE_COLUMNS} FROM risk_state WHERE user_id = ?",  # noqa: S608
                    (user_id,),
                )
            )
        return _state(row, user_id)

    def note_equity(self, user_id: str, equity: Decimal) -> RiskState:
        """Raise the user's high-water mark to `equity` if it is higher (or the first); the
        state after."""

        def _op(db: sqlite3.Connection) -> RiskState:
            now = self._clock()
            db.execute(
                "INSERT INTO risk_state (user_id, equity_mark, mark_at, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
                (user_id, str(equity), now, now),
            )
            row = first_row(
                db.execute("SELECT equity_mark FROM risk_state WHERE user_id = ?", (user_id,))
            )
            mark = decimal_or_none(row[0]) if row is not None else None
            if mark is None or equity > mark:
                db.execute(
                    "UPDATE risk_state SET equity_mark = ?, mark_at = ?, updated_at = ?"
                    " WHERE user_id = ?",
                    (str(equity), now, now, user_id),
                )
            return _state(
                first_row(
                    db.execute(
                        f"SELECT {_STATE_COLUMNS} FROM risk_state WHERE user_id = ?",  # noqa: S608
                        (user_id,),
                    )
                ),
                user_id,
            )

        return self._write(_op)

    def set_drawdown_stop(self, user_id: str, reason: str, detail: dict[str, Any]) -> None:
        """Put the user in the drawdown stop (close-only until lifted), with its event row."""

        def _op(db: sqlite3.Connection) -> None:
            now = self._clock()
            db.execute(
                "UPDATE risk_state SET drawdown_stop = 1, stop_reason = ?, stopped_at = ?,"
                " updated_at = ? WHERE user_id = ?",
                (reason, now, now, user_id),
            )
            _insert_event(db, now, user_id, "drawdown_stop", None, detail)

        self._write(_op)

    def lift_drawdown_stop(self, user_id: str, equity: Decimal, detail: dict[str, Any]) -> None:
        """End the user's drawdown stop; the mark starts again from `equity`."""

        def _op(db: sqlite3.Connection) -> None:
            now = self._clock()
            db.execute(
                "UPDATE risk_state SET drawdown_stop = 0, stop_reason = NULL, stopped_at = NULL,"
                " equity_mark = ?, mark_at = ?, updated_at = ? WHERE user_id = ?",
                (str(equity), now, now, user_id),
            )
            _insert_event(db, now, user_id, "drawdown_reset", None, detail)

        self._write(_op)

    def record_risk_event(
        self, user_id: str, kind: str, master_txid: str | None, detail: dict[str, Any]
    ) -> None:
        def _op(db: sqlite3.Connection) -> None:
            _insert_event(db, self._clock(), user_id, kind, master_txid, detail)

        self._write(_op)

    def risk_events(self, user_id: str | None = None) -> list[RiskEvent]:
        where, params = ("WHERE user_id = ?", (user_id,)) if user_id else ("", ())
        with self._reading() as db:
            rows = db.execute(
                "SELECT id, at, user_id, kind, master_txid, detail FROM risk_events"  # noqa: S608
                f" {where} ORDER BY id",
                params,
            ).fetchall()
        return [
            RiskEvent(
                id=int(row[0]),
                at=float(row[1]),
                user_id=str(row[2]),
                kind=str(row[3]),
                master_txid=None if row[4] is None else str(row[4]),
                detail=dict(json.loads(str(row[5]))),
            )
            for row in rows
        ]


def _insert_event(
    db: sqlite3.Connection,
    at: float,
    user_id: str,
    kind: str,
    master_txid: str | None,
    detail: dict[str, Any],
) -> None:
    db.execute(
        "INSERT INTO risk_events (at, user_id, kind, master_txid, detail) VALUES (?, ?, ?, ?, ?)",
        (at, user_id, kind, master_txid, json.dumps(detail, sort_keys=True, default=str)),
    )
