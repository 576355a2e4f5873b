"""The ledger's tables, their schema version and migrations, and how their rows become records
(Decimal as text, enums as values).

The file's version is SQLite's `user_version`. `SCHEMA` is version 1 (a file written before
versions were kept holds exactly those tables, and counts as version 1); each step of
`MIGRATIONS` takes a file from its version to the next, all in one transaction at open, so an
existing volume is upgraded in place and a crash during the upgrade leaves it as it was. A file
of a newer version than this code knows is refused, never written (see `migrate`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.ledger.records import (
    CopyRecord,
    CopyState,
    Decision,
    LedgerError,
    MasterOrderRecord,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS master_orders (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    txid               TEXT NOT NULL UNIQUE,
    pair               TEXT NOT NULL,
    side               TEXT NOT NULL,
    order_type         TEXT NOT NULL,
    volume             TEXT NOT NULL,
    price              TEXT,
    price2             TEXT,
    oflags             TEXT NOT NULL,
    timeinforce        TEXT NOT NULL,
    expiretm           REAL,
    opentm             REAL NOT NULL,
    status             TEXT NOT NULL,
    vol_exec           TEXT NOT NULL,
    avg_price          TEXT,
    decision           TEXT NOT NULL,
    skip_reason        TEXT,
    master_equity      TEXT,
    master_base_before TEXT,
    first_seen_at      REAL NOT NULL,
    updated_at         REAL NOT NULL,
    summary_logged     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS copies (
    master_txid      TEXT NOT NULL REFERENCES master_orders(txid),
    user_id          TEXT NOT NULL,
    cl_ord_id        TEXT NOT NULL UNIQUE,
    state            TEXT NOT NULL,
    volume           TEXT,
    price            TEXT,
    price2           TEXT,
    txid             TEXT,
    reason           TEXT,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    acked_at         REAL,
    latency_ms       REAL,
    run_id           TEXT,
    PRIMARY KEY (master_txid, user_id)
);
CREATE INDEX IF NOT EXISTS copies_by_user_state ON copies (user_id, state);
CREATE INDEX IF NOT EXISTS copies_by_state ON copies (state, user_id);
CREATE INDEX IF NOT EXISTS copies_to_cancel ON copies (cancel_requested, user_id);
CREATE INDEX IF NOT EXISTS master_by_status ON master_orders (status);
"""

# Version 2: `master_orders.recorded_by` says what recorded the order: 'feed' (a poll saw it),
# 'rebuild' (the start-up comparison with the exchange, after the ledger was lost or behind).
# Version 3: `risk_state`, per user: the equity high-water mark and the drawdown stop.
# Version 4: `risk_events`: what the risk gates did (a drawdown stop, a capped copy's unfilled
# part), one row each, `detail` a JSON object.
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE master_orders ADD COLUMN recorded_by TEXT NOT NULL DEFAULT 'feed';",
    2: """CREATE TABLE IF NOT EXISTS risk_state (
    user_id        TEXT PRIMARY KEY,
    equity_mark    TEXT,
    mark_at        REAL,
    drawdown_stop  INTEGER NOT NULL DEFAULT 0,
    stop_reason    TEXT,
    stopped_at     REAL,
    updated_at     REAL NOT NULL
);""",
    3: """CREATE TABLE IF NOT EXISTS risk_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    master_txid  TEXT,
    detail       TEXT NOT NULL
);""",
}
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    """The file's schema version: `user_version`, or 1 for a file with the version-1 tables
    written before versions were kept, or 0 for an empty file."""
    version = int(db.execute("PRAGMA user_version").fetchall()[0][0])
    if version:
        return version
    tables = db.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'master_orders'"
    ).fetchall()[0][0]
    return 1 if tables else 0


def migrate(db: sqlite3.Connection) -> tuple[int, int]:
    """Bring the file to SCHEMA_VERSION in one transaction; returns (found, now) versions.
    Raises LedgerError for a file of a newer version (written by a newer copytrader): reading
    it with older code could misread or drop what the newer one relies on."""
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger has schema version {found}, newer than this copytrader's"
            f" {SCHEMA_VERSION}: run the newer version, or move the file away to rebuild it"
            " from the exchange"
        )
    if found == SCHEMA_VERSION:
        return found, found
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)  # again, under the write lock: another opener may have
        if version == 0:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            version = 1
        while version < SCHEMA_VERSION:
            db.execute(MIGRATIONS[version])
            version += 1
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return found, SCHEMA_VERSION


COPY_COLUMNS = (
    "c.master_txid, c.user_id, c.cl_ord_id, c.state, m.seq, c.volume, c.price, c.price2, c.txid,"
    " c.reason, c.error, c.attempts, c.next_attempt_at, c.cancel_requested, c.created_at,"
    " c.updated_at, c.acked_at, c.latency_ms, c.run_id"
)
# The same columns in the same order, as an UPDATE of `copies` can return them (the master
# order's seq by a subquery: RETURNING may name only the updated table).
COPY_RETURNING = (
    "master_txid, user_id, cl_ord_id, state,"
    " (SELECT m.seq FROM master_orders m WHERE m.txid = copies.master_txid), volume, price,"
    " price2, txid, reason, error, attempts, next_attempt_at, cancel_requested, created_at,"
    " updated_at, acked_at, latency_ms, run_id"
)
MASTER_COLUMNS = (
    "txid, pair, side, order_type, volume, price, price2, oflags, timeinforce, expiretm, opentm,"
    " status, vol_exec, avg_price, decision, skip_reason, first_seen_at, seq, master_equity,"
    " master_base_before"
)
# Work the copier still owes: not terminal, or placed with a cancel to carry out. Two
# conditions (not one with OR) so that each can use its index.
UNSENT_WHERE = "c.state IN ('planned', 'submitting')"
CANCEL_WHERE = "c.cancel_requested = 1 AND c.state = 'placed'"


_ORDER_TYPES = frozenset(item.value for item in OrderType)


def first_row(cursor: sqlite3.Cursor) -> Any:
    """The first row or None, reading to the end so the statement is finished at once (an
    unfinished SELECT keeps a read snapshot open, which stops WAL checkpoints)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def select_copies(db: sqlite3.Connection, where: str, params: Sequence[object]) -> list[CopyRecord]:
    """The copies matching `where` (on `c` copies joined with `m` master_orders), in the order
    the master orders were first seen, then by user."""
    rows = db.execute(
        f"SELECT {COPY_COLUMNS} FROM copies c JOIN master_orders m"  # noqa: S608
        f" ON m.txid = c.master_txid WHERE {where} ORDER BY m.seq, c.user_id",
        tuple(params),
    ).fetchall()
    return [copy_from_row(row) for row in rows]


def master_from_row(row: Any) -> MasterOrderRecord:
    (
        txid, pair, side, order_type, volume, price, price2, oflags, timeinforce, expiretm,
        opentm, status, vol_exec, avg_price, decision, skip_reason, first_seen_at, seq,
        master_equity, master_base_before,
    ) = row  # fmt: skip
    return MasterOrderRecord(
        txid=str(txid),
        pair=str(pair),
        side=Side(str(side)),
        order_type=OrderType(order_type) if order_type in _ORDER_TYPES else None,
        volume=Decimal(str(volume)),
        price=decimal_or_none(price),
        price2=decimal_or_none(price2),
        oflags=frozenset(flag for flag in str(oflags).split(",") if flag),
        timeinforce=TimeInForce(str(timeinforce)),
        expiretm=None if expiretm is None else float(expiretm),
        opentm=float(opentm),
        status=OrderStatus(str(status)),
        vol_exec=Decimal(str(vol_exec)),
        avg_price=decimal_or_none(avg_price),
        decision=Decision(str(decision)),
        skip_reason=None if skip_reason is None else str(skip_reason),
        first_seen_at=float(first_seen_at),
        seq=int(seq),
        master_equity=decimal_or_none(master_equity),
        master_base_before=decimal_or_none(master_base_before),
    )


def copy_from_row(row: Any) -> CopyRecord:
    (
        master_txid, user_id, cl_ord_id, state, seq, volume, price, price2, txid, reason, error,
        attempts, next_attempt_at, cancel_requested, created_at, updated_at, acked_at, latency_ms,
        run_id,
    ) = row  # fmt: skip
    return CopyRecord(
        master_txid=str(master_txid),
        user_id=str(user_id),
        cl_ord_id=str(cl_ord_id),
        state=CopyState(str(state)),
        seq=int(seq),
        volume=decimal_or_none(volume),
        price=decimal_or_none(price),
        price2=decimal_or_none(price2),
        txid=None if txid is None else str(txid),
        reason=None if reason is None else str(reason),
        error=None if error is None else str(error),
        attempts=int(attempts),
        next_attempt_at=None if next_attempt_at is None else float(next_attempt_at),
        cancel_requested=bool(cancel_requested),
        created_at=float(created_at),
        updated_at=float(updated_at),
        acked_at=None if acked_at is None else float(acked_at),
        latency_ms=None if latency_ms is None else float(latency_ms),
        written_by_run=None if run_id is None else str(run_id),
    )
