"""Load on the broker against the simulator: accounts, the simulator's limits, a worker process.

Shared by `benchmarks/bench_broker.py` and the broker's concurrency tests (which register the
keys for their secret scan). The worker runs as its own process:

    BROKER_KEY=... BROKER_SECRET=... python benchmarks/broker_load.py URL DATA_DIR ACCOUNT \
        CALLS THREADS

Each of THREADS threads makes CALLS private calls (CALLS < 0: until killed), alternating
OpenOrders and Balance. The credentials come from the environment, not argv, so they never show
in a process list. At the end it prints one JSON line: {"calls": n, "errors": {"Class": count}}.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from copytrader.config.credentials import ApiCredentials
from copytrader.errors import KrakenError
from copytrader.kraken.broker import KrakenBroker
from kraken_sim.process import SimProcess, new_secret

WORKER = Path(__file__).resolve()
ALL_PERMISSIONS = ("query_funds", "query_orders", "create_orders", "cancel_orders", "websocket")
PRICES = {"XXBTZUSD": "60000", "XETHZUSD": "3000"}


def new_key() -> str:
    """A random API key shaped like Kraken's (56 base64 characters)."""
    return base64.b64encode(secrets.token_bytes(42)).decode()


@dataclass(frozen=True)
class LoadAccount:
    """One simulated account with one fresh key."""

    name: str
    account_id: str
    key: str = field(default_factory=new_key)
    secret: str = field(default_factory=new_secret)
    tier: str = "pro"
    permissions: tuple[str, ...] = ALL_PERMISSIONS
    balances: str = '{ ZUSD = "100000", XXBT = "5" }'

    @property
    def credentials(self) -> ApiCredentials:
        return ApiCredentials(self.key, self.secret)

    def toml(self) -> str:
        permissions = ", ".join(f'"{p}"' for p in self.permissions)
        return (
            "[[accounts]]\n"
            f'name = "{self.name}"\n'
            f'key = "{self.key}"\n'
            f'secret = "{self.secret}"\n'
            f'tier = "{self.tier}"\n'
            f"permissions = [{permissions}]\n"
            f"balances = {self.balances}\n"
        )


def accounts_toml(*accounts: LoadAccount, extra: str = "") -> str:
    """The simulator's accounts file for these accounts, with BTC and ETH prices."""
    prices = "[prices]\n" + "".join(f'{pair} = "{price}"\n' for pair, price in PRICES.items())
    return "\n".join(a.toml() for a in accounts) + "\n" + prices + extra


def load_broker(account: LoadAccount, url: str, data_dir: Path, **kwargs: Any) -> KrakenBroker:
    """A broker for load: no retry waits and no client-side REST counter unless asked."""
    options: dict[str, Any] = {
        "timeout_s": 5.0,
        "retry_waits": False,
        "client_rate_limit": False,
    }
    options.update(kwargs)
    return KrakenBroker(
        account.account_id, account.credentials, api_url=url, data_dir=data_dir, **options
    )


@contextlib.contextmanager
def rest_limits_off(sim: SimProcess) -> Iterator[None]:
    """The simulator stops counting calls against the keys' REST and order limits meanwhile.

    Load runs are about nonces and cost, with the broker's own counter off: a fast client would
    fill the exchange's counter (as it would on Kraken), and that is not what they measure.
    """
    sim.control("limits", {"rest": False, "orders": False})
    try:
        yield
    finally:
        sim.control("limits", {"rest": True, "orders": True})


def start_worker(
    sim: SimProcess, account: LoadAccount, data_dir: Path, calls: int, threads: int
) -> subprocess.Popen[str]:
    """A worker process (module docstring) making private calls as `account`."""
    env = {**os.environ, "BROKER_KEY": account.key, "BROKER_SECRET": account.secret}
    args = [sim.url, str(data_dir), account.account_id, str(calls), str(threads)]
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def run_threads(broker: KrakenBroker, calls: int, threads: int) -> dict[str, Any]:
    """`threads` threads making `calls` calls each (< 0: for ever); what they made and met."""
    errors: Counter[str] = Counter()
    done: Counter[str] = Counter()
    lock = threading.Lock()
    reads: tuple[Callable[[], object], ...] = (broker.open_orders, broker.balances)

    def work() -> None:
        made = 0
        while calls < 0 or made < calls:
            try:
                reads[made % 2]()
            except KrakenError as exc:
                with lock:
                    errors[type(exc).__name__] += 1
            made += 1
        with lock:
            done["calls"] += made

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"calls": done["calls"], "errors": dict(errors)}


def main(argv: list[str]) -> int:
    url, data_dir, account_id, calls, threads = argv
    account = LoadAccount(
        name=account_id,
        account_id=account_id,
        key=os.environ["BROKER_KEY"],
        secret=os.environ["BROKER_SECRET"],
    )
    broker = load_broker(account, url, Path(data_dir))
    print(json.dumps(run_threads(broker, int(calls), int(threads))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
