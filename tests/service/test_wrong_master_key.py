"""A MASTER with a wrong secret (Railway started with a mistyped variable): the daemon stays up,
resting, instead of exiting 1 into a restart loop where every start sends one more failing call
until Kraken locks the key out. One error event says why, the heartbeat and the health check
say so, the simulator sees a bounded number of MASTER's private calls, and SIGTERM exits 0."""

from __future__ import annotations

import base64
import json
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests import secretscan
from tests.service.daemonproc import clean_environment, event_names, start_daemon
from tests.simproc import SimProcess, new_secret, running_sim

# The start-up probe's TradeBalance, refused (the broker's rest starts, so its OpenOrders is not
# sent); nothing follows until the first re-probe, 15 minutes away. A restart loop would have
# sent one more per start.
MASTER_CALLS = 1
# How long the test watches the resting daemon for further calls (a restart policy would have
# started it several times by now).
WATCH_S = 3.0


def health(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "copytrader.service.health"],
        cwd=cwd, env=clean_environment(env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    secretscan.record_output("health", done.stdout + done.stderr)
    return done


def private_calls(sim: SimProcess, key: str) -> list[dict[str, Any]]:
    """The private requests the simulator received with this API key."""
    found: list[dict[str, Any]] = sim.control("requests?key=" + urllib.parse.quote(key, safe=""))[
        "requests"
    ]
    return found


def test_a_wrong_master_secret_keeps_the_daemon_up_resting_until_sigterm(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "accounts.toml").write_text('[[users]]\nid = "idle_user"\n')
    key = secretscan.register_secret(base64.b64encode(secrets.token_bytes(42)).decode())
    accounts = f'[[accounts]]\nname = "master"\nkey = "{key}"\nsecret = "{new_secret()}"\n'
    data = tmp_path / "data"
    with running_sim(accounts) as sim:
        env = {
            "KRAKEN_API_URL": sim.url,
            "COPYTRADER_DATA_DIR": str(data),
            "KRAKEN_MASTER_API_KEY": key,
            "KRAKEN_MASTER_API_SECRET": new_secret(),  # not the key's: Invalid signature
        }
        daemon = start_daemon(cwd=tmp_path, env=env)
        try:
            daemon.wait_for(
                lambda evs: "daemon.master_unavailable" in event_names(evs), 60, "resting"
            )
            time.sleep(WATCH_S)  # the window a restart loop would have used
            assert daemon.process.poll() is None, "\n".join(daemon.lines[-30:])
            calls = private_calls(sim, key)
            checked = health(env, tmp_path)
            code, took = daemon.signal_and_wait(signal.SIGTERM, 15)
        finally:
            daemon.kill()

    events = daemon.events()
    assert code == 0, "\n".join(daemon.lines[-30:])
    assert took < 3.0, f"took {took:.1f} s to stop while resting"
    # One clear error event from the daemon, naming the variable to fix and what it does now.
    [resting] = [e for e in events if e["event"] == "daemon.master_unavailable"]
    assert resting["level"] == "error"
    assert resting["reason"] == "invalid_signature"
    assert "KRAKEN_MASTER_API_SECRET" in resting["message"]
    assert "stays up" in resting["message"]
    assert resting["next_probe_s"] == 900.0
    errors = [e["event"] for e in events if e.get("level") == "error"]
    assert len(errors) == len(set(errors)), errors  # nothing repeated
    assert "daemon.running" not in event_names(events)
    # Bounded calls: the start-up probe, nothing more while resting.
    assert len(calls) == MASTER_CALLS, calls
    assert all(call["error"] == "EAPI:Invalid signature" for call in calls), calls
    # The heartbeat file and the health check say why.
    beat = json.loads((data / "heartbeat.json").read_text())
    assert beat["status"] == "resting"
    assert "MASTER cannot be used" in beat["resting_reason"]
    assert "EAPI:Invalid signature" in beat["resting_reason"]
    assert checked.returncode == 1, checked.stdout
    assert checked.stdout.startswith(
        "unhealthy: master_down: MASTER cannot be used"
    ), checked.stdout
    assert "KRAKEN_MASTER_API_SECRET" in checked.stdout
    [stopped] = [e for e in events if e["event"] == "daemon.stopped"]
    assert "while resting" in stopped["message"]
