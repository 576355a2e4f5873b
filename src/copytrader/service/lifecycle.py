"""Pieces of a long-running process's life: the data-folder lock, stop signals, the heartbeat.

The daemon calls them in this order (see `copytrader.service.daemon`):

    stop = install_stop_signals()                      # SIGTERM/SIGINT -> stop.event
    with acquire_data_dir_lock(settings.data_dir):     # a second `copytrader run` exits at once
        heartbeat = Heartbeat(settings.data_dir)
        with heartbeat.running(stop.event):            # `daemon.heartbeat` every 60 s + a file
            ...                                        # work until stop.event is set

Everything here is stdlib plus `filelock` and the project's logging, so the paper-mode
orchestrator and the Docker health check can use it without loading the copy engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from filelock import FileLock, Timeout

from copytrader.errors import ConfigError, DataDirLockedError
from copytrader.logs import get_logger

LOCK_FILE_NAME = ".instance.lock"
HOLDER_FILE_NAME = ".instance.json"
HEARTBEAT_FILE_NAME = "heartbeat.json"
# Paper mode keeps its daemon's data in this folder inside the data folder.
PAPER_SUBDIR = "paper"
HEARTBEAT_INTERVAL_S = 60.0
# A health check calls the process unhealthy after this many missed beats.
HEALTHY_BEATS = 3

log = get_logger(__name__)


def _utc_now_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    # A reader (health check, second instance) never sees a half-written file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, sort_keys=True) + "\n")
    os.replace(temporary, path)


# --------------------------------------------------------------------------- data-folder lock


@dataclass(frozen=True)
class LockHolder:
    """Who holds a data folder: written next to the lock so a refused second run can name it."""

    pid: int
    host: str
    started_at: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started_at}"

    @classmethod
    def current(cls) -> LockHolder:
        return cls(pid=os.getpid(), host=socket.gethostname(), started_at=_utc_now_iso())


def read_lock_holder(data_dir: Path) -> LockHolder | None:
    """The holder recorded in the data folder, or None if there is no readable record."""
    try:
        raw = json.loads((data_dir / HOLDER_FILE_NAME).read_text())
        return LockHolder(
            pid=int(raw["pid"]), host=str(raw["host"]), started_at=str(raw["started_at"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_writable_data_dir(data_dir: Path) -> None:
    """The data folder exists, this process can write there, and it is private to this user,
    else a ConfigError naming it.

    Checked before anything starts (the daemon, `check`, paper mode), so that a path naming a
    file, or a folder of another user, is a configuration error rather than a traceback from deep
    inside. The folder holds the nonce files and the ledger: another local user who could read
    them would learn the accounts' activity, and one who could write them could make a key's
    nonces go backwards. So the process creates files 0600 and folders 0700 from here on
    (umask 077), and what an earlier version or another tool left readable is made private.
    """
    os.umask(0o077)
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = data_dir / f".write-probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except PermissionError as error:
        uid = os.getuid() if hasattr(os, "getuid") else "?"
        raise ConfigError(
            f"data folder {data_dir} is not writable by this process (uid {uid}): "
            f"{error.strerror}. "
            "Give that user the folder (chown), or on Railway let start.sh fix a volume's owner "
            "by starting the container as root (the image's default)",
            source=str(data_dir),
        ) from error
    except OSError as error:
        if isinstance(error, FileExistsError | NotADirectoryError):
            reason = "it, or a folder above it, is a file"
        else:
            reason = error.strerror or str(error)
        raise ConfigError(
            f"data folder {data_dir} cannot be used: {reason}; point COPYTRADER_DATA_DIR at a"
            " folder this user can write",
            source=str(data_dir),
        ) from error
    _make_private(data_dir)


def _make_private(data_dir: Path) -> None:
    """Take the group's and others' bits off the folder and everything in it (0755 -> 0700,
    0644 -> 0600); one event if anything had to change. Symlinks are left alone (chmod would
    follow them out of the folder)."""
    changed: list[str] = []
    refused: list[str] = []
    for path in [data_dir, *sorted(data_dir.rglob("*"))]:
        try:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            if stat.S_IMODE(info.st_mode) & 0o077:
                path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)
                changed.append(str(path.relative_to(data_dir)) if path != data_dir else ".")
        except OSError:
            refused.append(str(path))
    if changed:
        log.info(
            "data_dir.made_private",
            message=f"data folder {data_dir}: {len(changed)} entries were readable by other users;"
            " now only this user can read them",
            data_dir=str(data_dir),
            entries=changed[:20],
        )
    if refused:
        log.warning(
            "data_dir.not_private",
            message=f"data folder {data_dir}: could not make {len(refused)} entries private"
            " (not this user's?); other local users may read them",
            data_dir=str(data_dir),
            entries=refused[:20],
        )


@contextlib.contextmanager
def acquire_data_dir_lock(data_dir: Path) -> Iterator[LockHolder]:
    """Hold the data folder for this process until the block ends, or fail at once.

    The lock is an OS lock (`flock` on POSIX) on `<data_dir>/.instance.lock`: the kernel frees it
    the instant the holder dies, even by SIGKILL, so a crash never leaves a stale lock behind.
    Raises DataDirLockedError naming the holder (pid, host, start time) if the folder is taken,
    and ConfigError if the folder cannot be written.
    """
    ensure_writable_data_dir(data_dir)
    lock = FileLock(str(data_dir / LOCK_FILE_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = read_lock_holder(data_dir)
        who = holder.describe() if holder else "a process that is still starting"
        raise DataDirLockedError(
            f"data folder {data_dir} is already used by another `copytrader run` ({who}); "
            "only one daemon may use a data folder at a time"
        ) from None
    holder = LockHolder.current()
    try:
        _write_json_atomically(data_dir / HOLDER_FILE_NAME, asdict(holder))
        log.info(
            "daemon.lock_acquired",
            message=f"holding data folder {data_dir}",
            data_dir=str(data_dir),
            pid=holder.pid,
            host=holder.host,
        )
        yield holder
    finally:
        # Remove our record only: the lock is still ours here, so nobody else wrote it.
        with contextlib.suppress(OSError):
            (data_dir / HOLDER_FILE_NAME).unlink()
        lock.release()


# --------------------------------------------------------------------------- stop signals


class StopSignal:
    """A stop request from a signal, a duration running out, or the code itself.

    `event` is set once; callbacks run once, from the thread that asked to stop (for a signal,
    the main thread), so they must be quick and thread-safe, e.g.
    `stop.add_callback(lambda: loop.call_soon_threadsafe(async_stop.set))`.
    """

    def __init__(self, component: str = "daemon") -> None:
        self.component = component
        self.event = threading.Event()
        self.reason: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}

    def add_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            already = self.event.is_set()
            if not already:
                self._callbacks.append(callback)
        if already:
            callback()

    def request(self, reason: str) -> bool:
        """Ask to stop; True the first time, False if a stop was already under way."""
        with self._lock:
            if self.event.is_set():
                return False
            self.reason = reason
            self.event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    def is_set(self) -> bool:
        return self.event.is_set()

    def restore(self) -> None:
        """Put back the handlers that were there before `install_stop_signals`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.request(name):
            log.info(
                f"{self.component}.stop_requested",
                message=f"{name} received: finishing the copies in flight, then exiting",
                signal=name,
            )
            return
        # A second signal means the person at the terminal does not want to wait. Everything
        # that matters is already on disk (ledger, nonce files), so a hard exit is safe.
        log.warning(
            f"{self.component}.stop_forced",
            message=f"second {name}: exiting now without waiting for copies in flight",
            signal=name,
        )
        sys.stdout.flush()
        os._exit(128 + signum)


def default_stop_signals() -> tuple[signal.Signals, ...]:
    hup = getattr(signal, "SIGHUP", None)
    return (signal.SIGTERM, signal.SIGINT) + ((hup,) if hup is not None else ())


def install_stop_signals(
    signals: Iterable[signal.Signals] | None = None, *, component: str = "daemon"
) -> StopSignal:
    """Route SIGTERM, SIGINT (and SIGHUP) to one StopSignal; a second signal exits at once.

    The log events are `<component>.stop_requested` and `<component>.stop_forced`. Must be
    called from the main thread. Python handles the signal itself, so it works whether
    tini, `start.sh` (which `exec`s Python) or Railway's start command launched the process.
    """
    stop = StopSignal(component)
    for signum in signals if signals is not None else default_stop_signals():
        stop._previous[signum] = signal.signal(signum, stop._handle)
    return stop


# --------------------------------------------------------------------------- heartbeat


# The daemon's state in its heartbeat: copying, or up but resting (MASTER unusable; see daemon).
STATUS_COPYING = "copying"
STATUS_RESTING = "resting"


@dataclass(frozen=True)
class HeartbeatSnapshot:
    accounts_connected: int
    accounts_total: int
    master_orders_seen: int
    copies_placed: int
    copies_skipped: int
    copies_failed: int
    last_master_event_age_s: float | None
    uptime_s: float
    status: str = STATUS_COPYING
    # Why the daemon rests (status "resting"): what the operator must fix.
    resting_reason: str | None = None
    # Users whose account rests now (a lockout, a bad key), with the seconds left.
    accounts_resting: dict[str, float] = field(default_factory=dict)


class Heartbeat:
    """Counts what the daemon did and says so every `interval_s`: a log event and a file.

    The daemon reports facts as they happen (`master_event()`, `copy_placed()`, ...); a thread
    started by `running()` logs `daemon.heartbeat` and rewrites `<data_dir>/heartbeat.json`, whose
    age a health check reads (`heartbeat_age_s`). All methods are thread-safe.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = data_dir / HEARTBEAT_FILE_NAME
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._started = monotonic()
        self._lock = threading.Lock()
        self._accounts_connected = 0
        self._accounts_total = 0
        self._master_orders_seen = 0
        self._placed = 0
        self._skipped = 0
        self._failed = 0
        self._last_master_event: float | None = None
        self._resting_reason: str | None = None
        self._accounts_resting: Callable[[], dict[str, float]] = dict

    def set_resting(self, reason: str | None) -> None:
        """The daemon is up but copies nothing until `reason` is fixed (None: copying again)."""
        with self._lock:
            self._resting_reason = reason

    def watch_resting_accounts(self, source: Callable[[], dict[str, float]]) -> None:
        """`source()` names the users whose account rests now (read at every beat)."""
        with self._lock:
            self._accounts_resting = source

    def set_accounts(self, *, connected: int, total: int) -> None:
        with self._lock:
            self._accounts_connected, self._accounts_total = connected, total

    def master_event(self) -> None:
        """Any event from the master feed (new order, fill, cancel): proves the feed is alive."""
        with self._lock:
            self._last_master_event = self._monotonic()

    def master_order_seen(self) -> None:
        with self._lock:
            self._master_orders_seen += 1
            self._last_master_event = self._monotonic()

    def copy_placed(self) -> None:
        with self._lock:
            self._placed += 1

    def copy_skipped(self) -> None:
        with self._lock:
            self._skipped += 1

    def copy_failed(self) -> None:
        with self._lock:
            self._failed += 1

    def snapshot(self) -> HeartbeatSnapshot:
        with self._lock:
            source = self._accounts_resting
        try:
            accounts_resting = source()
        except Exception:  # noqa: BLE001 - a beat must never fail on a report
            accounts_resting = {}
        with self._lock:
            now = self._monotonic()
            last = self._last_master_event
            resting = self._resting_reason
            return HeartbeatSnapshot(
                accounts_connected=self._accounts_connected,
                accounts_total=self._accounts_total,
                master_orders_seen=self._master_orders_seen,
                copies_placed=self._placed,
                copies_skipped=self._skipped,
                copies_failed=self._failed,
                last_master_event_age_s=None if last is None else round(now - last, 3),
                uptime_s=round(now - self._started, 3),
                status=STATUS_RESTING if resting else STATUS_COPYING,
                resting_reason=resting,
                accounts_resting=accounts_resting,
            )

    def beat(self) -> HeartbeatSnapshot:
        """Log one `daemon.heartbeat` and rewrite the heartbeat file now."""
        snap = self.snapshot()
        fields = asdict(snap)
        age = snap.last_master_event_age_s
        if snap.resting_reason:
            message = f"alive but resting, copying nothing: {snap.resting_reason}"
        else:
            message = (
                f"alive: {snap.accounts_connected}/{snap.accounts_total} accounts connected, "
                f"copies placed {snap.copies_placed}, skipped {snap.copies_skipped}, "
                f"failed {snap.copies_failed}; last master event "
                + ("never" if age is None else f"{age:.0f} s ago")
            )
            if snap.accounts_resting:
                message += "; resting: " + ", ".join(
                    f"{user} ({left:.0f} s)" for user, left in sorted(snap.accounts_resting.items())
                )
        log.info("daemon.heartbeat", message=message, **fields)
        try:
            record = {"time": _utc_now_iso(), "unix": time.time(), "pid": os.getpid()}
            _write_json_atomically(self.path, {**record, **fields})
        except OSError as error:
            # A full or read-only disk must not stop the copying; the log line says why.
            log.warning(
                "daemon.heartbeat_file_failed",
                message=f"could not write {self.path}: {error.strerror}",
                path=str(self.path),
            )
        return snap

    @contextlib.contextmanager
    def running(self, stop: threading.Event) -> Iterator[Heartbeat]:
        """Beat in a background thread while the block runs; the thread ends with the block."""
        own_stop = threading.Event()

        def loop() -> None:
            self.beat()
            while not (own_stop.wait(self.interval_s) or stop.is_set()):
                self.beat()

        thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            own_stop.set()
            thread.join(timeout=5.0)


def heartbeat_resting_reason(data_dir: Path) -> str | None:
    """Why the daemon writing the heartbeat in `data_dir` rests, or None (copying, or no file)."""
    try:
        raw = json.loads((data_dir / HEARTBEAT_FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("status") != STATUS_RESTING:
        return None
    return str(raw.get("resting_reason") or "no reason recorded")


def heartbeat_age_s(data_dir: Path, *, now: float | None = None) -> float | None:
    """Seconds since the heartbeat file in `data_dir` was written, or None if there is none."""
    try:
        raw = json.loads((data_dir / HEARTBEAT_FILE_NAME).read_text())
        written = float(raw["unix"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (time.time() if now is None else now) - written


def is_healthy(data_dirs: Iterable[Path], *, max_age_s: float) -> bool:
    """True if any of these folders holds a heartbeat younger than `max_age_s`."""
    ages = [age for age in (heartbeat_age_s(d) for d in data_dirs) if age is not None]
    return bool(ages) and min(ages) <= max_age_s
