"""Many threads, several accounts, several processes, kill -9: never an `EAPI:Invalid nonce`."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

from benchmarks.broker_load import start_worker

from copytrader.domain import OrderType, Side
from copytrader.errors import KrakenError
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import OrderRequest
from tests import secretscan
from tests.broker.conftest import (
    SimAccount,
    accounts_toml,
    make_broker,
    rest_limits_off,
    sim_counters,
)
from tests.simproc import SimProcess, running_sim

THREADS_PER_ACCOUNT = 8
CALLS_PER_THREAD = 150
DEADLINE_S = 60.0


def hammer(broker: KrakenBroker, calls: int, errors: Counter[str], lock: threading.Lock) -> None:
    """A mix of reads and now and then an order and its cancel, as a copier would make."""
    for n in range(calls):
        try:
            if n % 50 == 49:
                placed = broker.add_order(
                    OrderRequest(
                        pair="XBTUSD",
                        side=Side.BUY,
                        order_type=OrderType.LIMIT,
                        volume=Decimal("0.001"),
                        price=Decimal("40000"),
                    )
                )
                broker.cancel_order(txid=placed.txids[0])
            elif n % 3 == 0:
                broker.open_orders()
            elif n % 3 == 1:
                broker.balances()
            else:
                broker.trade_balance()
        except KrakenError as exc:
            with lock:
                errors[f"{type(exc).__name__}: {exc}"] += 1


def test_three_accounts_many_threads_never_get_invalid_nonce(tmp_path: Path) -> None:
    """3 accounts x 8 threads x 150 calls, all at once over HTTP: zero invalid nonces."""
    accounts = [
        SimAccount(name="master", account_id="MASTER"),
        SimAccount(name="daivon", account_id="USER:daivon_frazier"),
        SimAccount(name="tania", account_id="USER:tania_gilbert"),
    ]
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    with running_sim(accounts_toml(*accounts)) as sim, rest_limits_off(sim):
        brokers = [make_broker(a, sim, tmp_path / "data") for a in accounts]
        threads = [
            threading.Thread(target=hammer, args=(broker, CALLS_PER_THREAD, errors, lock))
            for broker in brokers
            for _ in range(THREADS_PER_ACCOUNT)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S)
        counters = sim_counters(sim)
        keys = sim.control("state")["keys"]
    assert errors == Counter()
    assert counters["invalid_nonce"] == 0
    assert "EAPI:Invalid nonce" not in counters["by_error"]
    private_calls = sum(counters["by_method"].values())
    assert private_calls >= len(accounts) * THREADS_PER_ACCOUNT * CALLS_PER_THREAD
    files = sorted(p.name for p in (tmp_path / "data").glob("kraken_nonce_*.txt"))
    assert files == [
        "kraken_nonce_master.txt",
        "kraken_nonce_user_daivon_frazier.txt",
        "kraken_nonce_user_tania_gilbert.txt",
    ]
    for account, broker in zip(accounts, brokers, strict=True):
        assert keys[account.key]["nonce"] == broker.nonce_store.peek()


def finish(worker: subprocess.Popen[str]) -> str:
    if worker.poll() is None:
        worker.kill()
    output, _ = worker.communicate(timeout=10)
    secretscan.record_output("broker worker", output)
    return output


def test_two_processes_sharing_an_account_never_get_invalid_nonce(
    master: SimAccount, tmp_path: Path
) -> None:
    """Two processes on one key and one data folder (daemon + `copytrader check`): no rejection."""
    with running_sim(accounts_toml(master)) as sim, rest_limits_off(sim):
        workers = [start_worker(sim, master, tmp_path / "data", 150, 3) for _ in range(2)]
        for worker in workers:
            worker.wait(DEADLINE_S)
        outputs = [finish(worker) for worker in workers]
        counters = sim_counters(sim)
    reports = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    assert [r["errors"] for r in reports] == [{}, {}]
    assert sum(r["calls"] for r in reports) == 900
    assert counters["invalid_nonce"] == 0


def wait_for_calls(sim: SimProcess, minimum: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while sim_counters(sim)["requests"] < minimum:
        assert time.monotonic() < deadline, "workers stopped making calls"
        time.sleep(0.02)


def test_kill_9_mid_stream_then_restart_never_gets_invalid_nonce(
    master: SimAccount, tmp_path: Path
) -> None:
    """SIGKILL a calling process at random moments, restart it: the next calls are accepted."""
    rng = random.Random(99)
    data_dir = tmp_path / "data"
    with running_sim(accounts_toml(master)) as sim, rest_limits_off(sim):
        workers = [start_worker(sim, master, data_dir, -1, 2) for _ in range(2)]
        expected = 0
        try:
            for _ in range(5):
                expected = sim_counters(sim)["requests"] + rng.randint(30, 150)
                wait_for_calls(sim, expected)
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                finish(workers[victim])
                workers[victim] = start_worker(sim, master, data_dir, -1, 2)
            expected = sim_counters(sim)["requests"] + 100
            wait_for_calls(sim, expected)
        finally:
            for worker in workers:
                finish(worker)
        counters = sim_counters(sim)
    assert counters["invalid_nonce"] == 0
    assert counters["requests"] >= expected
