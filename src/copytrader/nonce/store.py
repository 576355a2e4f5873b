"""One nonce store per Kraken account: strictly increasing nonces that survive anything.

Per API key, the nonces reaching Kraken must strictly increase: across threads, processes on one
host sharing the data folder, restarts, `kill -9` at any instant and a clock that steps back.

Files, in the data folder, for account id `USER:daivon_frazier`:

    kraken_nonce_user_daivon_frazier.txt          the last nonce handed out (one decimal integer)
    kraken_nonce_user_daivon_frazier.txt.lock     the OS lock (flock); never holds data
    kraken_nonce_user_daivon_frazier.txt.tmp      the next value while it is written (fsync mode)
    kraken_nonce_user_daivon_frazier.txt.ceiling  a value above every nonce ever handed out
    kraken_nonce_user_daivon_frazier.txt.boot     the boot the main file is current for

Rules:
- next nonce = max(now_ms, last + 1); it is written (in place, `_overwrite_fd`) BEFORE it
  is returned, so a nonce that may have been sent is always in the file, as every later reader (any
  thread or process, under the lock) sees it.
- The thread lock and the OS file lock are held for the whole `locked()` block: the broker takes
  the nonce and waits for the reply inside it, so one key's requests reach Kraken in nonce order.
- The OS lock (nonce_locks.py) is `flock` on a descriptor of the `.lock` file that each process
  opens once and keeps (opening, closing and path handling per lock cost more than the nonce
  itself). After taking it, the descriptor is checked to still name the file at the path: if the
  lock file was deleted or replaced, another process would lock the new file, so ours is reopened.
  A forked child drops the descriptors it inherited (flock locks belong to the open file, which a
  fork shares) and opens its own. Where flock is unavailable (no `fcntl`, e.g. Windows, or a
  filesystem answering ENOSYS) the `filelock` library does the OS lock.
- Recovery when the main file is missing, empty or corrupt (a warning, never a crash): the next
  nonce is above the largest value we can still find, i.e. max(now_ms, ceiling, leftover temp
  file, legacy file for MASTER). The ceiling file is rewritten (durably) only when the nonce
  reaches it, then set CEILING_MARGIN_MS ahead, so it costs one extra write a minute, and a lost
  main file never makes us reuse a nonce even when the clock is behind. What cannot be recovered
  (every file gone AND the clock behind) the broker handles by jumping after `EAPI:Invalid nonce`.
- Legacy migration: the MASTER file takes its first value from `kraken_nonce.txt` (the single
  file of the legacy layout, shared by every account) when its own file does not exist yet.
- A full disk (ENOSPC, EDQUOT) while writing raises DiskFullError: the nonce is not handed out,
  so nothing is sent with it. The condition is logged once per data folder when it starts
  (`nonce.disk_full`) and once when a write goes through again (`nonce.disk_full_recovered`).

Why the main file is not fsync'd on every nonce (the fsync would be a large part of a private
call's cost). A write that returned is in the kernel's page cache, which every process
reads and which survives the death of the writer (`kill -9`, OOM kill, a crash of Python). Only
an OS crash or power cut loses it, and that leaves the main file holding an OLDER value (or
empty, or missing) - never a newer one. The durable ceiling is above every nonce ever handed out
(it is fsync'd, with its folder, before a nonce reaches it), so after a reboot the next nonce
must start from it: the `.boot` sidecar holds the id of the boot (Linux's random
/proc/sys/kernel/random/boot_id, new on every boot) under which the main file was last known to
be current. The first lock of a file in a process compares it with the running boot; when they
differ (a reboot, or the first start of this version) the main file is raised to the ceiling - 1
before any nonce is taken, then the sidecar is updated. A stale or lost sidecar only causes one
more such check, never a missed one, so the sidecar needs no fsync. Where no boot id exists
(not Linux) every nonce is fsync'd as before.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from copytrader.errors import ConfigError, DiskFullError, RetryLaterError
from copytrader.nonce.locks import locks_for

log = structlog.get_logger(__name__)

MASTER_ACCOUNT_ID = "MASTER"
LEGACY_FILE_NAME = "kraken_nonce.txt"
# The ceiling is kept this far ahead of the last nonce: after losing the main file, nonces restart
# at most this far in the future (harmless), and the ceiling is rewritten about once a minute.
CEILING_MARGIN_MS = 60_000
UINT64_MAX = 2**64 - 1
# A nonce this far above the clock is warned about (once per store): a nonce jump after
# `EAPI:Invalid nonce` moves minutes ahead, never a day.
FAR_AHEAD_MS = 86_400_000
# How long to wait for another thread or process holding this account's lock. A holder keeps it
# for one request at most (bounded by the broker's timeout), so a longer wait means it is stuck.
DEFAULT_LOCK_TIMEOUT_S = 120.0
_SANITIZE_DROP = re.compile(r"[^-a-z0-9_]")
_DECIMAL_INTEGER = re.compile(r"\s*(\d{1,20})\s*")
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class _FullDisks:
    """The accounts whose nonce writes found the disk full, by data folder: the condition of a
    folder starts with the first such account and ends when none is left (a file written in
    place can go through on a full disk while another account's new file cannot), so it is
    logged once each way, however many accounts and threads see it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[Path, set[str]] = {}

    def hit(self, folder: Path, account_id: str, exc: OSError) -> None:
        with self._lock:
            failing = self._failing.setdefault(folder, set())
            started = not failing
            failing.add(account_id)
        if started:
            log.error(
                "nonce.disk_full",
                message=f"cannot write nonce files in {folder}: the disk is full"
                f" ({exc.strerror}); private calls wait until there is space again",
                data_dir=str(folder),
                account=account_id,
            )

    def written(self, folder: Path, account_id: str) -> None:
        if folder not in self._failing:  # the usual case: no lock taken
            return
        with self._lock:
            failing = self._failing.get(folder)
            if failing is None or account_id not in failing:
                return
            failing.discard(account_id)
            if failing:
                return
            del self._failing[folder]
        log.info(
            "nonce.disk_full_recovered",
            message=f"nonce files in {folder} can be written again",
            data_dir=str(folder),
        )


_FULL_DISKS = _FullDisks()


@functools.cache
def current_boot_id() -> str | None:
    """This boot's random id (Linux), or None where the OS has none."""
    try:
        boot_id = _BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return boot_id or None


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


def _parse(text: str) -> int | None:
    match = _DECIMAL_INTEGER.fullmatch(text)
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 < value <= UINT64_MAX else None


def _read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist. Unreadable bytes count as corrupt text."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _read_fd(fd).decode("ascii", errors="replace")
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    """The whole file from its start (plain os calls: pathlib's buffered open costs ~4 µs more)."""
    data = os.pread(fd, 4096, 0)  # one call for any sane content (at most ~22 bytes)
    if len(data) < 4096:
        return data
    chunks = [data]
    offset = len(data)
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


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


def _overwrite_in_place(path: Path, value: int) -> None:
    """Open (creating it if need be) the file at `path` and overwrite it: see _overwrite_fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        _overwrite_fd(fd, value, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _overwrite_fd(fd: int, value: int, old_size: int) -> None:
    """Write `value` over the file's start in one write(), then cut off any longer old text.

    Cheaper than temp file + rename (on ext4 a rename over a file forces its blocks to be
    allocated, about 0.3 ms). Readers hold the lock, so they never see a half-done write. A
    kill -9 cannot split one small write() (it lands in the page cache whole or not at all);
    one between write() and ftruncate() (only when the old text was longer, i.e. it was
    corrupt) leaves unparsable text, which recovery handles via the ceiling. A power cut is
    covered by the ceiling and the boot check (module docstring).
    """
    data = f"{value}\n".encode("ascii")
    os.pwrite(fd, data, 0)
    if old_size > len(data):
        os.ftruncate(fd, len(data))


class NonceStore:
    """Strictly increasing, persisted nonces for one account (see the module docstring)."""

    def __init__(
        self,
        account_id: str,
        data_dir: Path,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        fsync_each_nonce: bool | None = None,
        boot_id: str | None = None,
    ) -> None:
        self.account_id = account_id
        self.data_dir = Path(data_dir)
        self.path = (self.data_dir / nonce_file_name(account_id)).absolute()
        self._path_str = str(self.path)  # os calls take a str without pathlib's conversion
        # Impossible after sanitizing (no '/' or '.' survives); kept as a guard.
        if self.path.parent != self.data_dir.absolute():
            raise ConfigError("nonce file would leave the data folder", entry=repr(account_id))
        self._tmp_path = self.path.with_name(self.path.name + ".tmp")
        self._ceiling_path = self.path.with_name(self.path.name + ".ceiling")
        self._boot_path = self.path.with_name(self.path.name + ".boot")
        self._legacy_path = self.data_dir.absolute() / LEGACY_FILE_NAME
        self._clock_ms = clock_ms
        self._lock_timeout_s = lock_timeout_s
        # `boot_id` is for tests (a simulated reboot); `fsync_each_nonce=True` only for benchmarks
        # and for systems without a boot id, where a reboot cannot be told apart.
        self._boot_id = boot_id or current_boot_id()
        self._fsync_each_nonce = (
            self._boot_id is None if fsync_each_nonce is None else fsync_each_nonce
        )
        # A lower bound of the ceiling on disk (the file only ever grows), to skip reading it.
        self._known_ceiling = 0
        self._warned_far_ahead = False
        self._locks = locks_for(self.path, account_id)

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
        # Kept to release it: a fork inside the block gives the child's PathLocks a new one.
        thread_lock = locks.thread_lock
        if not thread_lock.acquire(timeout=self._lock_timeout_s):
            raise self._lock_timeout_error("another thread")
        try:
            os_lock = locks.os_lock
            if not os_lock.acquire(self._lock_timeout_s, self._ensure_data_dir):
                raise self._lock_timeout_error("another process")
            locks.owner = me
            try:
                # A store that fsyncs every nonce needs no boot check, so it must not mark the
                # boot as checked for the other stores of this file in the process either.
                if not self._fsync_each_nonce and locks.checked_boot != self._boot_id:
                    self._check_boot_locked()
                    locks.checked_boot = self._boot_id
                yield self._next_nonce_locked
            finally:
                # After a fork inside this block (only the child sees a new thread lock), the OS
                # lock was the parent's, and `owner` may be another thread's of the child's own.
                if locks.thread_lock is thread_lock:
                    locks.owner = None
                    os_lock.release()
        finally:
            thread_lock.release()

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

    def _write_error(self, exc: OSError) -> ConfigError | DiskFullError:
        if exc.errno in _DISK_FULL_ERRNOS:
            _FULL_DISKS.hit(self.data_dir, self.account_id, exc)
            return DiskFullError(f"{self.path.name}: {exc.strerror or exc}")
        return ConfigError(
            f"cannot write the nonce file ({exc.strerror or exc}); is the folder writable?",
            source=str(self.path),
        )

    def _require_lock(self) -> None:
        if self._locks.owner != threading.get_ident():
            raise RuntimeError(f"nonce of {self.account_id} used outside its lock")

    # --- the numbers ---------------------------------------------------------------------------

    def _next_nonce_locked(self) -> int:
        self._require_lock()
        fd = self._open_main_for_update()
        if fd is None:
            last = self._read_last()
            now = self._clock_ms()
            nonce = max(now, last + 1)
            if nonce - now > FAR_AHEAD_MS:
                self._warn_far_ahead(nonce, now)
            self._persist(nonce)
            return nonce
        # The usual case: the main file is read and overwritten through one descriptor (half the
        # cost of reading it and then opening it again with O_CREAT). The same reads and the same
        # in-place write as the general path above, so the module docstring's reasoning holds.
        try:
            raw = _read_fd(fd)
            text = raw.decode("ascii", errors="replace")
            parsed = _parse(text)
            last = parsed if parsed is not None else self._recover(missing=False, text=text)
            now = self._clock_ms()
            nonce = max(now, last + 1)
            if nonce - now > FAR_AHEAD_MS:
                self._warn_far_ahead(nonce, now)
            self._persist(nonce, main_fd=fd, main_size=len(raw))
        finally:
            os.close(fd)
        return nonce

    def _warn_far_ahead(self, nonce: int, now: int) -> None:
        """Once per store: the file's value is far above the clock (a restored or edited file,
        another program's nonces in milliseconds times a thousand...). It is still used, since
        Kraken may remember it and refuse anything lower, but every nonce this key can still
        send is above it, so the operator must know."""
        if self._warned_far_ahead:
            return
        self._warned_far_ahead = True
        days = (nonce - now) / 86_400_000
        log.warning(
            "nonce.far_ahead",
            message=(
                f"nonce file {self.path} holds a value {days:,.1f} days of milliseconds above"
                f" the clock ({nonce}); {UINT64_MAX - nonce} nonces are left for this key. If the"
                " file was not meant to hold it, make a new API key for this account"
            ),
            account=self.account_id,
            path=str(self.path),
            nonce=nonce,
            clock_ms=now,
            ahead_days=round(days, 1),
            remaining=UINT64_MAX - nonce,
        )

    def _open_main_for_update(self) -> int | None:
        """The main file opened for reading and writing, or None: then take the general path."""
        if self._fsync_each_nonce:
            return None  # that mode replaces the file on each write, never writes in place
        try:
            # No O_CREAT: a missing file must go through recovery (ceiling, legacy migration).
            return os.open(self._path_str, os.O_RDWR)
        except OSError:
            return None  # missing, or not writable: the general path reports what applies

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

    def _check_boot_locked(self) -> None:
        """After a reboot, raise the main file to the durable ceiling - 1 (see module docstring)."""
        if self._boot_id is None or self._fsync_each_nonce:
            return  # every nonce is fsync'd: the main file is current after any crash
        try:
            if (_read_text(self._boot_path) or "").strip() == self._boot_id:
                return
            main = _parse(_read_text(self.path) or "")
            ceiling = _parse(_read_text(self._ceiling_path) or "")
            # A missing or unusable main file goes through _recover(), which uses the ceiling.
            if main is not None and ceiling is not None and ceiling - 1 > main:
                self._write(self.path, ceiling - 1)
                log.info(
                    "nonce.boot_check",
                    message=(
                        f"{self.path.name} may predate a reboot; continuing above its ceiling"
                        f" ({ceiling})"
                    ),
                    account=self.account_id,
                    path=str(self.path),
                    previous=main,
                    ceiling=ceiling,
                )
            self._boot_path.write_text(f"{self._boot_id}\n", encoding="ascii")
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _persist(self, value: int, *, main_fd: int | None = None, main_size: int = 0) -> None:
        """Write `value` to the main file (through `main_fd` if open), after the ceiling if due."""
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
                    _write_durably(self._ceiling_path, new_ceiling, sync_dir=True)
                    self._known_ceiling = new_ceiling
                else:
                    self._known_ceiling = on_disk
            if main_fd is None:
                self._write(self.path, value)
            else:
                _overwrite_fd(main_fd, value, main_size)
        except OSError as exc:
            raise self._write_error(exc) from exc
        _FULL_DISKS.written(self.data_dir, self.account_id)

    def _write(self, path: Path, value: int) -> None:
        if self._fsync_each_nonce:
            _write_durably(path, value, sync_dir=False)
        else:
            _overwrite_in_place(path, value)

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
