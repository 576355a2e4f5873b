"""The simulator as a process, started as `copytrader sim` and as `python -m kraken_sim`: its one
listening line, stopping at once, --latency-ms, --seed, a port in use."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests import secretscan
from tests.sim.conftest import Key
from tests.sim.kraken_http import RawClient, public
from tests.simproc import new_secret, running_sim

STOP_WITHIN_S = 3.0
# The two ways to start the simulator, and the name each puts before its messages.
COMMANDS = [
    pytest.param((sys.executable, "-m", "copytrader", "sim"), "copytrader sim", id="copytrader"),
    pytest.param((sys.executable, "-m", "kraken_sim"), "kraken_sim", id="kraken_sim"),
]


def _one_account(key: Key) -> str:
    return (
        f'[[accounts]]\nname = "{key.account}"\nkey = "{key.key}"\nsecret = "{key.secret}"\n'
        'balances = { ZUSD = "100000" }\n'
    )


def _start(command: tuple[str, ...], accounts: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0", "--accounts", str(accounts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _stop_and_collect(process: subprocess.Popen[str], signum: int) -> tuple[int, float, str]:
    started = time.monotonic()
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=10)
    elapsed = time.monotonic() - started
    secretscan.record_output("sim process test", out + err)
    return process.returncode, elapsed, out + err


@pytest.mark.parametrize("command", [param.values[0] for param in COMMANDS],
                         ids=["copytrader", "kraken_sim"])  # fmt: skip
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_listening_line_and_stops_at_once(
    tmp_path: Path, signum: int, command: tuple[str, ...]
) -> None:
    """The first line is exactly `listening on http://127.0.0.1:PORT`, the port answers, and
    SIGTERM or Ctrl-C (SIGINT) stop the process at once with exit code 0 - even while a
    request hangs."""
    key = Key("solo", "solo-key", new_secret())
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(_one_account(key))
    process = _start(command, accounts)
    try:
        assert process.stdout is not None
        first = process.stdout.readline().rstrip("\n")
        match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)", first)
        assert match, first
        url = f"http://127.0.0.1:{match.group(1)}"
        assert public(url, "Time")["error"] == []
        requests.post(f"{url}/sim/fault", json={"endpoint": "Balance", "kind": "hang"}, timeout=5)
        hanging = threading.Thread(
            target=_call_ignoring_errors, args=(RawClient(url, key.key, key.secret),), daemon=True
        )
        hanging.start()
        _wait_until_logged(url)
    finally:
        code, elapsed, output = _stop_and_collect(process, signum)
    assert code == 0, output
    assert elapsed < STOP_WITHIN_S
    assert "Traceback" not in output
    assert key.secret not in output


def _call_ignoring_errors(raw: RawClient) -> None:
    with contextlib.suppress(requests.RequestException):
        raw.call("Balance")  # the hanging call ends when the server goes away


def _wait_until_logged(url: str) -> None:
    """Until the simulator has received the hanging request (it counts it before hanging)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        counters = requests.get(f"{url}/sim/state", timeout=5).json()["counters"]
        if counters["by_method"].get("Balance"):
            return
        time.sleep(0.02)
    raise AssertionError("the hanging request never arrived")


def test_latency_option_delays_api_calls_but_not_control() -> None:
    """--latency-ms delays every /0/ request by that much; control endpoints stay fast."""
    key = Key("slow", "slow-key", new_secret())
    with running_sim(_one_account(key), "--latency-ms", "200") as sim:
        started = time.monotonic()
        assert public(sim.url, "Time")["error"] == []
        assert RawClient(sim.url, key.key, key.secret).call("Balance")["error"] == []
        assert time.monotonic() - started >= 0.4
        started = time.monotonic()
        sim.control("state")
        assert time.monotonic() - started < 0.2


def test_same_seed_gives_the_same_order_ids() -> None:
    """Two simulators started with the same --seed answer the same calls with the same txids."""
    key = Key("seeded", "seeded-key", new_secret())
    txids = []
    for _ in range(2):
        with running_sim(_one_account(key), "--seed", "42") as sim:
            raw = RawClient(sim.url, key.key, key.secret)
            placed = [
                raw.call("AddOrder", pair="XBTUSD", type="buy", ordertype="market",
                         volume="0.001")["result"]["txid"][0]
                for _ in range(3)
            ]  # fmt: skip
            txids.append(placed)
    assert txids[0] == txids[1]
    assert len(set(txids[0])) == 3


@pytest.mark.parametrize(("command", "prog"), COMMANDS)
def test_port_in_use_is_a_clear_error(tmp_path: Path, command: tuple[str, ...], prog: str) -> None:
    """Asking for a port that is taken exits 1 with a message naming the command, not a
    traceback."""
    key = Key("solo", "solo-key", new_secret())
    with running_sim(_one_account(key)) as sim:
        port = sim.url.rsplit(":", 1)[1]
        accounts = tmp_path / "accounts.toml"
        accounts.write_text(_one_account(key))
        done = subprocess.run(
            [*command, "--port", port, "--accounts", str(accounts)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"{prog}: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr
