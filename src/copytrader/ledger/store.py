"""The ledger's connections: one write connection owned by a writer thread that group-commits
the writes of all threads, and one read-only connection per reading thread (WAL)."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

from copytrader.ledger.records import LedgerError
from copytrader.ledger.schema import SCHEMA

LEDGER_FILE_NAME = "copies.sqlite3"
# At most this many queued writes go into one transaction.
WRITE_BATCH_MAX = 500
WRITER_STOP_TIMEOUT_S = 10.0
_T = TypeVar("_T")


class LedgerStore:
    """The SQLite file and its connections; the ledger's parts read and write through it."""

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
        self._db.executescript(SCHEMA)
        # The one write connection belongs to the writer thread from here on.
        self._writer = threading.Thread(target=self._write_loop, name="ledger-writer", daemon=True)
        self._writer.start()

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, run_id: str | None = None) -> Self:
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
