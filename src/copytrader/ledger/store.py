"""The ledger's connections: one write connection that threads take turns on (each write its
own transaction, run by the thread that asks for it), and one read-only connection per
reading thread (WAL).

A full disk (SQLite's "database or disk is full") fails the write it hit, which is rolled back
and raised as `DiskFullError`; the condition is logged once when it starts (`ledger.disk_full`)
and once when a write goes through again (`ledger.disk_full_recovered`), however many writes
of however many threads hit it meanwhile."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

from copytrader.errors import DiskFullError
from copytrader.ledger.records import LedgerError
from copytrader.ledger.schema import migrate
from copytrader.logs import get_logger

log = get_logger(__name__)

LEDGER_FILE_NAME = "copies.sqlite3"
# NORMAL: what the daemon runs with (see __init__ and benchmarks/ledger_durability.py); FULL
# (an fsync per commit) is there to measure what NORMAL saves.
SYNCHRONOUS_MODES = ("NORMAL", "FULL")
# How often the write-ahead log is copied back into the database file (see _checkpoint_loop).
CHECKPOINT_EVERY_S = 5.0
CHECKPOINT_STOP_TIMEOUT_S = 10.0
# SQLite's primary result code for "database or disk is full".
SQLITE_FULL = 13
# Larger than any ledger: what `limit_size(None)` sets (SQLite clamps it to its own maximum).
NO_PAGE_LIMIT = 4_294_967_294
_T = TypeVar("_T")


class LedgerStore:
    """The SQLite file and its connections; the ledger's parts read and write through it."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        run_id: str | None = None,
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise LedgerError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = path
        self._clock = clock
        # Marks rows touched by this process, so copies planned by an earlier run (whose
        # outcome a crash may have hidden) can be told apart from this run's own.
        self.run_id = run_id or uuid.uuid4().hex
        self._lock = threading.Lock()  # guards the list of read connections
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._write_lock = threading.Lock()
        self._writing_thread: int | None = None
        self._disk_full = False  # a write failed on a full disk, none went through since
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        # The version first: a file of a newer version is refused before anything (even the
        # journal mode, which is in the file's header) is written to it.
        try:
            found, now = migrate(self._db)
        except BaseException:
            self._db.close()
            raise
        self.schema_version_found = found
        if 0 < found < now:
            log.info(
                "ledger.migrated",
                message=f"{path.name}: schema upgraded from version {found} to {now}",
                path=str(path),
                from_version=found,
                to_version=now,
            )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the OS keeps the written pages); only a
        # power cut can lose the last commits (those since the last checkpoint's fsync). Every
        # start compares the ledger with the exchange (service.ledger_check) and copies planned by
        # an earlier run are looked up on Kraken before being sent, which covers that case.
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        # No checkpoint inside a commit: it fsyncs, and the thread that happened to commit
        # (a copy lane, holding the write lock) waited for it with every other lane behind it,
        # tens of ms in the middle of a fan-out. A thread of its own checkpoints instead.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="ledger-checkpoint", daemon=True
        )
        self._checkpointer.start()

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, run_id: str | None = None) -> Self:
        return cls(data_dir / LEDGER_FILE_NAME, run_id=run_id)

    def close(self) -> None:
        """Wait for a write in progress, then close every connection."""
        self._closing.set()
        self._checkpointer.join(CHECKPOINT_STOP_TIMEOUT_S)
        with self._write_lock:
            with self._lock:
                for reader in self._readers:
                    reader.close()
                self._readers.clear()
            self._db.close()

    def _checkpoint_loop(self) -> None:
        """Copy the write-ahead log into the database file every few seconds, and at close.

        PASSIVE on a connection of its own: it never blocks writers or readers (the copy lanes
        go on committing meanwhile), and the log restarts from the top once it is all copied,
        so it stays small however long the daemon runs."""
        try:
            db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        except sqlite3.Error as error:
            # Without this thread the log would only grow: let commits checkpoint again.
            log.error(
                "ledger.checkpointer_failed",
                message=f"{self.path.name}: cannot open a checkpoint connection ({error});"
                " commits checkpoint instead",
                path=str(self.path),
            )
            with self._write_lock, contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_autocheckpoint=1000")
            return
        try:
            while not self._closing.wait(CHECKPOINT_EVERY_S):
                with contextlib.suppress(sqlite3.Error):  # busy: the next round does it
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def __enter__(self) -> Self:
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

    @contextmanager
    def _holding_write_lock(self) -> Iterator[sqlite3.Connection]:
        """The write connection, for this thread alone, with no transaction left open on it.
        A thread that already holds it (a write inside a write) is refused: the lock is not
        re-entrant, and waiting for it would wait for ourselves."""
        me = threading.get_ident()
        if self._writing_thread == me:
            raise LedgerError("ledger writes must not nest")
        with self._write_lock:
            self._writing_thread = me
            try:
                self._end_stray_transaction()
                yield self._db
            finally:
                self._writing_thread = None

    def limit_size(self, pages: int | None) -> int:
        """Cap the ledger file at `pages` (at least 1) database pages (SQLite's
        `max_page_count`; None lifts the cap); returns the cap in force, never below the file's
        current size. A write that needs more pages fails exactly as on a full disk, with
        SQLite's own "database or disk is full": the test hook for that condition, which no
        test can make of a real disk."""
        with self._holding_write_lock() as db:
            wanted = NO_PAGE_LIMIT if pages is None else max(1, pages)
            return int(db.execute(f"PRAGMA max_page_count = {int(wanted)}").fetchall()[0][0])

    @contextmanager
    def _disk_space_watch(self) -> Iterator[None]:
        """Turn a full disk into DiskFullError, and report the condition's start and end once
        each (the caller holds the write lock, which guards the flag)."""
        try:
            yield
        except sqlite3.Error as error:
            if getattr(error, "sqlite_errorcode", 0) & 0xFF != SQLITE_FULL:
                raise
            if not self._disk_full:
                self._disk_full = True
                log.error(
                    "ledger.disk_full",
                    message=f"{self.path.name}: the disk is full ({error}); copying waits"
                    " until there is space again, nothing is lost",
                    path=str(self.path),
                )
            raise DiskFullError(f"{self.path.name}: {error}") from error
        if self._disk_full:
            self._disk_full = False
            log.info(
                "ledger.disk_full_recovered",
                message=f"{self.path.name}: writes go through again; copying resumes",
                path=str(self.path),
            )

    def _write_statement(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        """One statement as a transaction of its own (autocommit); its rows (RETURNING).

        The copy lanes' state changes take this path: one call into SQLite, so the write lock
        is held across one GIL hand-back, not four (BEGIN, UPDATE, read back, COMMIT). With a
        hundred lanes wanting the GIL, each hand-back can cost milliseconds, which every lane
        queued on the lock waits for too."""
        with self._holding_write_lock() as db, self._disk_space_watch():
            return db.execute(sql, params).fetchall()

    def _write(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `operation` in a write transaction of its own; return its result once committed.

        The calling thread runs it, holding the write lock: one commit per write. No writer
        thread of its own: with a hundred copy lanes busy, such a thread would have to win the
        GIL for each write against all of them, and a lane would wait tens of ms for its
        `submitting` row before it could send its order. A commit here is cheap (WAL,
        synchronous=NORMAL: no fsync), and a thread waiting for the lock does not compete for
        the GIL. An operation that fails is rolled back alone and its error raised to its
        caller.
        """
        with self._holding_write_lock() as db, self._disk_space_watch():
            db.execute("BEGIN IMMEDIATE")
            try:
                result = operation(db)
                db.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (disk full, I/O error), which can leave the
                # transaction open: every later write would otherwise vanish into it.
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                raise
            return result

    def _end_stray_transaction(self) -> None:
        """Roll back a transaction left open on the write connection (the caller holds the
        write lock); none should be, so it is logged."""
        if self._db.in_transaction:
            log.error(
                "ledger.stray_transaction",
                message=f"{self.path.name}: a write transaction was left open; rolled back",
                path=str(self.path),
            )
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
