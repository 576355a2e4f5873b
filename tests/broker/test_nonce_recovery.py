"""The exchange remembers a higher nonce than our file: recover by jumping, never into a lockout."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from copytrader.errors import AccountUnusableError, KrakenError
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.retry import NONCE_JUMPS_MS
from copytrader.nonce.store import wall_clock_ms
from tests.broker.conftest import SimAccount, make_broker, sim_counters
from tests.simproc import SimProcess

MINUTE_MS = 60_000


def key_state(sim: SimProcess, account: SimAccount) -> dict[str, object]:
    state: dict[str, object] = sim.control("state")["keys"][account.key]
    return state


def remove_nonce_files(data_dir: Path) -> None:
    for path in data_dir.glob("kraken_nonce_*"):
        path.unlink()


def test_deleted_file_recovers_by_jumping(
    broker: KrakenBroker, master: SimAccount, sim: SimProcess, tmp_path: Path
) -> None:
    """With the file gone and Kraken 5 minutes ahead, two jumps recover; the key is not locked."""
    broker.balances()
    sim.control("nonce", {"key": master.key, "nonce": wall_clock_ms() + 5 * MINUTE_MS})
    remove_nonce_files(tmp_path / "data")
    with capture_logs() as logs:
        broker.balances()
    jumps = [e for e in logs if e["event"] == "broker.nonce_jump"]
    assert [e["step_ms"] for e in jumps] == list(NONCE_JUMPS_MS[:2])
    assert all(e["account"] == "MASTER" for e in jumps)
    assert sim_counters(sim)["invalid_nonce"] == 2
    assert key_state(sim, master)["locked_out"] is False
    broker.balances()  # and the next call needs no jump
    assert sim_counters(sim)["invalid_nonce"] == 2


def test_rolled_back_file_recovers_by_jumping(
    master: SimAccount, sim: SimProcess, tmp_path: Path
) -> None:
    """An old copy of the file restored while Kraken saw nonces an hour ahead: recovered."""
    data_dir = tmp_path / "data"
    broker = make_broker(master, sim, data_dir)
    broker.balances()
    backup = tmp_path / "backup.txt"
    shutil.copy(broker.nonce_store.path, backup)
    sim.control("nonce", {"key": master.key, "nonce": wall_clock_ms() + 60 * MINUTE_MS})
    broker.balances()  # jumps past the exchange's mark: 10 s, 10 min, 10 h
    assert sim_counters(sim)["invalid_nonce"] == 3
    shutil.copy(backup, broker.nonce_store.path)  # the rollback
    (broker.nonce_store.path.with_name(broker.nonce_store.path.name + ".ceiling")).unlink()
    sim.control("clock", {"advance_s": 120})  # later on: the earlier failures have aged out
    restarted = make_broker(master, sim, data_dir)
    restarted.balances()
    assert sim_counters(sim)["invalid_nonce"] == 6
    assert key_state(sim, master)["locked_out"] is False


def test_unreachable_nonce_stops_before_lockout_and_rests(
    broker: KrakenBroker, master: SimAccount, sim: SimProcess
) -> None:
    """A key used by a client with 1000x larger nonces: a clear error after 4 tries, no lockout."""
    sim.control("nonce", {"key": master.key, "nonce": wall_clock_ms() * 100_000})
    with pytest.raises(AccountUnusableError, match="create a new API key") as caught:
        broker.balances()
    assert caught.value.account == "MASTER"
    assert sim_counters(sim)["invalid_nonce"] == len(NONCE_JUMPS_MS) + 1
    assert key_state(sim, master)["locked_out"] is False
    requests_before = sim_counters(sim)["requests"]
    with pytest.raises(AccountUnusableError, match="resting"):
        broker.open_orders()
    assert sim_counters(sim)["requests"] == requests_before  # failed fast, nothing sent
    assert broker.cooldown_remaining_s() > 0


def test_many_threads_hitting_a_high_mark_share_the_jumps(
    broker: KrakenBroker, master: SimAccount, sim: SimProcess
) -> None:
    """8 threads meeting a 5-minute-ahead mark at once cause few rejections and no lockout."""
    sim.control("nonce", {"key": master.key, "nonce": wall_clock_ms() + 5 * MINUTE_MS})
    failures: list[KrakenError] = []

    def call() -> None:
        try:
            broker.balances()
        except KrakenError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert sim_counters(sim)["invalid_nonce"] <= 2
    assert key_state(sim, master)["locked_out"] is False


def test_lockout_makes_the_account_rest(
    broker: KrakenBroker, master: SimAccount, sim: SimProcess, tmp_path: Path
) -> None:
    """After EGeneral:Temporary lockout the broker stops sending instead of extending it."""
    wrong = SimAccount(name="master", account_id="MASTER", key=master.key)  # right key, bad secret
    bad = make_broker(wrong, sim, tmp_path / "other")
    with pytest.raises(AccountUnusableError, match="EAPI:Invalid signature"):
        bad.balances()
    requests_before = sim_counters(sim)["requests"]
    with pytest.raises(AccountUnusableError, match="resting"):
        bad.balances()
    assert sim_counters(sim)["requests"] == requests_before
    started = time.monotonic()
    assert 0 < bad.cooldown_remaining_s() <= 300
    assert time.monotonic() - started < 1
    broker.balances()  # the good broker of the same key is not affected
