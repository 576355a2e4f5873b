"""Unchanged krakenex 2.2.2 and ccxt's kraken class against the simulator, checked against the
engine's own state (GET /sim/state)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import krakenex
import pytest

from tests.sim.conftest import Key, SimAccounts
from tests.simproc import SimProcess

TIMEOUT_S = 10


def _state_of(sim: SimProcess, account: str) -> dict[str, Any]:
    state: dict[str, Any] = sim.control("state")["accounts"][account]
    return state


def _ok(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


@pytest.fixture(scope="module")
def kx(sim_process: SimProcess, keys: SimAccounts) -> Iterator[krakenex.API]:
    api = krakenex.API(keys.krakenex.key, keys.krakenex.secret)
    api.uri = sim_process.url
    yield api
    api.close()


def _ccxt(sim: SimProcess, key: Key) -> Any:
    exchange = ccxt.kraken(
        {"apiKey": key.key, "secret": key.secret, "enableRateLimit": False, "timeout": 10_000}
    )
    exchange.urls["api"]["public"] = sim.url
    exchange.urls["api"]["private"] = sim.url
    return exchange


@pytest.fixture(scope="module")
def cx(sim_process: SimProcess, keys: SimAccounts) -> Any:
    return _ccxt(sim_process, keys.ccxt)


# --- krakenex ----------------------------------------------------------------------------------


def test_krakenex_public_endpoints_agree_with_the_engine(kx: krakenex.API, sim: SimProcess) -> None:
    """krakenex reads Time, Assets, AssetPairs and Ticker; the ticker shows the engine's price."""
    assert _ok(kx.query_public("Time", timeout=TIMEOUT_S))["unixtime"] > 1_600_000_000
    assets = _ok(kx.query_public("Assets", timeout=TIMEOUT_S))
    assert assets["XXBT"]["altname"] == "XBT"
    pairs = _ok(kx.query_public("AssetPairs", {"pair": "XBTUSD"}, timeout=TIMEOUT_S))
    assert list(pairs) == ["XXBTZUSD"]
    ticker = _ok(kx.query_public("Ticker", {"pair": "XBTUSD"}, timeout=TIMEOUT_S))
    price = sim.control("state")["prices"]["XXBTZUSD"]
    assert Decimal(ticker["XXBTZUSD"]["c"][0]) == Decimal(price)


def test_krakenex_balances_orders_and_cancel_agree_with_the_engine(
    kx: krakenex.API, sim: SimProcess, keys: SimAccounts
) -> None:
    """Balance, AddOrder (limit and market with cl_ord_id), Open/Closed/QueryOrders and CancelOrder
    through krakenex give the same values as the engine's state."""
    account = keys.krakenex.account
    balances = _ok(kx.query_private("Balance", timeout=TIMEOUT_S))
    assert balances == _state_of(sim, account)["balances"]

    limit = _ok(
        kx.query_private(
            "AddOrder",
            {
                "pair": "XBTUSD",
                "type": "buy",
                "ordertype": "limit",
                "price": "50000",
                "volume": "0.01",
                "cl_ord_id": "kx-limit-1",
            },
            timeout=TIMEOUT_S,
        )
    )
    assert limit["descr"]["order"] == "buy 0.01000000 XBTUSD @ limit 50000.0"
    (limit_txid,) = limit["txid"]
    state = _state_of(sim, account)
    assert list(state["open_orders"]) == [limit_txid]
    assert Decimal(state["hold_trade"]["ZUSD"]) > Decimal("500")

    opened = _ok(kx.query_private("OpenOrders", timeout=TIMEOUT_S))["open"]
    assert opened == state["open_orders"]
    assert opened[limit_txid]["cl_ord_id"] == "kx-limit-1"

    market = _ok(
        kx.query_private(
            "AddOrder",
            {
                "pair": "XXBTZUSD",
                "type": "sell",
                "ordertype": "market",
                "volume": "0.02",
                "cl_ord_id": "kx-market-1",
            },
            timeout=TIMEOUT_S,
        )
    )
    (market_txid,) = market["txid"]
    closed = _ok(kx.query_private("ClosedOrders", timeout=TIMEOUT_S))
    assert closed["count"] == 1
    assert closed["closed"][market_txid]["status"] == "closed"
    assert closed["closed"][market_txid]["cl_ord_id"] == "kx-market-1"
    assert closed["closed"][market_txid]["vol_exec"] == "0.02000000"
    after_sell = _ok(kx.query_private("Balance", timeout=TIMEOUT_S))
    assert after_sell == _state_of(sim, account)["balances"]
    assert Decimal(after_sell["XXBT"]) == Decimal(balances["XXBT"]) - Decimal("0.02")

    queried = _ok(
        kx.query_private("QueryOrders", {"txid": f"{limit_txid},{market_txid}"}, timeout=10)
    )
    assert queried[limit_txid] == opened[limit_txid]
    assert queried[market_txid] == closed["closed"][market_txid]

    canceled = _ok(kx.query_private("CancelOrder", {"cl_ord_id": "kx-limit-1"}, timeout=TIMEOUT_S))
    assert canceled["count"] == 1
    state = _state_of(sim, account)
    assert state["open_orders"] == {}
    assert Decimal(state["hold_trade"].get("ZUSD", "0")) == 0
    final = _ok(kx.query_private("QueryOrders", {"txid": limit_txid}, timeout=TIMEOUT_S))
    assert final[limit_txid]["status"] == "canceled"


# --- ccxt --------------------------------------------------------------------------------------


def test_ccxt_load_markets_follows_asset_pairs(cx: Any, sim: SimProcess) -> None:
    """ccxt builds BTC/USD etc. from Assets + AssetPairs, with the pairs' precision and limits."""
    markets = cx.load_markets()
    assert {"BTC/USD", "ETH/USD", "ETH/BTC", "BTC/EUR"} <= set(markets)
    pairs = cx.publicGetAssetPairs()["result"]
    for symbol in ("BTC/USD", "ETH/BTC"):
        market = markets[symbol]
        pair = pairs[market["id"]]
        assert market["altname"] == pair["altname"]
        assert Decimal(str(market["precision"]["amount"])) == Decimal(1).scaleb(
            -pair["lot_decimals"]
        )
        assert Decimal(str(market["precision"]["price"])) == Decimal(pair["tick_size"])
        assert Decimal(str(market["limits"]["amount"]["min"])) == Decimal(pair["ordermin"])
        assert Decimal(str(market["limits"]["cost"]["min"])) == Decimal(pair["costmin"])
    assert markets["BTC/USD"]["id"] == "XXBTZUSD"
    assert markets["BTC/USD"]["base"] == "BTC"


def test_ccxt_balance_and_order_lifecycle_agree_with_the_engine(
    cx: Any, sim: SimProcess, keys: SimAccounts
) -> None:
    """fetch_balance (BalanceEx), create_order with clientOrderId, fetch open/closed orders,
    fetch_order and cancel_order through ccxt agree with the engine's state."""
    account = keys.ccxt.account
    cx.load_markets()
    balance = cx.fetch_balance()
    state = _state_of(sim, account)
    assert Decimal(str(balance["total"]["USD"])) == Decimal(state["balances"]["ZUSD"])
    assert Decimal(str(balance["total"]["BTC"])) == Decimal(state["balances"]["XXBT"])

    limit = cx.create_order("ETH/USD", "limit", "buy", 0.5, 2500, {"clientOrderId": "cx-limit-1"})
    market = cx.create_order("BTC/USD", "market", "buy", 0.01, None, {"clientOrderId": "cx-mkt-1"})
    state = _state_of(sim, account)
    assert list(state["open_orders"]) == [limit["id"]]
    assert state["open_orders"][limit["id"]]["cl_ord_id"] == "cx-limit-1"

    balance = cx.fetch_balance()
    assert Decimal(str(balance["used"]["USD"])) == Decimal(state["hold_trade"]["ZUSD"])
    assert Decimal(str(balance["total"]["BTC"])) == Decimal(state["balances"]["XXBT"])

    open_orders = cx.fetch_open_orders()
    assert [order["id"] for order in open_orders] == [limit["id"]]
    assert open_orders[0]["clientOrderId"] == "cx-limit-1"
    assert (open_orders[0]["symbol"], open_orders[0]["price"]) == ("ETH/USD", 2500)
    assert open_orders[0]["amount"] == 0.5

    closed = cx.fetch_closed_orders()
    assert [order["id"] for order in closed] == [market["id"]]
    assert closed[0]["status"] == "closed"
    assert closed[0]["clientOrderId"] == "cx-mkt-1"
    assert closed[0]["filled"] == 0.01

    fetched = cx.fetch_order(limit["id"])
    assert (fetched["status"], fetched["clientOrderId"]) == ("open", "cx-limit-1")
    with pytest.raises(ccxt.OrderNotFound):
        cx.fetch_order("OAAAAA-AAAAA-AAAAAA")

    cx.cancel_order(None, "ETH/USD", {"clientOrderId": "cx-limit-1"})
    assert _state_of(sim, account)["open_orders"] == {}
    assert cx.fetch_order(limit["id"])["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        cx.cancel_order(limit["id"])
