"""Typed reads against the simulator: balances, equity, pairs, ticker, orders, token, timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from copytrader.domain import OrderStatus, OrderType, Side
from copytrader.errors import OrderRejectedError, RetryLaterError
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import AssetBalance, OrderRequest, PairInfo
from tests.broker.conftest import SimAccount, accounts_toml, make_broker, sim_counters
from tests.simproc import SimProcess, running_sim

READ_ONLY = ("query_funds", "query_orders")


@pytest.fixture(name="shared_sim", scope="module")
def _shared_sim() -> Iterator[tuple[SimProcess, SimAccount, SimAccount]]:
    master = SimAccount(name="master", account_id="MASTER")
    reader = SimAccount(name="reader", account_id="USER:reader", permissions=READ_ONLY)
    with running_sim(accounts_toml(master, reader)) as sim:
        yield sim, master, reader


def test_balances_are_decimals(broker: KrakenBroker) -> None:
    """Balance and BalanceEx come back as Decimal amounts per asset."""
    assert broker.balances() == {"ZUSD": Decimal("100000"), "XXBT": Decimal("5")}
    usd = broker.balances_ex()["ZUSD"]
    assert usd == AssetBalance(Decimal("100000"), Decimal(0), Decimal("100000"))
    assert isinstance(usd.available, Decimal)


def test_held_funds_reduce_available(broker: KrakenBroker) -> None:
    """An open buy order holds quote funds: BalanceEx shows hold_trade and less available."""
    broker.add_order(
        OrderRequest(
            pair="XBTUSD",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            volume=Decimal("0.1"),
            price=Decimal("50000"),
        )
    )
    usd = broker.balances_ex()["ZUSD"]
    assert usd.hold_trade > 0
    assert usd.available == usd.balance - usd.hold_trade


def test_trade_balance_equity(broker: KrakenBroker) -> None:
    """TradeBalance's equity is 100000 USD + 5 BTC at 60000."""
    balance = broker.trade_balance()
    assert balance.asset == "ZUSD"
    assert balance.equity == Decimal("400000")


def test_pairs_are_typed_cached_and_found_by_any_name(
    shared_sim: tuple[SimProcess, SimAccount, SimAccount], tmp_path: Path
) -> None:
    """AssetPairs is fetched once per base URL and a pair is found by id, altname or wsname."""
    sim, master, reader = shared_sim
    first = make_broker(master, sim, tmp_path)
    second = make_broker(reader, sim, tmp_path)
    before = sim_counters(sim)["by_method"].get("AssetPairs", 0)
    pairs = first.asset_pairs()
    by_id = first.pair("XXBTZUSD")
    assert by_id == second.pair("XBTUSD") == first.pair("xbt/usd")
    assert sim_counters(sim)["by_method"]["AssetPairs"] - before <= 1
    assert isinstance(pairs["XXBTZUSD"], PairInfo)
    assert by_id.altname == "XBTUSD"
    assert by_id.tick_size == Decimal("0.1")
    assert by_id.ordermin > 0
    assert 0 < by_id.fee_maker <= by_id.fee_taker < 1
    with pytest.raises(OrderRejectedError, match="unknown pair"):
        first.pair("NOPE")


def test_ticker_is_decimal(
    shared_sim: tuple[SimProcess, SimAccount, SimAccount], tmp_path: Path
) -> None:
    """Ticker gives last/bid/ask as Decimal for a pair named any way."""
    sim, master, _ = shared_sim
    ticker = make_broker(master, sim, tmp_path).ticker("XBT/USD")
    assert ticker.pair_id == "XXBTZUSD"
    assert ticker.last == Decimal("60000")
    assert ticker.bid <= ticker.last <= ticker.ask


def test_orders_open_closed_and_queried(broker: KrakenBroker, sim: SimProcess) -> None:
    """An order shows in OpenOrders, then (cancelled) in ClosedOrders and QueryOrders, typed."""
    placed = broker.add_order(
        OrderRequest(
            pair="XBTUSD",
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            volume=Decimal("0.25"),
            price=Decimal("70000"),
            cl_ord_id="read-1",
        )
    )
    (txid,) = placed.txids
    order = broker.open_orders()[txid]
    assert order.status is OrderStatus.OPEN
    assert (order.side, order.order_type) == (Side.SELL, OrderType.LIMIT)
    assert (order.volume, order.price) == (Decimal("0.25"), Decimal("70000"))
    assert order.pair_altname == "XBTUSD"
    assert order.cl_ord_id == "read-1"
    assert broker.cancel_order(txid=txid) == 1
    page = broker.closed_orders()
    assert page.count == 1
    assert page.orders[txid].status is OrderStatus.CANCELLED
    assert page.orders[txid].closetm is not None
    assert broker.query_orders([txid])[txid].status is OrderStatus.CANCELLED
    assert broker.find_order_by_cl_ord_id("read-1") == page.orders[txid]
    assert broker.find_order_by_cl_ord_id("never-sent") is None


def test_filled_market_order_reports_fill(broker: KrakenBroker, sim: SimProcess) -> None:
    """A market buy closes at once with volume_exec, average price, cost and fee as Decimal."""
    placed = broker.add_order(
        OrderRequest(
            pair="XBTUSD", side=Side.BUY, order_type=OrderType.MARKET, volume=Decimal("0.01")
        )
    )
    order = broker.query_orders(placed.txids)[placed.txids[0]]
    assert order.status is OrderStatus.CLOSED
    assert order.volume_exec == Decimal("0.01")
    assert order.avg_price > 0
    assert order.cost == pytest.approx(order.avg_price * Decimal("0.01"))
    assert order.fee > 0


def test_websocket_token(broker: KrakenBroker) -> None:
    """GetWebSocketsToken returns a non-empty token string."""
    token = broker.websocket_token()
    assert isinstance(token, str)
    assert len(token) > 10


def test_read_times_out_then_succeeds(master: SimAccount, sim: SimProcess, tmp_path: Path) -> None:
    """A hanging read is cut by the call timeout and retried; persistent hangs give RetryLater."""
    quick = make_broker(master, sim, tmp_path / "data", timeout_s=0.3)
    sim.control("fault", {"endpoint": "Balance", "kind": "hang", "count": 1})
    started = time.monotonic()
    assert quick.balances()["ZUSD"] == Decimal("100000")
    assert 0.3 <= time.monotonic() - started < 3
    sim.control("fault", {"endpoint": "Balance", "kind": "hang", "count": -1})
    started = time.monotonic()
    with pytest.raises(RetryLaterError, match=r"no reply within 0.3 s"):
        quick.balances()
    assert time.monotonic() - started < 5
    sim.control("faults/clear", {})
