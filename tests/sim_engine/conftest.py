"""Fixtures for the engine tests: an engine on a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from kraken_sim.engine import Engine
from kraken_sim.errors import SimError

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    """A clock that only moves when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> Engine:
    """An engine with one funded account `alice` (intermediate) and `bob` (starter)."""
    engine = Engine(seed=7, clock=clock)
    engine.add_account(
        "alice",
        balances={"ZUSD": Decimal("100000"), "XXBT": Decimal("2"), "XETH": Decimal("10"),
                  "ZEUR": Decimal("5000")},
        tier="intermediate",
    )  # fmt: skip
    engine.add_account("bob", balances={"ZUSD": Decimal("1000")}, tier="starter")
    return engine


def error_of(call: Callable[[], Any]) -> str:
    """The Kraken error string `call` raises (fails the test if it raises none)."""
    with pytest.raises(SimError) as caught:
        call()
    return caught.value.error


def add(engine: Engine, account: str = "alice", **params: Any) -> str:
    """Place an order and return its txid."""
    result = engine.private(account, "AddOrder", params)
    txid: str = result["txid"][0]
    return txid


def order(engine: Engine, txid: str, account: str = "alice") -> dict[str, Any]:
    found: dict[str, Any] = engine.private(account, "QueryOrders", {"txid": txid, "trades": True})[
        txid
    ]
    return found
