"""The pair catalogue (at least 50 spot pairs with Kraken's recorded rules), `BTC/USD`-style
names, Kraken's wording for price precision and malformed order ids, and TradeBalance's
definitions; over HTTP, with unchanged krakenex and ccxt, and in-process where a fresh exchange
is needed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import krakenex
import pytest

from kraken_sim import errors
from kraken_sim.clock import SimClock
from kraken_sim.inprocess import InProcessExchange
from tests.sim.conftest import ACCOUNTS_TOML, BASE_URL, SimAccounts, client
from tests.sim.kraken_http import RawClient, public
from tests.simproc import SimProcess, new_secret

COSTMIN_BY_QUOTE = {"ZUSD": "0.5", "ZEUR": "0.45", "XXBT": "0.00002", "USDT": "0.5"}
STABLE = {"USDTZUSD", "USDCUSD", "ZEURZUSD", "USDTEUR", "USDCEUR", "USDCUSDT"}


def _ok(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


def test_asset_pairs_lists_at_least_50_pairs_with_kraken_rules(sim: SimProcess) -> None:
    """Every pair: tick_size = 10^-pair_decimals, ordermin > 0, Kraken's costmin for its quote,
    fee schedule, execution_venue, and base/quote listed by Assets."""
    pairs = _ok(public(sim.url, "AssetPairs"))
    assets = _ok(public(sim.url, "Assets"))
    assert len(pairs) >= 50
    for pair_id, info in pairs.items():
        assert Decimal(info["tick_size"]) == Decimal(1).scaleb(-info["pair_decimals"]), pair_id
        assert "E" not in info["tick_size"] + info["ordermin"] + info["costmin"], pair_id
        assert Decimal(info["ordermin"]) > 0, pair_id
        assert info["costmin"] == COSTMIN_BY_QUOTE[info["quote"]], pair_id
        taker = [0, 0.2] if pair_id in STABLE else [0, 0.4]
        assert info["fees"][0] == taker, pair_id
        assert (info["status"], info["execution_venue"]) == ("online", "international"), pair_id
        assert {info["base"], info["quote"]} <= set(assets), pair_id
        assert info["lot_decimals"] <= assets[info["base"]]["decimals"], pair_id


@pytest.mark.parametrize(
    ("pair_id", "expected"),
    [
        # Recorded live answers (2026): the values the catalogue must carry unchanged.
        ("XXBTZUSD", {"ordermin": "0.00005", "costmin": "0.5", "tick_size": "0.1",
                      "pair_decimals": 1, "lot_decimals": 8, "cost_decimals": 5}),
        ("XETHXXBT", {"ordermin": "0.001", "costmin": "0.00002", "tick_size": "0.000001",
                      "pair_decimals": 6, "lot_decimals": 8, "cost_decimals": 10}),
        ("XDGUSD", {"ordermin": "50", "costmin": "0.5", "tick_size": "0.0000001",
                    "pair_decimals": 7, "lot_decimals": 8, "cost_decimals": 9,
                    "wsname": "XDG/USD", "base": "XXDG"}),
        ("DOTUSD", {"ordermin": "3.9", "tick_size": "0.0001", "wsname": "DOT/USD"}),
        ("XXRPZEUR", {"altname": "XRPEUR", "ordermin": "1.65", "costmin": "0.45",
                      "tick_size": "0.00001"}),
    ],
)  # fmt: skip
def test_recorded_pairs_carry_their_recorded_rules(
    sim: SimProcess, pair_id: str, expected: dict[str, Any]
) -> None:
    info = _ok(public(sim.url, "AssetPairs", pair=pair_id))[pair_id]
    assert {name: info[name] for name in expected} == expected


def test_btc_usd_style_names_work_wherever_kraken_takes_a_pair(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """AssetPairs, Ticker and AddOrder take `BTC/USD`, `ETH/BTC`, `DOGE/EUR` (the common names
    of XBT and XDG), as well as ids, altnames and wsnames; Assets takes BTC and DOGE."""
    found = _ok(public(sim.url, "AssetPairs", pair="BTC/USD,ETH/BTC,btc/eur,XBT/USD"))
    assert list(found) == ["XXBTZUSD", "XETHXXBT", "XXBTZEUR"]
    assert list(_ok(public(sim.url, "Ticker", pair="DOGE/USD,XRP/XBT"))) == ["XDGUSD", "XXRPXXBT"]
    assert list(_ok(public(sim.url, "Assets", asset="BTC,DOGE"))) == ["XXBT", "XXDG"]
    assert public(sim.url, "Ticker", pair="BTC/NOPE")["error"] == [errors.UNKNOWN_ASSET_PAIR]
    api = krakenex.API(keys.krakenex.key, keys.krakenex.secret)
    api.uri = sim.url
    order = {"pair": "BTC/EUR", "type": "buy", "ordertype": "limit", "price": "30000",
             "volume": "0.001", "validate": True}  # fmt: skip
    placed = _ok(api.query_private("AddOrder", order, timeout=5))
    assert placed["descr"]["order"] == "buy 0.00100000 XBTEUR @ limit 30000.0"


def test_ccxt_reads_the_catalogue_and_trades_a_new_pair(keys: SimAccounts) -> None:
    """Unchanged ccxt maps the new pairs to unified symbols (DOGE, BTC) with their precision and
    minimums, and places and reads back an order on one of them."""
    exchange = InProcessExchange(ACCOUNTS_TOML, seed=7, clock=SimClock.frozen())
    cx = ccxt.kraken({"apiKey": keys.ccxt.key, "secret": keys.ccxt.secret,
                      "enableRateLimit": False, "timeout": 5000})  # fmt: skip
    cx.urls["api"]["public"] = cx.urls["api"]["private"] = BASE_URL
    cx.session.mount(BASE_URL, exchange.adapter())
    markets = cx.load_markets()
    assert len(markets) >= 50
    assert {"DOT/USD", "DOGE/USD", "DOGE/BTC", "XRP/EUR", "ADA/BTC", "BTC/USDT", "LTC/USD",
            "USDC/EUR"} <= set(markets)  # fmt: skip
    doge = markets["DOGE/EUR"]
    assert (doge["id"], doge["precision"]["price"], doge["limits"]["amount"]["min"]) == (
        "XDGEUR",
        1e-07,
        50,
    )
    order = cx.create_order("DOGE/EUR", "limit", "buy", 100, 0.15, {"clientOrderId": "doge-1"})
    fetched = cx.fetch_order(order["id"])
    assert (fetched["symbol"], fetched["status"], fetched["amount"]) == ("DOGE/EUR", "open", 100)


def test_starting_prices_agree_across_the_catalogue() -> None:
    """Each base's EUR, XBT and USDT prices are its USD price converted at the catalogue's own
    EUR/USD, XBT/USD and USDT/USD, to within a tick of each pair."""
    exchange = InProcessExchange(ACCOUNTS_TOML, seed=7, clock=SimClock.frozen())
    session = exchange.session(BASE_URL)
    ticker = session.get(f"{BASE_URL}/0/public/Ticker", timeout=5).json()["result"]
    pairs = session.get(f"{BASE_URL}/0/public/AssetPairs", timeout=5).json()["result"]
    last = {pair_id: Decimal(row["c"][0]) for pair_id, row in ticker.items()}
    usd_of_quote = {"ZUSD": Decimal(1), "ZEUR": last["ZEURZUSD"], "XXBT": last["XXBTZUSD"],
                    "USDT": last["USDTZUSD"]}  # fmt: skip
    usd_of_base = {info["base"]: last[pair_id] for pair_id, info in pairs.items()
                   if info["quote"] == "ZUSD"}  # fmt: skip
    checked = 0
    for pair_id, info in pairs.items():
        original = pair_id in {"XXBTZEUR", "XETHZEUR", "SOLEUR", "XETHXXBT"}  # first issue's
        if info["quote"] == "ZUSD" or original:
            continue
        expected = usd_of_base[info["base"]] / usd_of_quote[info["quote"]]
        assert abs(last[pair_id] - expected) <= Decimal(info["tick_size"]), pair_id
        checked += 1
    assert checked >= 20


def test_price_precision_error_is_worded_as_kraken_words_it(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """A price with more decimals than the pair allows: Kraken's exact text, naming the pair id
    and its decimals (krakenex sees it in the envelope)."""
    api = krakenex.API(keys.krakenex.key, keys.krakenex.secret)
    api.uri = sim.url
    order = {"type": "buy", "ordertype": "limit", "volume": "0.001", "validate": True}
    reply = api.query_private("AddOrder", {**order, "pair": "XBTEUR", "price": "50000.05"})
    assert reply["error"] == [
        "EOrder:Invalid price:XXBTZEUR price can only be specified up to 1 decimals."
    ]
    reply = api.query_private("AddOrder", {**order, "pair": "ADAUSD", "volume": "30",
                                           "price": "0.7000001"})  # fmt: skip
    assert reply["error"] == [errors.price_precision("ADAUSD", 6)]


def test_malformed_txid_is_an_invalid_order(sim: SimProcess, keys: SimAccounts) -> None:
    """QueryOrders: a malformed id is EOrder:Invalid order; a well-formed unknown one is left
    out of the answer."""
    misc = client(sim, keys.misc)
    assert misc.call("QueryOrders", txid="not-an-order")["error"] == [errors.INVALID_ORDER]
    assert misc.call("QueryOrders", txid="OAAAAA-AAAAA-AAAAAA,nope")["error"] == [
        errors.INVALID_ORDER
    ]
    assert _ok(misc.call("QueryOrders", txid="OAAAAA-AAAAA-AAAAAA")) == {}


def test_trade_balance_of_a_dollar_account_is_its_dollars(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """Only collateral currencies: equivalent balance, trade balance and equity agree."""
    poor = client(sim, keys.poor)
    balance = _ok(poor.call("TradeBalance"))
    assert (balance["eb"], balance["tb"], balance["e"], balance["mf"], balance["n"]) == (
        "100.0000", "100.0000", "100.0000", "100.0000", "0.0000"
    )  # fmt: skip


def test_trade_balance_counts_only_equity_currencies_in_tb_and_e() -> None:
    """`eb` values every holding; `tb` (and `e` = tb + unrealised P/L, 0 on spot) counts each
    holding times its Assets `collateral_value`: USD and XBT fully, XDG at 0.925, ADA not at
    all, as the Assets endpoint publishes."""
    key, secret = "tb-key", new_secret()
    accounts = (f'[[accounts]]\nname = "tb"\nkey = "{key}"\nsecret = "{secret}"\n'
                'tier = "pro"\nbalances = { ZUSD = "1000", ADA = "1000", DOGE = "1000", '
                'XBT = "0.01" }\n')  # fmt: skip
    exchange = InProcessExchange(accounts, seed=7, clock=SimClock.frozen())
    session = exchange.session(BASE_URL)
    assets = session.get(f"{BASE_URL}/0/public/Assets", params={"asset": "ADA,XDG,XBT,USD"},
                         timeout=5).json()["result"]  # fmt: skip
    assert {name: row["collateral_value"] for name, row in assets.items()} == {
        "ADA": 0, "XXDG": 0.925, "XXBT": 1, "ZUSD": 1,
    }  # fmt: skip
    account = RawClient(BASE_URL, key, secret, session=session)
    usd = _ok(account.call("TradeBalance"))
    # 1000 USD + 1000 ADA at 0.70 + 1000 DOGE at 0.20 + 0.01 XBT at 60000
    assert (usd["eb"], usd["tb"], usd["e"], usd["mf"]) == (
        "2500.0000", "1785.0000", "1785.0000", "1785.0000"
    )  # fmt: skip
    eur = _ok(account.call("TradeBalance", asset="EUR"))
    assert Decimal(eur["e"]) == Decimal(eur["tb"]) < Decimal(eur["eb"])
