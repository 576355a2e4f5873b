"""The copy ledger: what the daemon has seen and done, in SQLite, so a restart loses nothing.

One file `copies.sqlite3` in the data folder (WAL journal), three tables:

- `master_orders`: each master order seen, recorded once, with what the feed last saw of it
  (status, executed volume), whether it is to be copied (`decision`) and the sizing inputs
  measured on the master when it was first seen (so a restart sizes the same way);
- `copies`: one row per (master order, user) with its state
  planned -> submitting -> placed | skipped | failed | cancelled, written before and after
  every call to Kraken, plus its deterministic `cl_ord_id`;
- `meta`: the feed's cursor and the baseline time of the very first start.

The ledger is the copier's work queue: whatever is not terminal is picked up again after a
crash. One connection is shared by the daemon's threads behind a lock; every method is one
transaction.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce

LEDGER_FILE_NAME = "copies.sqlite3"
# At most this many queued writes go into one transaction.
WRITE_BATCH_MAX = 500
WRITER_STOP_TIMEOUT_S = 10.0
_T = TypeVar("_T")

# Fixed namespace for copy ids; changing it would make a restarted daemon unable to recognise
# the copies an older version placed, so it must never change.
COPY_ID_NAMESPACE = uuid.UUID("5b0f6a8e-2c1d-5f0e-9a47-6b6f70797472")


def copy_client_order_id(master_txid: str, user_id: str) -> str:
    """The `cl_ord_id` of the copy of `master_txid` for `user_id`: a long (36-char) UUID.

    Kraken accepts a long UUID, a 32-hex short UUID or free text of at most 18 characters;
    a name-based UUID (uuid5) of both ids is deterministic, so any process can recompute it,
    and collision-free in practice, which free text of 18 characters could not be.
    """
    return str(uuid.uuid5(COPY_ID_NAMESPACE, f"{master_txid}\x1f{user_id}"))


class Decision(StrEnum):
    """What the daemon decided about a master order when it first saw it."""

    COPY = "copy"  # copies planned for every user
    SKIP = "skip"  # seen after the baseline but not copied (too old, cancelled before seen...)
    BASELINE = "baseline"  # existed before the daemon first started: never copied


class CopyState(StrEnum):
    PLANNED = "planned"
    SUBMITTING = "submitting"
    PLACED = "placed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset(
    {CopyState.PLACED, CopyState.SKIPPED, CopyState.FAILED, CopyState.CANCELLED}
)
FINAL_MASTER_STATUSES = frozenset({OrderStatus.CLOSED, OrderStatus.CANCELED, OrderStatus.EXPIRED})


@dataclass(frozen=True)
class MasterOrderRecord:
    """A master order as the copier needs it. `price`/`price2` follow Kraken's AddOrder meaning."""

    txid: str
    pair: str  # Kraken's altname, as the order's descr.pair gives it
    side: Side
    order_type: OrderType | None  # None: a Kraken type this project does not copy (skipped)
    volume: Decimal
    price: Decimal | None
    price2: Decimal | None
    oflags: frozenset[str]
    timeinforce: TimeInForce
    expiretm: float | None
    opentm: float
    status: OrderStatus
    vol_exec: Decimal
    avg_price: Decimal | None
    decision: Decision
    skip_reason: str | None = None
    first_seen_at: float = 0.0
    seq: int = 0  # order of first sight; the copier works through a user's copies in this order
    # Measured on the master when first seen, for equity_ratio sizing (None when not needed).
    master_equity: Decimal | None = None
    master_base_before: Decimal | None = None


@dataclass(frozen=True)
class MasterState:
    """What the feed last saw of a known master order."""

    txid: str
    status: OrderStatus
    vol_exec: Decimal
    decision: Decision


@dataclass(frozen=True)
class CopyRecord:
    master_txid: str
    user_id: str
    cl_ord_id: str
    state: CopyState
    seq: int
    volume: Decimal | None
    price: Decimal | None
    price2: Decimal | None
    txid: str | None
    reason: str | None
    error: str | None
    attempts: int
    next_attempt_at: float | None
    cancel_requested: bool
    created_at: float
    updated_at: float
    acked_at: float | None
    latency_ms: float | None
    written_by_run: str | None  # the run (process) that last wrote the row


@dataclass(frozen=True)
class CopySummary:
    """Counts of one master order's copies, once they are all terminal."""

    master_txid: str
    total: int
    placed: int
    skipped: int
    failed: int
    cancelled: int
    first_seen_at: float
    last_acked_at: float | None
    max_latency_ms: float | None


_SCHEMA = """
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

_COPY_COLUMNS = (
    "c.master_txid, c.user_id, c.cl_ord_id, c.state, m.seq, c.volume, c.price, c.price2, c.txid,"
    " c.reason, c.error, c.attempts, c.next_attempt_at, c.cancel_requested, c.created_at,"
    " c.updated_at, c.acked_at, c.latency_ms, c.run_id"
)
_MASTER_COLUMNS = (
    "txid, pair, side, order_type, volume, price, price2, oflags, timeinforce, expiretm, opentm,"
    " status, vol_exec, avg_price, decision, skip_reason, first_seen_at, seq, master_equity,"
    " master_base_before"
)
# Work the copier still owes: not terminal, or placed with a cancel to carry out. Two
# conditions (not one with OR) so that each can use its index.
_UNSENT_WHERE = "c.state IN ('planned', 'submitting')"
_CANCEL_WHERE = "c.cancel_requested = 1 AND c.state = 'placed'"


_ORDER_TYPES = frozenset(item.value for item in OrderType)


def _first(cursor: sqlite3.Cursor) -> Any:
    """The first row or None, reading to the end so the statement is finished at once (an
    unfinished SELECT keeps a read snapshot open, which stops WAL checkpoints)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class LedgerError(RuntimeError):
    """A ledger call that cannot be honoured (unknown row, illegal transition)."""


class Ledger:
    """The daemon's persistent memory. Thread-safe; every public method is one transaction."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        run_id: str | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        # Marks rows touched by this process, so copies planned by an earlier run (whose
        # outcome a crash may have hidden) can be told apart from this run's own.
        self.run_id = run_id or uuid.uuid4().hex
        self._lock = threading.Lock()  # guards the list of read connections
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writes: queue.SimpleQueue[
            tuple[Callable[[sqlite3.Connection], Any], Future[Any]] | None
        ] = queue.SimpleQueue()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the OS keeps the written pages); only a
        # power cut can lose the last commits, and copies planned by an earlier run are looked
        # up on Kraken before being sent again, which covers that case too.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        # The one write connection belongs to the writer thread from here on.
        self._writer = threading.Thread(target=self._write_loop, name="ledger-writer", daemon=True)
        self._writer.start()

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, run_id: str | None = None) -> Ledger:
        return cls(data_dir / LEDGER_FILE_NAME, run_id=run_id)

    def close(self) -> None:
        """Finish the queued writes, then close every connection."""
        if self._writer.is_alive():
            self._writes.put(None)
            self._writer.join(WRITER_STOP_TIMEOUT_S)
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection of this thread's own for reads: readers never wait for the writer
        (WAL), and many copy lanes read at once."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # Used by its own thread only; check_same_thread=False lets close() end it.
            db = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA query_only=ON")
            self._local.db = db
            with self._lock:
                self._readers.append(db)
        yield db

    def _write(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `operation` in a write transaction and return its result once committed.

        Writes from all threads go to one writer thread, which commits whatever has queued up
        in one transaction (group commit): a hundred copy lanes writing at once cost a few
        commits, not a hundred turns of a lock. Each operation runs inside a savepoint, so one
        that fails is undone alone and its error raised to its caller only.
        """
        if threading.get_ident() == self._writer.ident:
            raise LedgerError("ledger writes must not nest")
        done: Future[_T] = Future()
        self._writes.put((operation, done))
        return done.result()

    def _write_loop(self) -> None:
        while True:
            first = self._writes.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < WRITE_BATCH_MAX:
                try:
                    item = self._writes.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._writes.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit_batch(batch)

    def _commit_batch(
        self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]]
    ) -> None:
        db = self._db
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for operation, done in batch:
                db.execute("SAVEPOINT op")
                try:
                    result = operation(db)
                except Exception as error:  # noqa: BLE001 - handed to the caller below
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    outcomes.append((done, None, error))
                    continue
                db.execute("RELEASE op")
                outcomes.append((done, result, None))
            db.execute("COMMIT")
        except Exception as error:  # noqa: BLE001 - the whole batch failed: tell every caller
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            for _operation, done in batch:
                done.set_exception(error)
            return
        for done, result, failure in outcomes:
            if failure is None:
                done.set_result(result)
            else:
                done.set_exception(failure)

    # ---- meta: baseline and feed cursor -------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._reading() as db:
            row = _first(db.execute("SELECT value FROM meta WHERE key = ?", (key,)))
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
                _text(order.price),
                _text(order.price2),
                ",".join(sorted(order.oflags)),
                order.timeinforce.value,
                order.expiretm,
                order.opentm,
                order.status.value,
                str(order.vol_exec),
                _text(order.avg_price),
                decision.value,
                order.skip_reason,
                _text(order.master_equity),
                _text(order.master_base_before),
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
            row = _first(db.execute("SELECT status FROM master_orders WHERE txid = ?", (txid,)))
            if row is None:
                raise LedgerError(f"unknown master order {txid}")
            now = self._clock()
            db.execute(
                "UPDATE master_orders SET status = ?, vol_exec = ?, updated_at = ? WHERE txid = ?",
                (status.value, str(vol_exec), now, txid),
            )
            if status not in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
                return []
            skip_reason = reason or f"master order {status.value} before the copy was sent"
            db.execute(
                "UPDATE copies SET state = 'skipped', reason = ?, updated_at = ?"
                " WHERE master_txid = ? AND state = 'planned'",
                (skip_reason, now, txid),
            )
            db.execute(
                "UPDATE copies SET cancel_requested = 1, updated_at = ?"
                " WHERE master_txid = ? AND state IN ('submitting', 'placed')",
                (now, txid),
            )
            return self._copies(db, "c.master_txid = ? AND c.cancel_requested = 1", (txid,))

        return self._write(_op)

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
            row = _first(
                db.execute(
                    f"SELECT {_MASTER_COLUMNS} FROM master_orders WHERE txid = ?",  # noqa: S608
                    (txid,),
                )
            )
        if row is None:
            raise LedgerError(f"unknown master order {txid}")
        return _master_from_row(row)

    def master_orders(self) -> list[MasterOrderRecord]:
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {_MASTER_COLUMNS} FROM master_orders ORDER BY seq"  # noqa: S608
            ).fetchall()
        return [_master_from_row(row) for row in rows]

    def newer_master_orders(self, pair: str, after_opentm: float) -> list[MasterOrderRecord]:
        """Copyable master orders on `pair` opened after `after_opentm` (for sizing a sell by
        the holding the master had before it)."""
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {_MASTER_COLUMNS} FROM master_orders"  # noqa: S608
                " WHERE pair = ? AND opentm > ? AND decision != 'baseline' ORDER BY seq",
                (pair, after_opentm),
            ).fetchall()
        return [_master_from_row(row) for row in rows]

    # ---- copies -------------------------------------------------------------------------

    def _copies(
        self, db: sqlite3.Connection, where: str, params: Sequence[object]
    ) -> list[CopyRecord]:
        rows = db.execute(
            f"SELECT {_COPY_COLUMNS} FROM copies c JOIN master_orders m"  # noqa: S608
            f" ON m.txid = c.master_txid WHERE {where} ORDER BY m.seq, c.user_id",
            tuple(params),
        ).fetchall()
        return [_copy_from_row(row) for row in rows]

    def copy(self, master_txid: str, user_id: str) -> CopyRecord:
        with self._reading() as db:
            found = self._copies(db, "c.master_txid = ? AND c.user_id = ?", (master_txid, user_id))
        if not found:
            raise LedgerError(f"no copy of {master_txid} for {user_id}")
        return found[0]

    def copies_of(self, master_txid: str) -> list[CopyRecord]:
        with self._reading() as db:
            return self._copies(db, "c.master_txid = ?", (master_txid,))

    def all_copies(self) -> list[CopyRecord]:
        with self._reading() as db:
            return self._copies(db, "1 = 1", ())

    def pending_copies(self, user_id: str) -> list[CopyRecord]:
        """This user's unfinished work, in the order the master orders were first seen."""
        with self._reading() as db:
            found = self._copies(db, f"c.user_id = ? AND {_UNSENT_WHERE}", (user_id,))
            found += self._copies(db, f"c.user_id = ? AND {_CANCEL_WHERE}", (user_id,))
        return sorted(found, key=lambda copy: copy.seq)

    def users_with_pending_work(self) -> list[str]:
        users: set[str] = set()
        with self._reading() as db:
            for where in (_UNSENT_WHERE, _CANCEL_WHERE):
                rows = db.execute(
                    f"SELECT DISTINCT c.user_id FROM copies c WHERE {where}"  # noqa: S608
                ).fetchall()
                users.update(str(row[0]) for row in rows)
        return sorted(users)

    def _transition(
        self,
        master_txid: str,
        user_id: str,
        *,
        from_states: Iterable[CopyState],
        to_state: CopyState,
        count_attempt: bool = False,
        **fields: object,
    ) -> CopyRecord:
        allowed = tuple(state.value for state in from_states)
        assignments = ["state = ?", "updated_at = ?", "run_id = ?"]
        if count_attempt:
            assignments.append("attempts = attempts + 1")
        values: list[object] = [to_state.value, self._clock(), self.run_id]
        for column, value in fields.items():
            assignments.append(f"{column} = ?")
            values.append(str(value) if isinstance(value, Decimal) else value)
        marks = ",".join("?" * len(allowed))

        def _op(db: sqlite3.Connection) -> CopyRecord:
            cursor = db.execute(
                f"UPDATE copies SET {', '.join(assignments)}"  # noqa: S608
                f" WHERE master_txid = ? AND user_id = ? AND state IN ({marks})",
                (*values, master_txid, user_id, *allowed),
            )
            found = self._copies(db, "c.master_txid = ? AND c.user_id = ?", (master_txid, user_id))
            if cursor.rowcount != 1:
                current = found[0].state.value if found else "absent"
                raise LedgerError(
                    f"copy of {master_txid} for {user_id}: cannot go {current} -> "
                    f"{to_state.value} (allowed from {', '.join(allowed)})"
                )
            return found[0]

        return self._write(_op)

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
        return self._transition(
            master_txid,
            user_id,
            from_states=(CopyState.PLANNED, CopyState.SUBMITTING),
            to_state=CopyState.SUBMITTING,
            count_attempt=True,
            volume=volume,
            price=price,
            price2=price2,
            next_attempt_at=None,
            error=None,
        )

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
        return self._transition(
            master_txid,
            user_id,
            from_states=(CopyState.SUBMITTING,),
            to_state=CopyState.PLACED,
            txid=txid,
            acked_at=acked_at,
            latency_ms=latency_ms,
            reason=reason,
            error=None,
            next_attempt_at=None,
        )

    def mark_skipped(self, master_txid: str, user_id: str, *, reason: str) -> CopyRecord:
        return self._transition(
            master_txid,
            user_id,
            from_states=(CopyState.PLANNED, CopyState.SUBMITTING),
            to_state=CopyState.SKIPPED,
            reason=reason,
            next_attempt_at=None,
        )

    def mark_failed(self, master_txid: str, user_id: str, *, error: str) -> CopyRecord:
        return self._transition(
            master_txid,
            user_id,
            from_states=(CopyState.PLANNED, CopyState.SUBMITTING),
            to_state=CopyState.FAILED,
            error=error,
            next_attempt_at=None,
        )

    def schedule_retry(
        self,
        master_txid: str,
        user_id: str,
        *,
        next_attempt_at: float,
        error: str,
        state: CopyState = CopyState.SUBMITTING,
    ) -> CopyRecord:
        """The outcome is unknown or the call failed transiently: keep the state (`submitting`,
        so the next attempt starts with a lookup on Kraken; or `placed` with a cancel still to
        do) and wait until `next_attempt_at`."""
        if state not in (CopyState.SUBMITTING, CopyState.PLACED):
            raise LedgerError(f"retries are for submitting or placed copies, not {state.value}")
        return self._transition(
            master_txid,
            user_id,
            from_states=(state,),
            to_state=state,
            next_attempt_at=next_attempt_at,
            error=error,
        )

    def mark_cancelled(self, master_txid: str, user_id: str, *, reason: str) -> CopyRecord:
        return self._transition(
            master_txid,
            user_id,
            from_states=(CopyState.PLACED,),
            to_state=CopyState.CANCELLED,
            cancel_requested=0,
            reason=reason,
        )

    def clear_cancel_request(self, master_txid: str, user_id: str, *, reason: str) -> CopyRecord:
        """The copy cannot be cancelled (it already filled): keep it placed, note why."""
        return self._transition(
            master_txid,
            user_id,
            from_states=(CopyState.PLACED,),
            to_state=CopyState.PLACED,
            cancel_requested=0,
            reason=reason,
        )

    # ---- summaries ----------------------------------------------------------------------

    def claim_summary(self, master_txid: str) -> CopySummary | None:
        """Once every copy of the master order is terminal, return its summary exactly once
        (to whichever thread asks first); None before that and after."""

        def _op(db: sqlite3.Connection) -> tuple[float, list[CopyRecord]] | None:
            row = _first(
                db.execute(
                    "SELECT summary_logged, first_seen_at FROM master_orders WHERE txid = ?",
                    (master_txid,),
                )
            )
            if row is None or row[0]:
                return None
            unfinished = _first(
                db.execute(
                    "SELECT COUNT(*) FROM copies WHERE master_txid = ?"
                    " AND state IN ('planned', 'submitting')",
                    (master_txid,),
                )
            )[0]
            if unfinished:
                return None
            copies = self._copies(db, "c.master_txid = ?", (master_txid,))
            db.execute("UPDATE master_orders SET summary_logged = 1 WHERE txid = ?", (master_txid,))
            return float(row[1]), copies

        claimed = self._write(_op)
        if claimed is None:
            return None
        first_seen_at, copies = claimed
        acked = [copy.acked_at for copy in copies if copy.acked_at is not None]
        latencies = [copy.latency_ms for copy in copies if copy.latency_ms is not None]
        return CopySummary(
            master_txid=master_txid,
            total=len(copies),
            placed=sum(copy.state is CopyState.PLACED for copy in copies),
            skipped=sum(copy.state is CopyState.SKIPPED for copy in copies),
            failed=sum(copy.state is CopyState.FAILED for copy in copies),
            cancelled=sum(copy.state is CopyState.CANCELLED for copy in copies),
            first_seen_at=first_seen_at,
            last_acked_at=max(acked) if acked else None,
            max_latency_ms=max(latencies) if latencies else None,
        )

    def state_counts(self) -> dict[str, int]:
        """Copies per state, for heartbeats and summaries."""
        with self._reading() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM copies GROUP BY state").fetchall()
        counts = {state.value: 0 for state in CopyState}
        counts.update({str(state): int(count) for state, count in rows})
        return counts


def _master_from_row(row: Any) -> MasterOrderRecord:
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
        price=_dec(price),
        price2=_dec(price2),
        oflags=frozenset(flag for flag in str(oflags).split(",") if flag),
        timeinforce=TimeInForce(str(timeinforce)),
        expiretm=None if expiretm is None else float(expiretm),
        opentm=float(opentm),
        status=OrderStatus(str(status)),
        vol_exec=Decimal(str(vol_exec)),
        avg_price=_dec(avg_price),
        decision=Decision(str(decision)),
        skip_reason=None if skip_reason is None else str(skip_reason),
        first_seen_at=float(first_seen_at),
        seq=int(seq),
        master_equity=_dec(master_equity),
        master_base_before=_dec(master_base_before),
    )


def _copy_from_row(row: Any) -> CopyRecord:
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
        volume=_dec(volume),
        price=_dec(price),
        price2=_dec(price2),
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
