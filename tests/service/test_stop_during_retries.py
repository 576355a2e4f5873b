"""SIGTERM while the running daemon's broker is retrying a failing read ends it promptly, exit 0.

The broker's read policy would wait ~7.5 s in all (0.5, 1, 2, 4 s plus jitter) before giving
up; the daemon's brokers wait on its stop event, so SIGTERM cuts that wait short.
"""

from __future__ import annotations

import base64
import secrets
import signal
from pathlib import Path
from typing import Any

from tests import secretscan
from tests.service.daemonproc import event_names, start_daemon
from tests.simproc import new_secret, running_sim

# DESIGN §4 and the platform's drain allow 10 s; with no copy in flight nothing needs finishing,
# so the exit must be far quicker than the read's remaining retry waits.
EXIT_WITHIN_S = 3.0


def _key() -> str:
    return secretscan.register_secret(base64.b64encode(secrets.token_bytes(42)).decode())


def _retrying_open_orders(events: list[dict[str, Any]]) -> bool:
    return any(e.get("event") == "broker.retry" and e.get("method") == "OpenOrders" for e in events)


def test_sigterm_while_master_reads_keep_failing_exits_0_promptly(tmp_path: Path) -> None:
    """MASTER's OpenOrders answers EService:Unavailable on every poll; SIGTERM during the
    broker's retry wait exits 0 within EXIT_WITHIN_S, after the usual drain."""
    master = (_key(), new_secret())
    sim_accounts = (
        f'[[accounts]]\nname = "master"\nkey = "{master[0]}"\nsecret = "{master[1]}"\n'
        'tier = "pro"\nbalances = { ZUSD = "10000", XXBT = "0.5" }\n'
    )
    config = tmp_path / "accounts.toml"
    config.write_text(
        '[copy]\nmaster_tier = "pro"\nconnect_stagger_seconds = 0\n[[users]]\nid = "idle_user"\n'
    )
    with running_sim(sim_accounts) as sim:
        daemon = start_daemon(
            cwd=tmp_path,
            env={
                "KRAKEN_API_URL": sim.url,
                "COPYTRADER_CONFIG": str(config),
                "COPYTRADER_DATA_DIR": str(tmp_path / "data"),
                "KRAKEN_MASTER_API_KEY": master[0],
                "KRAKEN_MASTER_API_SECRET": master[1],
            },
        )
        try:
            daemon.wait_for(lambda evs: "daemon.running" in event_names(evs), 30, "start")
            sim.control("fault", {"endpoint": "OpenOrders", "kind": "unavailable", "count": -1})
            daemon.wait_for(_retrying_open_orders, 30, "broker.retry of MASTER's OpenOrders")
            code, took = daemon.signal_and_wait(signal.SIGTERM, timeout_s=15)
        finally:
            daemon.kill()
    names = event_names(daemon.events())
    assert code == 0, "\n".join(daemon.lines[-30:])
    assert took < EXIT_WITHIN_S, f"took {took:.1f} s to exit"
    assert "daemon.stopped" in names
    # The read in flight ended on the stop (not after its retries): the poll failed, saying so.
    failed = [e for e in daemon.events() if e.get("event") == "feed.poll_failed"]
    assert any("stopping" in str(e.get("error")) for e in failed), failed
