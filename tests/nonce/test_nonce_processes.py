"""NonceStore across real processes: shared data folder, and `kill -9` at random instants."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from copytrader.nonce import NonceStore

WORKER = Path(__file__).with_name("nonce_worker.py")
DEADLINE_S = 30.0


def start_worker(
    data_dir: Path, log_file: Path, count: int, *go_file: Path
) -> subprocess.Popen[bytes]:
    args = [str(data_dir), "USER:shared", str(log_file), str(count), *map(str, go_file)]
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


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
    go_file = tmp_path / "go"
    workers = [start_worker(tmp_path / "data", log_file, 500, go_file) for _ in range(2)]
    go_file.touch()
    try:
        for worker in workers:
            assert worker.wait(DEADLINE_S) == 0, worker.stderr.read() if worker.stderr else ""
    finally:
        for worker in workers:
            stop(worker)
    issued = logged_nonces(log_file)
    assert len(issued) == 1000
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
