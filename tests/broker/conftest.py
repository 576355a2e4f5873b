"""Helpers for broker tests: simulated accounts with fresh keys, the simulator, brokers."""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from copytrader.config.credentials import ApiCredentials
from copytrader.domain import RateTier
from copytrader.kraken.broker import KrakenBroker
from tests import secretscan
from tests.simproc import SimProcess, new_secret, running_sim

ALL_PERMISSIONS = ("query_funds", "query_orders", "create_orders", "cancel_orders", "websocket")


def new_key() -> str:
    """A random API key shaped like Kraken's (56 base64 chars), registered for the secret scan."""
    return secretscan.register_secret(base64.b64encode(secrets.token_bytes(42)).decode())


@dataclass(frozen=True)
class SimAccount:
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


def accounts_toml(*accounts: SimAccount, extra: str = "") -> str:
    prices = '[prices]\nXXBTZUSD = "60000"\nXETHZUSD = "3000"\n'
    return "\n".join(a.toml() for a in accounts) + "\n" + prices + extra


def make_broker(
    account: SimAccount, sim: SimProcess, data_dir: Path, **kwargs: Any
) -> KrakenBroker:
    options: dict[str, Any] = {
        "tier": RateTier(account.tier),
        "timeout_s": 5.0,
        "retry_waits": False,
        "client_rate_limit": False,
    }
    options.update(kwargs)
    return KrakenBroker(
        account.account_id, account.credentials, api_url=sim.url, data_dir=data_dir, **options
    )


def sim_counters(sim: SimProcess) -> dict[str, Any]:
    counters: dict[str, Any] = sim.control("state")["counters"]
    return counters


@contextlib.contextmanager
def rest_limits_off(sim: SimProcess) -> Iterator[None]:
    """The simulator stops counting calls against the keys' REST and order limits meanwhile.

    The stress tests are about nonces, with the broker's own counter off: a fast client would
    fill the exchange's counter (as it would on Kraken), and that is not what they test.
    """
    sim.control("limits", {"rest": False, "orders": False})
    try:
        yield
    finally:
        sim.control("limits", {"rest": True, "orders": True})


@pytest.fixture(name="master")
def _master() -> SimAccount:
    return SimAccount(name="master", account_id="MASTER")


@pytest.fixture(name="sim")
def _sim(master: SimAccount) -> Iterator[SimProcess]:
    with running_sim(accounts_toml(master)) as sim:
        yield sim


@pytest.fixture(name="broker")
def _broker(master: SimAccount, sim: SimProcess, tmp_path: Path) -> Iterator[KrakenBroker]:
    broker = make_broker(master, sim, tmp_path / "data")
    yield broker
    broker.close()
