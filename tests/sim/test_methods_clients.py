"""The account methods over HTTP with unchanged ccxt and krakenex, on a simulator of their own:
edit_order (AmendOrder), create_orders (AddOrderBatch), cancel_orders (CancelOrderBatch),
cancel_all_orders_after, fetch_ledger, fetch_my_trades, fetch_trading_fee; krakenex EditOrder;
GetApiKeyInfo; an unknown method refused before authentication; the dead-man switch in process."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import krakenex
import pytest

from kraken_sim.clock import SimClock
from kraken_sim.inprocess import InProcessExchange
from tests.sim.kraken_http import RawClient
from tests.simproc import SimProcess, new_secret, running_sim

TIMEOUT_S = 10
CX_SECRET, KX_SECRET, VIEW_SECRET, MOVER_SECRET = (new_secret() for _ in range(4))
ACCOUNTS = f"""
[[accounts]]
name = "cx"
key = "cx-key"
secret = "{CX_SECRET}"
tier = "pro"
balances = {{ ZUSD = "100000", XXBT = "2" }}

[[accounts.keys]]
key = "cx-view"
secret = "{VIEW_SECRET}"
permissions = ["query_funds", "query_orders"]

[[accounts]]
name = "kx"
key = "kx-key"
secret = "{KX_SECRET}"
tier = "pro"
balances = {{ ZUSD = "100000" }}

[[accounts]]
name = "mover"
key = "mover-key"
secret = "{MOVER_SECRET}"
permissions = ["query_funds", "query_orders", "create_orders", "cancel_orders", "withdraw"]
balances = {{ ZUSD = "100" }}
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with running_sim(ACCOUNTS) as process:
        yield process


@pytest.fixture(scope="module")
def cx(sim: SimProcess) -> Any:
    exchange = ccxt.kraken(
        {"apiKey": "cx-key", "secret": CX_SECRET, "enableRateLimit": False, "timeout": 10_000}
    )
    exchange.urls["api"]["public"] = sim.url
    exchange.urls["api"]["private"] = sim.url
    exchange.load_markets()
    return exchange


@pytest.fixture(scope="module")
def kx(sim: SimProcess) -> Iterator[krakenex.API]:
    api = krakenex.API("kx-key", KX_SECRET)
    api.uri = sim.url
    yield api
    api.close()


def _open_orders(sim: SimProcess, account: str) -> dict[str, Any]:
    found: dict[str, Any] = sim.control("state")["accounts"][account]["open_orders"]
    return found


def _ok(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


def test_ccxt_edit_order_amends_in_place(cx: Any, sim: SimProcess) -> None:
    placed = cx.create_order("BTC/USD", "limit", "buy", 0.01, 50000, {"clientOrderId": "cx-e1"})
    edited = cx.edit_order(placed["id"], "BTC/USD", "limit", "buy", 0.02, 49000)
    assert edited is not None
    engine_view = _open_orders(sim, "cx")[placed["id"]]  # same txid, still open
    assert (engine_view["vol"], engine_view["descr"]["price"]) == ("0.02000000", "49000.0")
    assert engine_view["cl_ord_id"] == "cx-e1"
    fetched = cx.fetch_order(placed["id"])
    assert (fetched["amount"], fetched["price"]) == (0.02, 49000.0)
    amends = _ok(RawClient(sim.url, "cx-key", CX_SECRET).call("OrderAmends", txid=placed["id"]))
    assert [row["amend_type"] for row in amends["amends"]] == ["original", "user"]
    cx.cancel_order(placed["id"])


def test_ccxt_create_orders_and_cancel_orders(cx: Any, sim: SimProcess) -> None:
    created = cx.create_orders([
        {"symbol": "BTC/USD", "type": "limit", "side": "buy", "amount": 0.01, "price": 40000},
        {"symbol": "BTC/USD", "type": "limit", "side": "buy", "amount": 0.01, "price": 41000},
        {"symbol": "BTC/USD", "type": "limit", "side": "sell", "amount": 0.01, "price": 90000},
    ])  # fmt: skip
    ids = [order["id"] for order in created]
    assert len(set(ids)) == 3
    assert set(ids) <= set(_open_orders(sim, "cx"))
    cx.cancel_orders(ids[:2])
    still_open = _open_orders(sim, "cx")
    assert ids[2] in still_open
    assert not set(ids[:2]) & set(still_open)
    cx.cancel_order(ids[2])


def test_ccxt_cancel_all_orders_after_fires_on_the_simulator_clock(
    cx: Any, sim: SimProcess
) -> None:
    order = cx.create_order("BTC/USD", "limit", "buy", 0.01, 45000)
    reply = cx.cancel_all_orders_after(60_000)  # ccxt takes milliseconds
    assert set(reply["result"]) == {"currentTime", "triggerTime"}
    sim.control("clock", {"advance_s": 61})
    assert cx.fetch_order(order["id"])["status"] == "canceled"
    assert _open_orders(sim, "cx") == {}


def test_ccxt_trades_ledger_and_trading_fee_agree_with_the_engine(cx: Any, sim: SimProcess) -> None:
    fee_before = cx.fetch_trading_fee("BTC/USD")
    assert (fee_before["taker"], fee_before["maker"]) == (0.004, 0.0025)
    bought = cx.create_order("BTC/USD", "market", "buy", 0.2)  # 12000 USD: the next tier
    trades = cx.fetch_my_trades("BTC/USD")
    mine = [t for t in trades if t["order"] == bought["id"]]
    assert len(mine) == 1
    assert mine[0]["amount"] == 0.2
    state = sim.control("state")["accounts"]["cx"]["balances"]
    ledger = cx.fetch_ledger("USD")
    latest = max(ledger, key=lambda entry: entry["timestamp"])
    assert latest["referenceId"] == mine[0]["id"]
    assert Decimal(str(latest["after"])) == Decimal(state["ZUSD"])
    assert Decimal(str(latest["fee"]["cost"])) == Decimal(str(mine[0]["fee"]["cost"]))
    fee_after = cx.fetch_trading_fee("BTC/USD")
    assert (fee_after["taker"], fee_after["maker"]) == (0.0035, 0.002)


def test_krakenex_edit_order_gives_a_new_txid(kx: krakenex.API, sim: SimProcess) -> None:
    placed = _ok(kx.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
                                               "ordertype": "limit", "price": "50000",
                                               "volume": "0.01"}, timeout=TIMEOUT_S))  # fmt: skip
    old = placed["txid"][0]
    edited = _ok(kx.query_private("EditOrder", {"txid": old, "pair": "XBTUSD", "volume": "0.02",
                                                "price": "48000"}, timeout=TIMEOUT_S))  # fmt: skip
    assert edited["originaltxid"] == old
    assert edited["txid"] != old
    assert list(_open_orders(sim, "kx")) == [edited["txid"]]
    closed = _ok(kx.query_private("QueryOrders", {"txid": old}, timeout=TIMEOUT_S))
    assert closed[old]["status"] == "canceled"


def test_get_api_key_info_reports_the_calling_keys_permissions(sim: SimProcess) -> None:
    view = _ok(RawClient(sim.url, "cx-view", VIEW_SECRET).call("GetApiKeyInfo"))
    assert view["apiKey"] == "cx-view"
    assert view["permissions"] == ["query-funds", "query-open-trades", "query-closed-trades"]
    mover = _ok(RawClient(sim.url, "mover-key", MOVER_SECRET).call("GetApiKeyInfo"))
    assert "withdraw-funds" in mover["permissions"]
    assert "modify-trades" in mover["permissions"]
    assert int(mover["nonce"]) > 0
    default = _ok(RawClient(sim.url, "kx-key", KX_SECRET).call("GetApiKeyInfo"))
    assert "withdraw-funds" not in default["permissions"]  # only when the file says so


def test_unknown_method_is_refused_before_authentication(sim: SimProcess) -> None:
    client = RawClient(sim.url, "mover-key", MOVER_SECRET)
    nonce = client.next_nonce()
    assert client.call("OpenPositions", nonce=nonce)["error"] == ["EGeneral:Unknown method"]
    # The nonce was not used up: the same nonce still authenticates a served method.
    assert client.call("Balance", nonce=nonce)["error"] == []
    view = RawClient(sim.url, "cx-view", VIEW_SECRET)
    assert view.call("CancelAllOrdersAfter", timeout=60)["error"] == ["EGeneral:Permission denied"]


def test_dead_man_switch_in_process_fires_when_the_frozen_clock_moves() -> None:
    """The in-process exchange answers through the same request path: CancelAllOrdersAfter
    through krakenex, then advance_clock past the trigger cancels the account's orders."""
    exchange = InProcessExchange(ACCOUNTS, seed=3, clock=SimClock.frozen())
    api = krakenex.API("kx-key", KX_SECRET)
    api.uri = "http://kraken.test"
    api.session.mount("http://kraken.test", exchange.adapter())
    try:
        placed = _ok(api.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
                                                    "ordertype": "limit", "price": "50000",
                                                    "volume": "0.01"}))  # fmt: skip
        armed = _ok(api.query_private("CancelAllOrdersAfter", {"timeout": 10}))
        assert armed["triggerTime"] > armed["currentTime"]
        exchange.advance_clock(9)
        assert list(exchange.state()["accounts"]["kx"]["open_orders"]) == placed["txid"]
        exchange.advance_clock(1)
        assert exchange.state()["accounts"]["kx"]["open_orders"] == {}
        gone = _ok(api.query_private("QueryOrders", {"txid": placed["txid"][0]}))
        assert gone[placed["txid"][0]]["reason"] == "Dead man switch"
    finally:
        api.close()
