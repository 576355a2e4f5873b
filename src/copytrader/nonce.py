"""One nonce store per Kraken account: strictly increasing nonces that survive anything.

Per API key, the nonces reaching Kraken must strictly increase: across threads, processes on one
host sharing the data folder, restarts, `kill -9` at any instant and a clock that steps back.

Files, in the data folder, for account id `USER:daivon_frazier`:

    kraken_nonce_user_daivon_frazier.txt          the last nonce handed out (one decimal integer)
    kraken_nonce_user_daivon_frazier.txt.lock     the OS lock (filelock); never holds data
    kraken_nonce_user_daivon_frazier.txt.tmp      the next value while it is being written
    kraken_nonce_user_daivon_frazier.txt.ceiling  a value above every nonce ever handed out

Rules:
- next nonce = max(now_ms, last + 1); it is written (temp file, fsync, os.replace) BEFORE it is
  returned, so a nonce that may have been sent is always on disk.
- The thread lock and the OS file lock are held for the whole `locked()` block: the broker takes
  the nonce and waits for the reply inside it, so one key's requests reach Kraken in nonce order.
- Recovery when the main file is missing, empty or corrupt (a warning, never a crash): the next
  nonce is above the largest value we can still find, i.e. max(now_ms, ceiling, leftover temp
  file, legacy file for MASTER). The ceiling file is rewritten (durably) only when the nonce
  reaches it, then set CEILING_MARGIN_MS ahead, so it costs one extra write a minute, and a lost
  main file never makes us reuse a nonce even when the clock is behind. What cannot be recovered
  (every file gone AND the clock behind) the broker handles by jumping after `EAPI:Invalid nonce`.
- Legacy migration: the MASTER file takes its first value from `kraken_nonce.txt` (the single
  file every account used to share) when its own file does not exist yet.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import filelock
import structlog

from copytrader.errors import ConfigError, RetryLaterError

log = structlog.get_logger(__name__)

MASTER_ACCOUNT_ID = "MASTER"
LEGACY_FILE_NAME = "kraken_nonce.txt"
# The ceiling is kept this far ahead of the last nonce: after losing the main file, nonces restart
# at most this far in the future (harmless), and the ceiling is rewritten about once a minute.
CEILING_MARGIN_MS = 60_000
UINT64_MAX = 2**64 - 1
# How long to wait for another thread or process holding this account's lock. A holder keeps it
# for one request at most (bounded by the broker's timeout), so a longer wait means it is stuck.
DEFAULT_LOCK_TIMEOUT_S = 120.0
# filelock polls a contended OS lock; short polls keep two processes on one key fast.
_LOCK_POLL_S = 0.0005
_SANITIZE_DROP = re.compile(r"[^-a-z0-9_]")
_DECIMAL_INTEGER = re.compile(r"\s*(\d{1,20})\s*")


def wall_clock_ms() -> int:
    """Milliseconds since the epoch: krakenex's and ccxt's unit, so a key can go back to them."""
    return time.time_ns() // 1_000_000


def sanitize_account_id(account_id: str) -> str:
    """`USER:Daivon Frazier` -> `user_daivon_frazier`; raises ConfigError if nothing is left."""
    lowered = account_id.lower().replace(":", "_").replace(" ", "_")
    sanitized = _SANITIZE_DROP.sub("", lowered)
    if not sanitized:
        raise ConfigError(
            "account id has no usable character for a nonce file name "
            "(letters, digits, '-', '_', ':' or spaces are needed)",
            entry=repr(account_id),
            field="account id",
        )
    return sanitized


def nonce_file_name(account_id: str) -> str:
    """`MASTER` -> `kraken_nonce_master.txt`, `USER:ann` -> `kraken_nonce_user_ann.txt`."""
    return f"kraken_nonce_{sanitize_account_id(account_id)}.txt"


@dataclass
class _PathLocks:
    """The in-process half of an account's lock, shared by every store on the same file."""

    file_lock: filelock.FileLock
    thread_lock: threading.Lock = field(default_factory=threading.Lock)
    owner: int | None = None
    account_ids: set[str] = field(default_factory=set)


_registry_lock = threading.Lock()
_registry: dict[Path, _PathLocks] = {}


def _reset_registry_after_fork() -> None:
    # A forked child must not inherit locks held by threads that do not exist in it.
    global _registry_lock, _registry
    _registry_lock = threading.Lock()
    _registry = {}


os.register_at_fork(after_in_child=_reset_registry_after_fork)


def _locks_for(path: Path, account_id: str) -> _PathLocks:
    with _registry_lock:
        locks = _registry.get(path)
        if locks is None:
            locks = _PathLocks(
                file_lock=filelock.FileLock(f"{path}.lock", thread_local=False),
            )
            _registry[path] = locks
        others = locks.account_ids - {account_id}
        locks.account_ids.add(account_id)
    if others:
        # Still correct (one shared counter is strictly increasing for every key that uses it),
        # but two accounts were meant to have a file each: their ids sanitize to the same name.
        log.warning(
            "nonce.shared_file",
            message=f"accounts {sorted(others)} and {account_id!r} share nonce file {path.name}",
            account=account_id,
            path=str(path),
        )
    return locks


def _parse(text: str) -> int | None:
    match = _DECIMAL_INTEGER.fullmatch(text)
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 < value <= UINT64_MAX else None


def _read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist. Unreadable bytes count as corrupt text."""
    try:
        return path.read_bytes().decode("ascii", errors="replace")
    except FileNotFoundError:
        return None


def _write_durably(path: Path, value: int, *, sync_dir: bool) -> None:
    """Replace `path` by `value` so that a crash at any instant leaves the old or the new value."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{value}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        # Makes the rename itself survive a power cut, not only a killed process.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class NonceStore:
    """Strictly increasing, persisted nonces for one account (see the module docstring)."""

    def __init__(
        self,
        account_id: str,
        data_dir: Path,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        durable: bool = True,
    ) -> None:
        self.account_id = account_id
        self.data_dir = Path(data_dir)
        self.path = (self.data_dir / nonce_file_name(account_id)).absolute()
        # Impossible after sanitizing (no '/' or '.' survives); kept as a guard.
        if self.path.parent != self.data_dir.absolute():
            raise ConfigError("nonce file would leave the data folder", entry=repr(account_id))
        self._tmp_path = self.path.with_name(self.path.name + ".tmp")
        self._ceiling_path = self.path.with_name(self.path.name + ".ceiling")
        self._legacy_path = self.data_dir.absolute() / LEGACY_FILE_NAME
        self._clock_ms = clock_ms
        self._lock_timeout_s = lock_timeout_s
        # durable=False skips fsync: only for benchmarks that want to see what fsync costs.
        self._durable = durable
        # A lower bound of the ceiling on disk (the file only ever grows), to skip reading it.
        self._known_ceiling = 0
        self._locks = _locks_for(self.path, account_id)

    def __repr__(self) -> str:
        return f"NonceStore(account_id={self.account_id!r}, path={str(self.path)!r})"

    # --- locking -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[Callable[[], int]]:
        """Hold this account's thread lock and OS file lock; yield `next_nonce()`.

        Keep the block open from taking the nonce until the reply has arrived (or timed out).
        Raises RetryLaterError if another holder keeps the lock longer than the lock timeout.
        """
        locks = self._locks
        me = threading.get_ident()
        if locks.owner == me:
            raise RuntimeError(f"nonce lock of {self.account_id} is not re-entrant")
        if not locks.thread_lock.acquire(timeout=self._lock_timeout_s):
            raise self._lock_timeout_error("another thread")
        try:
            self._ensure_data_dir()
            try:
                locks.file_lock.acquire(timeout=self._lock_timeout_s, poll_interval=_LOCK_POLL_S)
            except filelock.Timeout as exc:
                raise self._lock_timeout_error("another process") from exc
            locks.owner = me
            try:
                yield self._next_nonce_locked
            finally:
                locks.owner = None
                locks.file_lock.release()
        finally:
            locks.thread_lock.release()

    def _ensure_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the data folder ({exc.strerror or exc})",
                source=str(self.data_dir),
            ) from exc

    def _lock_timeout_error(self, holder: str) -> RetryLaterError:
        return RetryLaterError(
            f"nonce lock {self.path.name} held by {holder} for over {self._lock_timeout_s:g} s",
            account=self.account_id,
        )

    def _require_lock(self) -> None:
        if self._locks.owner != threading.get_ident():
            raise RuntimeError(f"nonce of {self.account_id} used outside its lock")

    # --- the numbers ---------------------------------------------------------------------------

    def _next_nonce_locked(self) -> int:
        self._require_lock()
        last = self._read_last()
        nonce = max(self._clock_ms(), last + 1)
        self._persist(nonce)
        return nonce

    def peek(self) -> int:
        """The last persisted nonce (or, if the file is unusable, what the next one builds on)."""
        if self._locks.owner == threading.get_ident():
            return self._read_last()
        with self.locked():
            return self._read_last()

    def jump(self, step: int) -> int:
        """Move the next nonce `step` ms past max(last, now); persisted before it is used.

        Used after `EAPI:Invalid nonce`, when Kraken remembers a higher nonce than our file.
        Returns the new persisted value (the next nonce is one more).
        """
        if step <= 0:
            raise ValueError("a nonce jump must be positive")
        if self._locks.owner == threading.get_ident():
            return self._jump_locked(step)
        with self.locked():
            return self._jump_locked(step)

    def _jump_locked(self, step: int) -> int:
        base = max(self._read_last(), self._clock_ms())
        target = min(base + step, UINT64_MAX)
        self._persist(target)
        log.debug(
            "nonce.jumped",
            message=f"nonce of {self.account_id} moved {step} ms ahead to {target}",
            account=self.account_id,
            step_ms=step,
            nonce=target,
        )
        return target

    def _persist(self, value: int) -> None:
        if value > UINT64_MAX:
            raise ConfigError(
                "nonce would exceed the unsigned 64-bit range; this key needs replacing",
                source=str(self.path),
            )
        try:
            if value >= self._known_ceiling:
                on_disk = _parse(_read_text(self._ceiling_path) or "") or 0
                if value >= on_disk:
                    new_ceiling = min(value + CEILING_MARGIN_MS, UINT64_MAX)
                    _write_durably(self._ceiling_path, new_ceiling, sync_dir=self._durable)
                    self._known_ceiling = new_ceiling
                else:
                    self._known_ceiling = on_disk
            self._write(self.path, value)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the nonce file ({exc.strerror or exc}); is the folder writable?",
                source=str(self.path),
            ) from exc

    def _write(self, path: Path, value: int) -> None:
        if self._durable:
            _write_durably(path, value, sync_dir=False)
        else:
            self._tmp_path.write_text(f"{value}\n")
            os.replace(self._tmp_path, path)

    def _read_last(self) -> int:
        text = _read_text(self.path)
        value = None if text is None else _parse(text)
        if value is not None:
            return value
        return self._recover(missing=text is None, text=text)

    def _recover(self, *, missing: bool, text: str | None) -> int:
        """The highest value still recoverable when the main file is missing or unusable."""
        ceiling = _parse(_read_text(self._ceiling_path) or "")
        leftover = _parse(_read_text(self._tmp_path) or "")
        legacy = None
        if missing and self.account_id == MASTER_ACCOUNT_ID:
            legacy = _parse(_read_text(self._legacy_path) or "")
        found = [v for v in (ceiling, leftover, legacy) if v is not None]
        base = max(found, default=0)
        if missing and ceiling is None and leftover is None:
            if legacy is not None:
                log.info(
                    "nonce.migrated",
                    message=f"{self.path.name} starts from legacy {LEGACY_FILE_NAME} ({legacy})",
                    account=self.account_id,
                    path=str(self.path),
                    nonce=legacy,
                )
            # else: a first start; the clock gives the first nonce.
            return base
        log.warning(
            "nonce.recovered",
            message=(
                f"nonce file {self.path.name} was {'missing' if missing else 'unreadable'};"
                f" continuing above the highest value recoverable ({base})"
            ),
            account=self.account_id,
            path=str(self.path),
            content_length=None if text is None else len(text),
            ceiling=ceiling,
            leftover_tmp=leftover,
            legacy=legacy,
        )
        return base
