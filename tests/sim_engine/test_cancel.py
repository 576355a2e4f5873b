"""CancelOrder and CancelAll, and the matching-engine rate counter they share with AddOrder."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kraken_sim.engine import Engine
from kraken_sim.errors import ORDER_RATE_LIMIT, ORDERS_LIMIT, UNKNOWN_ORDER, invalid_arguments
from tests.sim_engine.conftest import Clock, add, error_of, order

REST = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000",
        "volume": "0.001"}  # fmt: skip
BUY = {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.0001"}


def _cancel(engine: Engine, account: str = "alice", **params: str) -> object:
    return engine.private(account, "CancelOrder", params)


def test_cancel_by_txid(engine: Engine) -> None:
    """Cancelling by txid answers count 1 and closes it as canceled, "User requested"."""
    txid = add(engine, **REST)
    assert _cancel(engine, txid=txid) == {"count": 1}
    found = order(engine, txid)
    assert (found["status"], found["reason"]) == ("canceled", "User requested")
    assert error_of(lambda: _cancel(engine, txid=txid)) == UNKNOWN_ORDER


def test_cancel_by_userref_cancels_them_all(engine: Engine) -> None:
    """An integer txid is a userref: every open order carrying it is cancelled."""
    a, b = add(engine, **REST, userref="77"), add(engine, **REST, userref="77")
    other = add(engine, **REST, userref="78")
    assert _cancel(engine, txid="77") == {"count": 2}
    assert [order(engine, t)["status"] for t in (a, b, other)] == ["canceled", "canceled", "open"]
    assert error_of(lambda: _cancel(engine, txid="77")) == UNKNOWN_ORDER


def test_cancel_by_cl_ord_id(engine: Engine) -> None:
    """cl_ord_id names the open order that carries it."""
    txid = add(engine, **REST, cl_ord_id="copy-9")
    assert _cancel(engine, cl_ord_id="copy-9") == {"count": 1}
    assert order(engine, txid)["status"] == "canceled"
    assert error_of(lambda: _cancel(engine, cl_ord_id="copy-9")) == UNKNOWN_ORDER


def test_cancel_argument_checks(engine: Engine) -> None:
    """A cancel needs a txid or a cl_ord_id, not both; other accounts' orders are unknown."""
    txid = add(engine, **REST, cl_ord_id="c")
    assert error_of(lambda: _cancel(engine)) == invalid_arguments("txid")
    assert error_of(lambda: _cancel(engine, txid=txid, cl_ord_id="c")) == (
        invalid_arguments("cl_ord_id")
    )
    assert error_of(lambda: _cancel(engine, "bob", txid=txid)) == UNKNOWN_ORDER
    assert error_of(lambda: _cancel(engine, txid="ONOPE1-AAAAA-AAAAAA")) == UNKNOWN_ORDER


def test_cancel_all(engine: Engine) -> None:
    """CancelAll cancels every open order of the account and counts them."""
    for _ in range(3):
        add(engine, **REST)
    add(engine, "bob", **REST)
    assert engine.private("alice", "CancelAll", {}) == {"count": 3}
    assert engine.private("alice", "CancelAll", {}) == {"count": 0}
    assert len(engine.private("bob", "OpenOrders", {})["open"]) == 1


@pytest.fixture
def starter(clock: Clock) -> Engine:
    engine = Engine(seed=5, clock=clock)
    engine.add_account("s", balances={"ZUSD": Decimal("1000000")}, tier="starter")
    return engine


def test_add_order_rate_limit_per_pair_with_decay(starter: Engine, clock: Clock) -> None:
    """Starter: 60 AddOrders on one pair pass, the 61st is refused; other pairs are unaffected;
    one second of decay (1/s) lets the next one through."""
    for _ in range(60):
        add(starter, "s", **BUY)
    assert error_of(lambda: add(starter, "s", **BUY)) == ORDER_RATE_LIMIT
    add(starter, "s", pair="ETHUSD", type="buy", ordertype="market", volume="0.01")
    clock.advance(1)
    add(starter, "s", **BUY)
    assert error_of(lambda: add(starter, "s", **BUY)) == ORDER_RATE_LIMIT


def test_cancelling_a_young_order_costs_more(starter: Engine, clock: Clock) -> None:
    """Cancelling an order under 5 s old costs 8; the counter refuses it when that is too much."""
    for _ in range(55):
        add(starter, "s", **BUY)
    young = add(starter, "s", **REST)  # counter 56
    assert error_of(lambda: _cancel(starter, "s", txid=young)) == ORDER_RATE_LIMIT
    clock.advance(4)  # counter 52; 52 + 8 = 60 is still allowed
    assert _cancel(starter, "s", txid=young) == {"count": 1}
    assert error_of(lambda: add(starter, "s", **BUY)) == ORDER_RATE_LIMIT


def test_cancelling_an_old_order_is_free(starter: Engine, clock: Clock) -> None:
    """After 300 s a cancel adds nothing to the counter."""
    old = add(starter, "s", **REST)
    clock.advance(300)
    for _ in range(60):
        add(starter, "s", **BUY)
    assert _cancel(starter, "s", txid=old) == {"count": 1}


def test_open_orders_limit_per_pair(starter: Engine, clock: Clock) -> None:
    """A starter account may have 60 open orders on a pair; the 61st is refused."""
    for _ in range(60):
        add(starter, "s", **REST)
    clock.advance(5)
    assert error_of(lambda: add(starter, "s", **REST)) == ORDERS_LIMIT
    add(starter, "s", pair="ETHUSD", type="buy", ordertype="limit", price="2000", volume="0.01")
