"""NonceStore in one process: naming, ordering across threads, clock steps, recovery, migration."""

from __future__ import annotations

import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from copytrader.errors import ConfigError, RetryLaterError
from copytrader.nonce.store import (
    CEILING_MARGIN_MS,
    LEGACY_FILE_NAME,
    NonceStore,
    nonce_file_name,
    wall_clock_ms,
)


class SteppingClock:
    """A wall clock a test can set, including backwards."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def take(store: NonceStore, count: int = 1) -> list[int]:
    with store.locked() as next_nonce:
        return [next_nonce() for _ in range(count)]


def lock_file_of(store: NonceStore) -> Path:
    return store.path.with_name(store.path.name + ".lock")


def another_opener_can_lock(lock_file: Path) -> bool:
    """Whether the OS lock is free for a new open of the lock file, as another process makes.

    flock locks belong to an open file, so a second open in this process competes like one in
    another process would.
    """
    fcntl = pytest.importorskip("fcntl")
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def in_forked_child(body: Callable[[], str]) -> str:
    """Run `body` in a forked child of this process; return "ok <its result>" or its failure."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must never return into pytest
        status, report = 1, "failed before the body ran"
        try:
            os.close(read_fd)
            report, status = f"ok {body()}", 0
        except BaseException as exc:  # noqa: BLE001 - pytest's failures are BaseExceptions
            report = f"failed {exc!r}"
        finally:
            try:
                os.write(write_fd, report.encode())
            finally:
                os._exit(status)
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + 30
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("the forked child did not finish")
            chunk = os.read(read_fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    ("account_id", "file_name"),
    [
        ("MASTER", "kraken_nonce_master.txt"),
        ("USER:daivon_frazier", "kraken_nonce_user_daivon_frazier.txt"),
        ("USER:tania_gilbert", "kraken_nonce_user_tania_gilbert.txt"),
        ("USER:Tania Gilbert", "kraken_nonce_user_tania_gilbert.txt"),
        ("USER:a-b.c", "kraken_nonce_user_a-bc.txt"),
        ("USER:../../etc/passwd", "kraken_nonce_user_etcpasswd.txt"),
    ],
)
def test_file_names_are_sanitized_account_ids(account_id: str, file_name: str) -> None:
    """Ids are lower-cased, ':' and spaces become '_', anything outside [-a-z0-9_] is dropped."""
    assert nonce_file_name(account_id) == file_name


@pytest.mark.parametrize("account_id", ["", "...", "/", "é", "../"])
def test_ids_that_sanitize_to_nothing_are_rejected(account_id: str, tmp_path: Path) -> None:
    """An id with no usable character is a ConfigError, not an odd file name."""
    with pytest.raises(ConfigError):
        NonceStore(account_id, tmp_path)


def test_store_file_stays_inside_the_data_folder(tmp_path: Path) -> None:
    """Even an id full of path syntax yields a file directly in the data folder."""
    store = NonceStore("USER:../../../tmp/evil", tmp_path / "data")
    take(store)
    assert store.path.parent == (tmp_path / "data").absolute()
    assert store.path.exists()


def test_nonce_is_clock_then_last_plus_one(tmp_path: Path) -> None:
    """The first nonce is now in ms; later ones are max(now, last + 1)."""
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("MASTER", tmp_path, clock_ms=clock)
    assert take(store, 3) == [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002]
    clock.now_ms += 10_000
    assert take(store) == [1_700_000_010_000]
    assert store.peek() == 1_700_000_010_000
    assert store.path.read_text().strip() == "1700000010000"


def test_default_clock_is_milliseconds(tmp_path: Path) -> None:
    """Without an injected clock the nonce is the wall clock in ms (krakenex's unit)."""
    before = wall_clock_ms()
    (nonce,) = take(NonceStore("MASTER", tmp_path))
    assert before <= nonce <= wall_clock_ms()


def test_clock_stepping_back_never_lowers_nonces(tmp_path: Path) -> None:
    """A clock jumping back an hour, in one run and across a restart, still gives rising nonces."""
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("USER:ann", tmp_path, clock_ms=clock)
    first = take(store, 2)
    clock.now_ms -= 3_600_000
    second = take(store, 2)
    restarted = NonceStore("USER:ann", tmp_path, clock_ms=SteppingClock(1_600_000_000_000))
    third = take(restarted, 2)
    issued = first + second + third
    assert issued == sorted(set(issued))
    assert issued[-1] == 1_700_000_000_005


def test_threads_sharing_an_account_get_strictly_increasing_nonces(tmp_path: Path) -> None:
    """12 threads over two store objects on one account: every nonce is unique and in lock order."""
    stores = [NonceStore("USER:ann", tmp_path), NonceStore("USER:ann", tmp_path)]
    issued: list[int] = []

    def worker(store: NonceStore) -> None:
        for _ in range(60):
            with store.locked() as next_nonce:
                issued.append(next_nonce())

    threads = [threading.Thread(target=worker, args=(stores[i % 2],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(issued) == 12 * 60
    assert issued == sorted(set(issued))
    assert stores[0].peek() == issued[-1]


def test_accounts_do_not_share_files_or_locks(tmp_path: Path) -> None:
    """Holding one account's lock does not block another account."""
    master = NonceStore("MASTER", tmp_path)
    user = NonceStore("USER:ann", tmp_path, lock_timeout_s=2)
    with master.locked() as next_master:
        next_master()
        (user_nonce,) = take(user)
    assert master.path != user.path
    assert user.peek() == user_nonce


def test_lock_is_not_reentrant(tmp_path: Path) -> None:
    """Taking the same account's lock twice in one thread is a bug and says so."""
    store = NonceStore("MASTER", tmp_path)
    with store.locked(), pytest.raises(RuntimeError, match="not re-entrant"), store.locked():
        pass


def test_next_nonce_outside_the_lock_is_refused(tmp_path: Path) -> None:
    """The callable from locked() cannot be used after the block ends."""
    store = NonceStore("MASTER", tmp_path)
    with store.locked() as next_nonce:
        next_nonce()
    with pytest.raises(RuntimeError, match="outside its lock"):
        next_nonce()


def test_jump_is_persisted_before_use(tmp_path: Path) -> None:
    """jump() writes max(last, now) + step to disk; the next nonce is one above it."""
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("MASTER", tmp_path, clock_ms=clock)
    take(store)
    assert store.jump(5_000) == 1_700_000_005_000
    assert store.path.read_text().strip() == "1700000005000"
    assert take(store) == [1_700_000_005_001]
    with pytest.raises(ValueError, match="positive"):
        store.jump(0)


def test_deleted_file_with_clock_behind_resumes_above_the_ceiling(tmp_path: Path) -> None:
    """Deleting the nonce file while the clock is behind still never reuses a nonce."""
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("USER:ann", tmp_path, clock_ms=clock)
    issued = take(store, 5)
    store.path.unlink()
    clock.now_ms -= 600_000
    with capture_logs() as logs:
        (after,) = take(NonceStore("USER:ann", tmp_path, clock_ms=clock))
    assert after > issued[-1]
    assert after <= issued[-1] + CEILING_MARGIN_MS + 1
    assert [entry["event"] for entry in logs] == ["nonce.recovered"]
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["account"] == "USER:ann"


def test_reboot_with_a_stale_main_file_resumes_above_the_ceiling(tmp_path: Path) -> None:
    """After a reboot the main file (not fsync'd) may be stale; nonces resume above the ceiling."""
    clock = SteppingClock(1_700_000_000_000)
    before = NonceStore("USER:ann", tmp_path, clock_ms=clock, boot_id="boot-1")
    stale = take(before)[0]
    clock.now_ms += 5_000
    issued = take(before, 3)
    # A power cut lost the page cache: the main file is back to an older value, the clock behind.
    before.path.write_text(f"{stale}\n")
    clock.now_ms -= 600_000
    after_reboot = NonceStore("USER:ann", tmp_path, clock_ms=clock, boot_id="boot-2")
    with capture_logs() as logs:
        (after,) = take(after_reboot)
    assert after > issued[-1]
    assert after <= issued[-1] + CEILING_MARGIN_MS + 1
    assert [entry["event"] for entry in logs] == ["nonce.boot_check"]
    # Within one boot the main file is trusted as it is: no second check, no further jump.
    assert take(after_reboot) == [after + 1]


def test_same_boot_continues_from_the_main_file(tmp_path: Path) -> None:
    """A restart within the same boot (kill -9, redeploy) continues at last + 1, no jump."""
    clock = SteppingClock(1_700_000_000_000)
    issued = take(NonceStore("USER:ann", tmp_path, clock_ms=clock, boot_id="boot-1"), 3)
    clock.now_ms -= 600_000
    restarted = NonceStore("USER:ann", tmp_path, clock_ms=clock, boot_id="boot-1")
    assert take(restarted) == [issued[-1] + 1]


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"garbage", b"12abc", b"-5", b"0", str(2**64).encode(), b"\x00\xff\x10", b"1 2"],
)
def test_corrupt_file_is_recovered_with_a_warning(tmp_path: Path, content: bytes) -> None:
    """An empty or corrupt nonce file is a warning and the next nonce is above every issued one."""
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("USER:ann", tmp_path, clock_ms=clock)
    issued = take(store, 3)
    store.path.write_bytes(content)
    clock.now_ms -= 60_000
    with capture_logs() as logs:
        (after,) = take(store)
    assert after > issued[-1]
    assert any(e["event"] == "nonce.recovered" and e["log_level"] == "warning" for e in logs)
    assert int(store.path.read_text()) == after


def test_leftover_temp_file_from_a_crash_is_taken_into_account(tmp_path: Path) -> None:
    """A temp file left by a crash mid-write holds a candidate value that recovery respects."""
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("USER:ann", tmp_path, clock_ms=clock)
    take(store)
    store.path.with_name(store.path.name + ".ceiling").unlink()
    store.path.with_name(store.path.name + ".tmp").write_text("1800000000000\n")
    store.path.write_text("")
    assert take(NonceStore("USER:ann", tmp_path, clock_ms=clock)) == [1_800_000_000_001]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(main=st.binary(max_size=40), ceiling=st.one_of(st.none(), st.binary(max_size=30)))
def test_any_file_content_never_crashes(tmp_path: Path, main: bytes, ceiling: bytes | None) -> None:
    """Whatever bytes the files hold, taking a nonce works and the result is persisted."""
    data = tmp_path / "fuzz"
    data.mkdir(exist_ok=True)
    store = NonceStore("USER:fuzz", data)
    store.path.write_bytes(main)
    ceiling_path = store.path.with_name(store.path.name + ".ceiling")
    if ceiling is None:
        ceiling_path.unlink(missing_ok=True)
    else:
        ceiling_path.write_bytes(ceiling)
    (nonce,) = take(store)
    assert nonce > 0
    assert int(store.path.read_text()) == nonce


def test_master_migrates_the_legacy_shared_file(tmp_path: Path) -> None:
    """A first-start MASTER continues above data/kraken_nonce.txt; other accounts do not use it."""
    clock = SteppingClock(1_700_000_000_000)
    (tmp_path / LEGACY_FILE_NAME).write_text("1700003600000\n")  # an hour ahead, as a busy key gets
    with capture_logs() as logs:
        master_first = take(NonceStore("MASTER", tmp_path, clock_ms=clock))
    user_first = take(NonceStore("USER:ann", tmp_path, clock_ms=clock))
    assert master_first == [1_700_003_600_001]
    assert user_first == [1_700_000_000_000]
    assert [e["event"] for e in logs] == ["nonce.migrated"]
    assert (tmp_path / "kraken_nonce_master.txt").read_text().strip() == "1700003600001"


def test_legacy_file_is_ignored_once_master_has_its_own(tmp_path: Path) -> None:
    """The migration happens only while the MASTER file does not exist."""
    clock = SteppingClock(1_700_000_000_000)
    take(NonceStore("MASTER", tmp_path, clock_ms=clock))
    (tmp_path / LEGACY_FILE_NAME).write_text("1750000000000\n")
    assert take(NonceStore("MASTER", tmp_path, clock_ms=clock)) == [1_700_000_000_001]


def test_unusable_data_folder_is_a_config_error(tmp_path: Path) -> None:
    """A data folder that cannot be created is reported as a ConfigError naming the path."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = NonceStore("MASTER", blocker)
    with pytest.raises(ConfigError, match="not-a-dir"):
        take(store)


def test_repr_names_account_and_path(tmp_path: Path) -> None:
    """The store's repr says which account and file it is, for logs and debugging."""
    text = repr(NonceStore("USER:ann", tmp_path))
    assert "USER:ann" in text
    assert "kraken_nonce_user_ann.txt" in text


def test_concurrent_stores_of_same_account_warn_when_ids_collide(tmp_path: Path) -> None:
    """Two different account ids that sanitize to one file name are reported."""
    NonceStore("USER:bob smith", tmp_path)
    with capture_logs() as logs:
        NonceStore("USER:Bob_Smith", tmp_path)
    assert [e["event"] for e in logs] == ["nonce.shared_file"]


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_lock_file_changed_behind_the_store_is_reopened(tmp_path: Path, change: str) -> None:
    """The store keeps its lock file open; if it is deleted or replaced, the lock still excludes.

    Locking the old file would exclude nobody: another process opens the file now at the path.
    """
    store = NonceStore("USER:ann", tmp_path)
    (first,) = take(store)
    lock_file = lock_file_of(store)
    if change == "deleted":
        lock_file.unlink()
    else:
        replacement = tmp_path / "replacement"
        replacement.touch()
        replacement.replace(lock_file)
    with store.locked() as next_nonce:
        assert next_nonce() > first
        assert not another_opener_can_lock(lock_file)
    assert another_opener_can_lock(lock_file)


def test_a_removed_data_folder_is_created_again(tmp_path: Path) -> None:
    """The data folder is created on first use, and again if it disappears later."""
    data = tmp_path / "a" / "data"
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("USER:ann", data, clock_ms=clock)
    assert take(store) == [1_700_000_000_000]
    shutil.rmtree(tmp_path / "a")
    clock.now_ms += 1
    assert take(store) == [1_700_000_000_001]
    assert store.path.read_text().strip() == "1700000000001"
    assert lock_file_of(store).exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_neither_shares_nor_frees_the_parents_lock(tmp_path: Path) -> None:
    """A child forked while the parent holds the lock gets its own lock, which it must wait for.

    flock locks belong to the open file, which a fork shares: without care the child would
    "hold" the parent's lock, and its unlock would free it.
    """
    pytest.importorskip("fcntl")
    store = NonceStore("USER:ann", tmp_path, lock_timeout_s=0.3)
    take(store)  # the lock file is open before the fork
    lock_file = lock_file_of(store)
    block = store.locked()
    next_nonce = block.__enter__()
    try:
        held = next_nonce()

        def while_the_parent_holds() -> str:
            with pytest.raises(RuntimeError, match="outside its lock"):
                next_nonce()  # the parent's block is not the child's
            block.__exit__(None, None, None)  # leaving the inherited block frees nothing
            assert not another_opener_can_lock(lock_file)
            with pytest.raises(RetryLaterError, match="another process"):
                take(store)
            return "waited"

        assert in_forked_child(while_the_parent_holds) == "ok waited"
        assert not another_opener_can_lock(lock_file)
    finally:
        block.__exit__(None, None, None)

    def after_the_parent_released() -> str:
        return str(take(store)[0])

    report = in_forked_child(after_the_parent_released)
    assert report.startswith("ok "), report
    from_child = int(report.removeprefix("ok "))
    assert from_child > held
    assert take(store)[0] > from_child


@pytest.mark.parametrize(
    "stored", [1_700_000_000_000 * 1000, 2**64 - 10_000, 1_700_000_000_000 + 2 * 86_400_000]
)
def test_a_nonce_far_above_the_clock_is_warned_about_once_naming_the_file(
    tmp_path: Path, stored: int
) -> None:
    """A file holding a value near 2^64 or days above the clock (a restored or edited file,
    microseconds written as milliseconds) is still used, since Kraken may remember it, but one
    warning names the file and what is left of the key's nonce space."""
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("USER:ann", tmp_path, clock_ms=clock)
    take(store)
    store.path.write_text(f"{stored}\n")
    with capture_logs() as logs:
        assert take(store, 3) == [stored + 1, stored + 2, stored + 3]
    warnings = [e for e in logs if e["event"] == "nonce.far_ahead"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert str(store.path) in warnings[0]["message"]
    assert warnings[0]["remaining"] == 2**64 - 1 - (stored + 1)


def test_a_nonce_jump_or_a_clock_slightly_behind_is_not_warned_about(tmp_path: Path) -> None:
    clock = SteppingClock(1_700_000_000_000)
    store = NonceStore("USER:ann", tmp_path, clock_ms=clock)
    store.jump(10 * 60_000)
    clock.now_ms -= 3_600_000
    with capture_logs() as logs:
        take(store, 2)
    assert not [e for e in logs if e["event"] == "nonce.far_ahead"]
