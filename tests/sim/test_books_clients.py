"""Books over HTTP: unchanged ccxt and krakenex read Depth, Trades, OHLC, Spread and Ticker from a
simulator whose accounts file has a `[books]` section, and see market orders slip and resting
orders fill partly through the `trade` control operation (over HTTP and in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import krakenex
import pytest

from kraken_sim.clock import SimClock
from kraken_sim.inprocess import InProcessExchange
from tests.simproc import SimProcess, new_secret, running_sim

SECRET = new_secret()
ACCOUNTS = f"""
[[accounts]]
name = "trader"
key = "trader-key"
secret = "{SECRET}"
tier = "pro"
balances = {{ ZUSD = "200000", XXBT = "3" }}

[prices]
XXBTZUSD = "60000"

[books]
levels = 12
refill_seconds = 30

[books.XBTUSD]
level_volume = "0.2"
spread_bps = "4"
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with running_sim(ACCOUNTS, "--seed", "11") as process:
        yield process


@pytest.fixture(scope="module")
def cx(sim: SimProcess) -> Any:
    exchange = ccxt.kraken({"apiKey": "trader-key", "secret": SECRET, "enableRateLimit": False,
                            "timeout": 10_000})  # fmt: skip
    exchange.urls["api"]["public"] = exchange.urls["api"]["private"] = sim.url
    return exchange


@pytest.fixture(scope="module")
def kx(sim: SimProcess) -> Iterator[krakenex.API]:
    api = krakenex.API("trader-key", SECRET)
    api.uri = sim.url
    yield api
    api.close()


def _result(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


def test_ccxt_reads_the_book_and_the_ticker_has_a_spread(cx: Any) -> None:
    book = cx.fetch_order_book("BTC/USD")
    assert len(book["asks"]) == len(book["bids"]) == 12
    assert book["bids"][0][0] < 60000 < book["asks"][0][0]
    assert [ask[0] for ask in book["asks"]] == sorted(ask[0] for ask in book["asks"])
    assert cx.fetch_order_book("BTC/USD", limit=3)["asks"] == book["asks"][:3]
    ticker = cx.fetch_ticker("BTC/USD")
    assert (ticker["ask"], ticker["bid"]) == (book["asks"][0][0], book["bids"][0][0])


def test_a_ccxt_market_order_walks_the_book_and_ccxt_reads_the_tape(cx: Any) -> None:
    asks = cx.fetch_order_book("BTC/USD")["asks"]
    order = cx.create_order("BTC/USD", "market", "buy", 0.5)
    placed = cx.fetch_order(order["id"])
    assert placed["status"] == "closed"
    assert placed["filled"] == 0.5
    assert asks[0][0] < placed["average"] < asks[3][0]
    mine = [t for t in cx.fetch_my_trades("BTC/USD") if t["order"] == order["id"]]
    assert len(mine) >= 3
    assert [t["price"] for t in mine] == sorted(t["price"] for t in mine)
    public = cx.fetch_trades("BTC/USD")
    assert [t["price"] for t in public[-len(mine) :]] == [t["price"] for t in mine]
    assert {t["side"] for t in public[-len(mine) :]} == {"buy"}
    candles = cx.fetch_ohlcv("BTC/USD", "1m")
    assert candles
    assert sum(Decimal(str(c[5])) for c in candles) >= Decimal("0.5")
    assert candles[-1][2] == max(t["price"] for t in mine)


def test_krakenex_reads_spread_and_trades_since_its_cursor(kx: krakenex.API) -> None:
    spread = _result(kx.query_public("Spread", {"pair": "XBTUSD"}))
    time, bid, ask = spread["XXBTZUSD"][-1]
    assert isinstance(time, int)
    assert Decimal(bid) < Decimal(ask)
    first = _result(kx.query_public("Trades", {"pair": "XBTUSD"}))
    kx.query_private("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "market",
                                  "volume": "0.05"})  # fmt: skip
    newer = _result(kx.query_public("Trades", {"pair": "XBTUSD", "since": first["last"]}))
    assert [row[3] for row in newer["XXBTZUSD"]] == ["s"]
    assert int(newer["last"]) > int(first["last"])


def test_trade_control_fills_a_resting_order_partly_over_http(
    kx: krakenex.API, sim: SimProcess
) -> None:
    placed = _result(kx.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
                                                   "ordertype": "limit", "price": "59000",
                                                   "volume": "0.4"}))  # fmt: skip
    txid = placed["txid"][0]
    reply = sim.control("trade", {"pair": "XBTUSD", "side": "sell", "price": "59000",
                                  "volume": "0.1"})  # fmt: skip
    assert reply == {"ok": True, "traded": "0.1"}
    shown = _result(kx.query_private("QueryOrders", {"txid": txid, "trades": True}))[txid]
    assert (shown["status"], shown["vol_exec"], shown["misc"]) == ("open", "0.10000000", "partial")
    _result(kx.query_private("CancelOrder", {"txid": txid}))
    closed = _result(kx.query_private("QueryOrders", {"txid": txid, "trades": True}))[txid]
    assert (closed["status"], closed["vol_exec"], len(closed["trades"])) == (
        "canceled",
        "0.10000000",
        1,
    )


def test_the_in_process_exchange_trades_through_too() -> None:
    exchange = InProcessExchange(ACCOUNTS, seed=11, clock=SimClock.frozen())
    api = krakenex.API("trader-key", SECRET)
    api.uri = "http://kraken.test"
    api.session = exchange.session("http://kraken.test")
    placed = _result(api.query_private("AddOrder", {"pair": "XBTUSD", "type": "sell",
                                                    "ordertype": "limit", "price": "61000",
                                                    "volume": "0.3"}))  # fmt: skip
    assert exchange.trade("XBTUSD", "buy", "61200", "0.5") == Decimal("0.3")
    txid = placed["txid"][0]
    assert exchange.state()["accounts"]["trader"]["open_orders"] == {}
    shown = _result(api.query_private("QueryOrders", {"txid": txid}))[txid]
    assert (shown["status"], shown["price"]) == ("closed", "61000.0")
