"""Helpers for broker tests: simulated accounts with fresh keys, the simulator, brokers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from benchmarks import broker_load
from benchmarks.broker_load import (
    ALL_PERMISSIONS,
    LoadAccount,
    accounts_toml,
    load_broker,
    rest_limits_off,
)

from copytrader.domain import RateTier
from copytrader.kraken.broker import KrakenBroker
from tests import secretscan
from tests.simproc import SimProcess, new_secret, running_sim

__all__ = [
    "ALL_PERMISSIONS",
    "SimAccount",
    "accounts_toml",
    "make_broker",
    "new_key",
    "rest_limits_off",
    "sim_counters",
]


def new_key() -> str:
    """A random API key shaped like Kraken's, registered for the suite-wide secret scan."""
    return secretscan.register_secret(broker_load.new_key())


@dataclass(frozen=True)
class SimAccount(LoadAccount):
    """One simulated account with one fresh key, its key and secret known to the secret scan."""

    key: str = field(default_factory=new_key)
    secret: str = field(default_factory=new_secret)


def make_broker(
    account: SimAccount, sim: SimProcess, data_dir: Path, **kwargs: Any
) -> KrakenBroker:
    return load_broker(account, sim.url, data_dir, **{"tier": RateTier(account.tier), **kwargs})


def sim_counters(sim: SimProcess) -> dict[str, Any]:
    counters: dict[str, Any] = sim.control("state")["counters"]
    return counters


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
