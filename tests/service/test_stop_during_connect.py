"""SIGTERM while the daemon is still connecting its accounts ends it at once, with exit 0."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.daemonproc import event_names, start_daemon
from tests.simproc import new_secret

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "config" / "accounts.toml"
# Issue 6 allows 10 s; a stop during connecting has nothing to finish, so it must be far quicker.
EXIT_WITHIN_S = 3.0


@pytest.fixture(name="refusing_url")
def _refusing_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: every connection is refused at once."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


def test_sigterm_during_connection_retries_exits_0_promptly(
    refusing_url: str, tmp_path: Path
) -> None:
    """MASTER's connection is refused and retried with backoff; SIGTERM then exits 0 in < 3 s."""
    daemon = start_daemon(
        cwd=tmp_path,
        env={
            "KRAKEN_API_URL": refusing_url,
            "COPYTRADER_CONFIG": str(SHIPPED_CONFIG),
            "COPYTRADER_DATA_DIR": str(tmp_path / "data"),
            "KRAKEN_MASTER_API_KEY": "stop-during-connect-key",
            "KRAKEN_MASTER_API_SECRET": new_secret(),
        },
    )
    try:
        daemon.wait_for(
            lambda events: "broker.retry" in event_names(events),
            timeout_s=30,
            what="broker.retry while connecting MASTER",
        )
        code, took = daemon.signal_and_wait(signal.SIGTERM, timeout_s=15)
    finally:
        daemon.kill()
    events = daemon.events()
    assert code == 0, "\n".join(daemon.lines[-30:])
    assert took < EXIT_WITHIN_S, f"took {took:.1f} s to exit"
    master_events = [
        e for e in events if e.get("event", "").startswith("account.") and e["account"] == "MASTER"
    ]
    assert len(master_events) == 1, master_events  # one state, one event, even when stopped
    assert master_events[0]["reason"] == "stopped"
    assert "startup.summary" in event_names(events)
