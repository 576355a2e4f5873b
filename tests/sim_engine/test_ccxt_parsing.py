"""ccxt's kraken class, unchanged, parses what the engine answers.

Only the transport is replaced: ccxt's `fetch` hands the request to the engine in-process and
gets Kraken's JSON envelope back (round-tripped through `json`), then ccxt's own error mapping and
parsers run. The HTTP server's tests do the same over loopback.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from kraken_sim.engine import Engine
from kraken_sim.errors import SimError
from tests.sim_engine.conftest import Clock


class InProcessKraken(ccxt.kraken):  # type: ignore[misc]
    def __init__(self, engine: Engine, account: str) -> None:
        super().__init__(
            {"apiKey": "in-process", "secret": base64.b64encode(bytes(64)).decode(),
             "enableRateLimit": False}
        )  # fmt: skip
        self.engine = engine
        self.sim_account = account

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urllib.parse.urlsplit(url)
        _, _, scope, name = parts.path.split("/")
        try:
            if scope == "public":
                params = dict(urllib.parse.parse_qsl(parts.query))
                envelope = {"error": [], "result": self.engine.public(name, params)}
            else:
                text = body or ""
                params = (
                    json.loads(text) if text.startswith("{") else dict(urllib.parse.parse_qsl(text))
                )
                result = self.engine.private(self.sim_account, name, params)
                envelope = {"error": [], "result": result}
        except SimError as refused:
            envelope = {"error": [refused.error]}
        text = json.dumps(envelope)
        response = json.loads(text)
        self.last_http_response = text  # what ccxt's cancel_order inspects on failure
        self.handle_errors(200, "OK", url, method, {}, text, response, headers, body)
        return response


@pytest.fixture
def client(clock: Clock) -> InProcessKraken:
    engine = Engine(seed=21, clock=clock)
    engine.add_account("u", balances={"ZUSD": Decimal("50000"), "XXBT": Decimal("1")},
                       tier="intermediate")  # fmt: skip
    kraken = InProcessKraken(engine, "u")
    kraken.load_markets()
    return kraken


def test_markets_and_currencies(client: InProcessKraken) -> None:
    """ccxt maps ids to unified symbols and reads precision and minimums from AssetPairs."""
    assert {"BTC/USD", "BTC/EUR", "ETH/USD", "ETH/EUR", "SOL/USD", "SOL/EUR", "ETH/BTC",
            "USDT/USD", "USDC/USD", "EUR/USD"} <= set(client.symbols)  # fmt: skip
    market = client.market("BTC/USD")
    assert (market["id"], market["altname"], market["wsId"]) == ("XXBTZUSD", "XBTUSD", "XBT/USD")
    assert market["precision"] == {"amount": 1e-08, "price": 0.1}
    assert market["limits"]["amount"]["min"] == 0.00005
    assert market["limits"]["cost"]["min"] == 0.5
    assert (market["taker"], market["maker"]) == (0.004, 0.0025)
    assert {"BTC", "USD", "EUR", "ETH", "SOL", "USDT", "USDC"} <= set(client.currencies)


def test_balance_uses_balance_ex_holds(client: InProcessKraken) -> None:
    """fetch_balance shows total, the part held by an open order as used, and free."""
    client.create_order("BTC/USD", "limit", "buy", 0.1, 50000)
    balance = client.fetch_balance()
    assert balance["USD"] == {"free": 44980.0, "used": 5020.0, "total": 50000.0}
    assert balance["BTC"] == {"free": 1.0, "used": 0.0, "total": 1.0}


def test_limit_order_lifecycle_with_client_order_id(client: InProcessKraken) -> None:
    """create, list open, fetch, cancel and list closed agree on id, clientOrderId and values."""
    created = client.create_order("BTC/USD", "limit", "buy", 0.1, 50000,
                                  {"clientOrderId": "copy-1"})  # fmt: skip
    assert (created["symbol"], created["side"], created["type"]) == ("BTC/USD", "buy", "limit")
    assert (created["amount"], created["price"]) == (0.1, 50000.0)
    (open_order,) = client.fetch_open_orders("BTC/USD")
    assert open_order["id"] == created["id"]
    assert open_order["clientOrderId"] == "copy-1"
    assert (open_order["status"], open_order["filled"], open_order["price"]) == ("open", 0.0, 50000)
    fetched = client.fetch_order(created["id"])
    assert fetched["clientOrderId"] == "copy-1"
    client.cancel_order(created["id"])
    (closed,) = client.fetch_closed_orders("BTC/USD")
    assert (closed["id"], closed["status"]) == (created["id"], "canceled")


def test_market_order_fill_and_trades(client: InProcessKraken) -> None:
    """A market buy is closed, filled at the price, with its fee in USD and one trade."""
    created = client.create_order("BTC/USD", "market", "buy", 0.01)
    assert (created["type"], created["amount"]) == ("market", 0.01)
    order = client.fetch_order(created["id"])
    assert order["status"] == "closed"
    assert (order["filled"], order["average"]) == (0.01, 60000.0)
    assert order["fee"]["currency"] == "USD"
    assert Decimal(order["fee"]["cost"]) == Decimal("2.4")
    assert len(order["trades"]) == 1
    (trade,) = client.fetch_my_trades("BTC/USD")
    assert (trade["symbol"], trade["side"], trade["price"], trade["amount"]) == (
        "BTC/USD", "buy", 60000.0, 0.01,
    )  # fmt: skip
    assert trade["order"] == created["id"]
    assert Decimal(str(trade["fee"]["cost"])) == Decimal("2.4")


def test_stop_loss_orders_parse(client: InProcessKraken) -> None:
    """ccxt's stop-loss and stop-loss-limit requests parse back with their trigger prices."""
    stop = client.create_order("BTC/USD", "market", "sell", 0.1, None, {"stopLossPrice": 55000})
    assert stop["stopLossPrice"] == 55000.0
    fetched = client.fetch_order(stop["id"])
    assert (fetched["type"], fetched["stopLossPrice"]) == ("market", 55000.0)
    limit = client.create_order("BTC/USD", "limit", "sell", 0.1, 54900, {"stopLossPrice": 55000})
    assert (limit["stopLossPrice"], limit["price"]) == (55000.0, 54900.0)
    fetched = client.fetch_order(limit["id"])
    assert (fetched["type"], fetched["price"]) == ("limit", 54900.0)


def test_ticker(client: InProcessKraken) -> None:
    """fetch_ticker reads last, bid and ask."""
    client.engine.set_price("XBTUSD", "61234.5")
    ticker = client.fetch_ticker("BTC/USD")
    assert (ticker["last"], ticker["bid"], ticker["ask"]) == (61234.5, 61234.5, 61234.5)


def test_errors_map_to_ccxt_exceptions(client: InProcessKraken) -> None:
    """Kraken's strings become ccxt's InsufficientFunds, OrderNotFound and InvalidOrder."""
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order("BTC/USD", "limit", "buy", 10, 50000)
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order("ONOPE1-AAAAA-AAAAAA")
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order("ONOPE1-AAAAA-AAAAAA")
    with pytest.raises(ccxt.InvalidOrder):
        client.create_order("BTC/USD", "limit", "buy", 0.000001, 50000)
