"""NonceStore across real processes: shared data folder, and `kill -9` at random instants."""

from __future__ import annotations

import itertools
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from copytrader.nonce.store import NonceStore

from .nonce_worker import LOCK_TIMEOUT_EXIT

WORKER = Path(__file__).with_name("nonce_worker.py")
DEADLINE_S = 30.0


def start_worker(
    data_dir: Path, log_file: Path, count: int, *options: str
) -> subprocess.Popen[bytes]:
    args = [str(data_dir), "USER:shared", str(log_file), str(count), *options]
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def start_together(workers: list[subprocess.Popen[bytes]]) -> None:
    """Wait until every --wait-for-go worker is ready, then let them all go at once."""
    deadline = time.monotonic() + DEADLINE_S
    for worker in workers:
        assert worker.stdout is not None
        ready, _, _ = select.select([worker.stdout], [], [], deadline - time.monotonic())
        assert ready, "a worker never got ready"
        assert worker.stdout.readline() == b"ready\n", worker.stderr.read() if worker.stderr else ""
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(b"g")
        worker.stdin.close()


def logged_nonces(log_file: Path) -> list[int]:
    if not log_file.exists():
        return []
    lines = log_file.read_text().splitlines()
    return [int(line.split()[1]) for line in lines if line.count(" ") == 1]


def wait_for_growth(log_file: Path, minimum: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while len(logged_nonces(log_file)) < minimum:
        assert time.monotonic() < deadline, "workers stopped taking nonces"
        time.sleep(0.01)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


def test_two_processes_on_one_account_hand_out_strictly_increasing_nonces(tmp_path: Path) -> None:
    """Two processes sharing an account and data folder never reuse or reorder a nonce."""
    log_file = tmp_path / "issued.log"
    # A nonce costs ~15 µs, so each worker needs a few thousand to overlap with the other for
    # long enough to interleave (the OS lock is not fair: a waiter gets in when it finds a gap).
    count = 2000
    workers = [start_worker(tmp_path / "data", log_file, count, "--wait-for-go") for _ in range(2)]
    try:
        start_together(workers)
        for worker in workers:
            assert worker.wait(DEADLINE_S) == 0, worker.stderr.read() if worker.stderr else ""
    finally:
        for worker in workers:
            stop(worker)
    issued = logged_nonces(log_file)
    assert len(issued) == 2 * count
    assert issued == sorted(set(issued))
    pids = [line.split()[0] for line in log_file.read_text().splitlines()]
    runs = 1 + sum(1 for a, b in itertools.pairwise(pids) if a != b)
    assert runs >= 3, "the two processes never interleaved, so the test proved nothing"


def test_kill_9_at_random_instants_never_reuses_a_nonce(tmp_path: Path) -> None:
    """Killing workers with SIGKILL mid-stream and restarting them keeps nonces strictly rising."""
    rng = random.Random(1234)
    data_dir = tmp_path / "data"
    log_file = tmp_path / "issued.log"
    workers = [start_worker(data_dir, log_file, -1) for _ in range(2)]
    kills = 0
    try:
        for _ in range(6):
            wait_for_growth(log_file, len(logged_nonces(log_file)) + rng.randint(20, 200))
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait(10)
            kills += 1
            workers[victim] = start_worker(data_dir, log_file, -1)
        wait_for_growth(log_file, len(logged_nonces(log_file)) + 50)
    finally:
        for worker in workers:
            stop(worker)
    issued = logged_nonces(log_file)
    assert kills == 6
    assert issued == sorted(set(issued))
    store = NonceStore("USER:shared", data_dir)
    assert store.peek() >= issued[-1]
    with store.locked() as next_nonce:
        assert next_nonce() > issued[-1]


def test_a_deleted_lock_file_does_not_let_another_process_in(tmp_path: Path) -> None:
    """A store whose lock file was deleted since it opened it still excludes other processes.

    The store keeps the lock file open between locks; locking the deleted file would exclude
    nobody, since another process opening the path creates and locks a new one.
    """
    data_dir = tmp_path / "data"
    log_file = tmp_path / "issued.log"
    store = NonceStore("USER:shared", data_dir)
    with store.locked() as next_nonce:
        next_nonce()
    lock_file = store.path.with_name(store.path.name + ".lock")
    lock_file.unlink()
    with store.locked() as next_nonce:
        held = next_nonce()
        blocked = start_worker(data_dir, log_file, 1, "--lock-timeout", "0.3")
        try:
            assert blocked.wait(DEADLINE_S) == LOCK_TIMEOUT_EXIT, (
                blocked.stderr.read() if blocked.stderr else ""
            )
        finally:
            stop(blocked)
    assert logged_nonces(log_file) == []
    after = start_worker(data_dir, log_file, 1)
    try:
        assert after.wait(DEADLINE_S) == 0, after.stderr.read() if after.stderr else ""
    finally:
        stop(after)
    [nonce] = logged_nonces(log_file)
    assert nonce > held
