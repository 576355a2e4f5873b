"""The README's rehearsal, as a newcomer runs it: the simulator on examples/sim-accounts.toml,
examples/sim.env's variables, `copytrader check`, the daemon, and a master order placed with
examples/master_order.py, copied to both shipped users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from copytrader.paper.world import DaemonProcess, wait_until
from tests.simproc import SimProcess, running_sim

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example_env(sim: SimProcess, data_dir: Path) -> dict[str, str]:
    """examples/sim.env as `set -a; . examples/sim.env` loads it, pointed at this simulator."""
    values: dict[str, str] = {}
    for line in (EXAMPLES / "sim.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    assert values["KRAKEN_API_URL"] == "http://127.0.0.1:8765"  # what the README starts
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "COPYTRADER_"))}
    return scrubbed | values | {
        "KRAKEN_API_URL": sim.url,
        "COPYTRADER_DATA_DIR": str(data_dir),
        "LOG_FORMAT": "json",
    }


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    with running_sim((EXAMPLES / "sim-accounts.toml").read_text(encoding="utf-8")) as process:
        yield process


def test_rehearsal_check_run_and_a_copied_master_order(sim: SimProcess, tmp_path: Path) -> None:
    env = example_env(sim, tmp_path / "data")
    check = subprocess.run(
        [sys.executable, "-m", "copytrader", "check"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "MASTER connected; 2 of 2 enabled users connected" in check.stdout

    process = subprocess.Popen(
        [sys.executable, "-m", "copytrader", "run"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    daemon = DaemonProcess(process)
    threading.Thread(target=daemon.pump, daemon=True).start()
    try:
        daemon.wait_running()
        order = subprocess.run(
            [sys.executable, str(EXAMPLES / "master_order.py"), "buy", "0.01"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert order.returncode == 0, order.stderr
        reply = json.loads(order.stdout)
        assert reply["error"] == []
        txid = reply["result"]["txid"][0]
        summary = wait_until(
            lambda: [e for e in daemon.named("copy.summary") if e.get("master_txid") == txid],
            30.0,
            f"copy.summary of {txid}",
        )
        assert summary[0]["placed"] == 2, summary
        assert not daemon.named("ledger.lost")
    finally:
        assert daemon.stop() == 0
