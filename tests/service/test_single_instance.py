"""Only one `copytrader run` per data folder: a second one exits at once, naming the holder."""

from __future__ import annotations

import base64
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests import secretscan
from tests.service.daemonproc import clean_environment, event_names, start_daemon
from tests.simproc import new_secret, running_sim

EXIT_LOCKED = 3


def test_second_daemon_on_the_same_data_folder_exits_at_once_naming_the_holder(
    tmp_path: Path,
) -> None:
    """While one daemon runs, a second on its data folder exits non-zero within seconds and
    names the first one's pid; the first one still stops cleanly."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "accounts.toml").write_text(
        '[copy]\nmaster_tier = "pro"\n[[users]]\nid = "idle_user"\n'
    )
    key = secretscan.register_secret(base64.b64encode(secrets.token_bytes(42)).decode())
    secret = new_secret()
    accounts = f'[[accounts]]\nname = "master"\nkey = "{key}"\nsecret = "{secret}"\n'
    with running_sim(accounts) as sim:
        env = {
            "KRAKEN_API_URL": sim.url,
            "COPYTRADER_DATA_DIR": str(tmp_path / "data"),
            "KRAKEN_MASTER_API_KEY": key,
            "KRAKEN_MASTER_API_SECRET": secret,
        }
        _run_two(tmp_path, env)


def _run_two(tmp_path: Path, env: dict[str, str]) -> None:
    first = start_daemon(cwd=tmp_path, env=env, name="daemon (holder)")
    try:
        first.wait_for(lambda evs: "daemon.running" in event_names(evs), 30, "daemon.running")
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "copytrader", "run"],
            cwd=tmp_path,
            env=clean_environment(env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        took = time.monotonic() - started
        secretscan.record_output("daemon (second)", second.stdout + second.stderr)
        assert second.returncode == EXIT_LOCKED, second.stdout + second.stderr
        assert took < 10
        assert "already used by another `copytrader run`" in second.stdout
        assert f"pid {first.process.pid} on host {socket.gethostname()}" in second.stdout
        code, stop_s = first.signal_and_wait(signal.SIGTERM, 15)
        assert code == 0, "\n".join(first.lines[-20:])
        assert stop_s < 10
    finally:
        first.kill()
