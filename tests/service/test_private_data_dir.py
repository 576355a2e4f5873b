"""The data folder and every file in it are private to the daemon's user (DESIGN §4): what the
daemon and `check` create is 0600 (folders 0700), and what an earlier version or another tool
left readable is made private at start, with one event saying so."""

from __future__ import annotations

import base64
import secrets
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests import secretscan
from tests.service.daemonproc import clean_environment, event_names, start_daemon
from tests.simproc import new_secret, running_sim


def modes(folder: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_the_daemon_and_check_keep_the_data_folder_private(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "accounts.toml").write_text(
        '[copy]\nmaster_tier = "pro"\n[[users]]\nid = "idle_user"\n'
    )
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # whatever the test runner's umask
    left_over = data / "kraken_nonce_master.txt"
    left_over.write_text("1700000000000\n")
    left_over.chmod(0o644)
    key = secretscan.register_secret(base64.b64encode(secrets.token_bytes(42)).decode())
    secret = new_secret()
    accounts = f'[[accounts]]\nname = "master"\nkey = "{key}"\nsecret = "{secret}"\n'
    with running_sim(accounts) as sim:
        env = {
            "KRAKEN_API_URL": sim.url,
            "COPYTRADER_DATA_DIR": str(data),
            "KRAKEN_MASTER_API_KEY": key,
            "KRAKEN_MASTER_API_SECRET": secret,
        }
        daemon = start_daemon(cwd=tmp_path, env=env)
        try:
            daemon.wait_for(lambda evs: "daemon.running" in event_names(evs), 30, "running")
            made_private = [e for e in daemon.events() if e["event"] == "data_dir.made_private"]
            assert len(made_private) == 1
            assert set(made_private[0]["entries"]) == {".", "kraken_nonce_master.txt"}
            assert_private(data)  # what the running daemon has created meanwhile
            code, _ = daemon.signal_and_wait(signal.SIGTERM, 15)
            assert code == 0
        finally:
            daemon.kill()
        check = subprocess.run(
            [sys.executable, "-m", "copytrader", "check", "--json"],
            cwd=tmp_path, env=clean_environment(env), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        secretscan.record_output("check", check.stdout + check.stderr)
        assert check.returncode == 1, check.stderr  # 1: the idle user has no keys, MASTER ok
    assert_private(data)


def assert_private(data: Path) -> None:
    found = modes(data)
    assert "copies.sqlite3" in found
    assert len(found) > 4  # nonce file and its sidecars, ledger, lock, heartbeat
    readable_by_others = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert readable_by_others == {}
    assert found["."] == 0o700
