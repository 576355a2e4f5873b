"""`copytrader check` next to a running process on the same accounts and data folder: the nonce
files and their locks keep both sides' nonces in order, so neither sees `EAPI:Invalid nonce`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from tests import secretscan
from tests.broker.conftest import rest_limits_off
from tests.check.conftest import Accounts, base_env, run_check
from tests.simproc import running_sim

WORKER = Path(__file__).with_name("busy_worker.py")
CHECK_RUNS = 3
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def test_check_beside_a_busy_process_never_gets_invalid_nonce(tmp_path: Path) -> None:
    """check runs 3 times while another process hammers the same 3 accounts: no invalid nonce
    on either side, and none counted by the exchange."""
    accounts = Accounts()
    stop_file = tmp_path / "stop"
    with running_sim(accounts.toml()) as sim, rest_limits_off(sim):
        env = {**base_env(), **accounts.env(sim, tmp_path / "data")}
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), str(stop_file)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert first_line(worker, READY_TIMEOUT_S) == "ready"

            results = [run_check(env, tmp_path, "--json") for _ in range(CHECK_RUNS)]
            assert worker.poll() is None, "the worker must still be busy while check runs"
        finally:
            stop_file.write_text("stop")
            try:
                out, err = worker.communicate(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                out, err = worker.communicate(timeout=STOP_TIMEOUT_S)
            secretscan.record_output("busy worker", out + err)
        counters = sim.control("state")["counters"]

    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["errors"] == {}, summary["errors"]
    assert all(summary["calls"][a] > 10 for a in ("MASTER", *accounts_ids())), summary["calls"]
    assert "Invalid nonce" not in out + err
    nonces: list[int] = []
    for result in results:
        assert result.status == 0, result.stdout + result.stderr
        assert "Invalid nonce" not in result.stdout + result.stderr
        nonces.append(result.account("MASTER")["nonce_last"])
    assert nonces == sorted(nonces)
    assert counters["invalid_nonce"] == 0, counters


def accounts_ids() -> tuple[str, ...]:
    return ("USER:daivon_frazier", "USER:tania_gilbert")


def first_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The process's first stdout line, waiting at most `timeout_s` for it."""
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.append(process.stdout.readline() if process.stdout else ""),
        daemon=True,
    )
    reader.start()
    reader.join(timeout_s)
    assert lines, f"no output from the worker within {timeout_s:g} s"
    return lines[0].strip()
