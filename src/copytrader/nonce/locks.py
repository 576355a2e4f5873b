"""The two halves of an account's nonce lock, shared by every NonceStore on the same file in a
process: a thread lock, and an OS lock on `<nonce file>.lock` for other processes.

The OS lock is `flock` on a descriptor of the lock file, opened once per process and kept
(checked against the path after each lock, in case the file was deleted or replaced), with
`filelock` as the fallback where flock does not exist (Windows) or the filesystem lacks it. A
forked child starts afresh: it must not inherit the parent's locks (see nonce.py's docstring
for why the lock is held from nonce to reply).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import filelock
import structlog

try:
    import fcntl
except ImportError:  # Windows: no flock; filelock does the OS lock (_FileLockFallback)
    _HAS_FLOCK = False
else:
    _HAS_FLOCK = True

log = structlog.get_logger("copytrader.nonce.store")

# A contended OS lock is polled (flock has no timeout, and a blocking flock cannot be interrupted
# safely from another thread); short polls keep two processes on one key fast.
_LOCK_POLL_S = 0.0005
# flock's answers for "held by another open file"; some filesystems say EACCES (as filelock does).
_FLOCK_BUSY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})


class _OsLock(Protocol):
    """The cross-process half of an account's lock. Used only under the path's thread lock."""

    def acquire(self, timeout_s: float, make_dir: Callable[[], None]) -> bool:
        """Take the lock; False after `timeout_s`. `make_dir` creates the data folder."""

    def release(self) -> None: ...

    def forget_after_fork(self) -> None:
        """In a forked child: whatever the parent held is not ours; start afresh."""


class _FlockLock:
    """flock on a descriptor of the lock file, opened once per process and kept (module doc).

    Per lock this costs a flock, an os.stat and the unlock - what filelock spent on opening and
    closing the file, realpath, fork tracking and its poll machinery is gone.
    """

    def __init__(self, lock_path: str) -> None:
        self._path = lock_path
        self._fd = -1
        self._identity = (0, 0)  # (st_dev, st_ino) of the file self._fd is open on
        self._fallback: _FileLockFallback | None = None

    def acquire(self, timeout_s: float, make_dir: Callable[[], None]) -> bool:
        if self._fallback is not None:
            return self._fallback.acquire(timeout_s, make_dir)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._fd < 0:
                self._open(make_dir)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno == errno.ENOSYS:
                    # This filesystem has no flock: filelock copes (it falls back to a lock
                    # file's existence), as it did for this store before it used flock itself.
                    self._close()
                    self._fallback = _FileLockFallback(self._path)
                    return self._fallback.acquire(max(0.0, deadline - time.monotonic()), make_dir)
                if exc.errno not in _FLOCK_BUSY:
                    raise
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_LOCK_POLL_S)
                continue
            if self._names_the_lock_file():
                return True
            # Someone deleted or replaced the lock file since we opened it: a process opening the
            # path now locks another file, so our lock would exclude nobody. Reopen and retry.
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._close()
            if time.monotonic() >= deadline:  # only if the file keeps being replaced
                return False

    def release(self) -> None:
        if self._fallback is not None:
            self._fallback.release()
        else:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def forget_after_fork(self) -> None:
        # The child's descriptor shares the parent's open file, hence its flock: the child would
        # "take" a lock the parent holds, and its unlock would free the parent's. Closing it only
        # drops the child's reference (no unlock); the next acquire opens a file of its own.
        self._close()
        if self._fallback is not None:
            self._fallback.forget_after_fork()

    def _open(self, make_dir: Callable[[], None]) -> None:
        # Not O_TRUNC (the file never holds data, and a peer may hold it); O_NOFOLLOW as filelock
        # did, so a symlink planted at the path is not locked instead. os.open's descriptors are
        # close-on-exec (PEP 446): a program we start does not inherit the lock.
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self._path, flags, 0o600)
        except OSError:
            # Usually the data folder does not exist yet (a first start, or it was removed).
            # Creating it here rather than before every lock; make_dir raises the ConfigError
            # naming the folder when that is impossible (e.g. it is a file). Then once more: any
            # other reason (a read-only folder) raises from there.
            make_dir()
            fd = os.open(self._path, flags, 0o600)
        try:
            stat = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._identity = (stat.st_dev, stat.st_ino)

    def _names_the_lock_file(self) -> bool:
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return False
        return (stat.st_dev, stat.st_ino) == self._identity

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class _FileLockFallback:
    """The OS lock through `filelock`, where flock is unavailable (see _OsLock)."""

    def __init__(self, lock_path: str) -> None:
        self._path = lock_path
        self._lock = filelock.FileLock(lock_path, thread_local=False)

    def acquire(self, timeout_s: float, make_dir: Callable[[], None]) -> bool:
        make_dir()  # filelock does not create the folder; rare platforms, so not worth caching
        try:
            self._lock.acquire(timeout=timeout_s, poll_interval=_LOCK_POLL_S)
        except filelock.Timeout:
            return False
        return True

    def release(self) -> None:
        self._lock.release()

    def forget_after_fork(self) -> None:
        # filelock refuses an instance inherited across a fork ("construct a new instance").
        self._lock = filelock.FileLock(self._path, thread_local=False)


def _new_os_lock(lock_path: str) -> _OsLock:
    return _FlockLock(lock_path) if _HAS_FLOCK else _FileLockFallback(lock_path)


@dataclass
class PathLocks:
    """The in-process half of an account's lock, shared by every store on the same file."""

    os_lock: _OsLock
    thread_lock: threading.Lock = field(default_factory=threading.Lock)
    owner: int | None = None
    # The boot for which this process has made sure the main file is current (module docstring).
    checked_boot: str | None = None
    account_ids: set[str] = field(default_factory=set)

    def forget_after_fork(self) -> None:
        # A forked child must not inherit locks held by threads that do not exist in it, nor
        # the parent's OS lock. A block the forking thread was in stays unusable in the child:
        # `owner` no longer names it (next_nonce refuses), and its exit releases nothing (it
        # sees the new thread lock; locked()).
        self.thread_lock = threading.Lock()
        self.owner = None
        self.os_lock.forget_after_fork()


_registry_lock = threading.Lock()
_registry: dict[Path, PathLocks] = {}


def _reset_registry_after_fork() -> None:
    # The entries are reset in place, not dropped: stores made before the fork hold them, and
    # stores made after it must share them (one thread lock per file in a process).
    global _registry_lock
    _registry_lock = threading.Lock()
    for locks in _registry.values():
        locks.forget_after_fork()


os.register_at_fork(after_in_child=_reset_registry_after_fork)


def locks_for(path: Path, account_id: str) -> PathLocks:
    with _registry_lock:
        locks = _registry.get(path)
        if locks is None:
            locks = PathLocks(os_lock=_new_os_lock(f"{path}.lock"))
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
