"""Public endpoints: shapes and key naming as Kraken's."""

from __future__ import annotations

import re

from kraken_sim.engine import Engine
from kraken_sim.errors import UNKNOWN_ASSET, UNKNOWN_ASSET_PAIR, UNKNOWN_METHOD
from kraken_sim.markets import PAIRS
from tests.sim_engine.conftest import START, Clock, error_of


def test_time_gives_unixtime_and_rfc1123(engine: Engine) -> None:
    """Time answers the clock's second and Kraken's RFC 1123 text."""
    assert engine.public("Time", {}) == {
        "unixtime": int(START),
        "rfc1123": "Tue, 14 Nov 23 22:13:20 +0000",
    }


def test_system_status_is_online(engine: Engine) -> None:
    """SystemStatus says online with an ISO timestamp."""
    assert engine.public("SystemStatus", {}) == {
        "status": "online",
        "timestamp": "2023-11-14T22:13:20Z",
    }


def test_unknown_public_method(engine: Engine) -> None:
    """A method Kraken does not have is EGeneral:Unknown method."""
    assert error_of(lambda: engine.public("Depthx", {})) == UNKNOWN_METHOD


def test_assets_keyed_by_id_with_altnames(engine: Engine) -> None:
    """Assets lists XXBT/ZUSD/XETH/ZEUR with altnames, and plain ids for newer assets."""
    result = engine.public("Assets", {})
    assert result["XXBT"] == {
        "aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5,
        "collateral_value": 1, "status": "enabled",
    }  # fmt: skip
    assert result["ZUSD"]["altname"] == "USD"
    assert result["ZEUR"]["altname"] == "EUR"
    assert {"SOL", "USDT", "USDC", "XETH"} <= set(result)


def test_assets_filter_by_id_or_altname(engine: Engine) -> None:
    """asset= takes ids and altnames, comma separated, and answers with ids."""
    assert set(engine.public("Assets", {"asset": "XBT,ZUSD,sol"})) == {"XXBT", "ZUSD", "SOL"}
    assert engine.public("Assets", {"aclass": "tokenized_asset"}) == {}
    assert error_of(lambda: engine.public("Assets", {"asset": "XBT,NOPE"})) == UNKNOWN_ASSET


def test_asset_pairs_has_at_least_eight_realistic_pairs(engine: Engine) -> None:
    """AssetPairs keys are pair ids with Kraken's altname/wsname and trading rules."""
    result = engine.public("AssetPairs", {})
    expected = {"XXBTZUSD", "XXBTZEUR", "XETHZUSD", "XETHZEUR", "SOLUSD", "SOLEUR", "XETHXXBT",
                "USDTZUSD"}  # fmt: skip
    assert expected <= set(result)
    btc = result["XXBTZUSD"]
    assert (btc["altname"], btc["wsname"], btc["base"], btc["quote"]) == (
        "XBTUSD", "XBT/USD", "XXBT", "ZUSD",
    )  # fmt: skip
    assert (btc["pair_decimals"], btc["lot_decimals"], btc["cost_decimals"]) == (1, 8, 5)
    assert (btc["ordermin"], btc["costmin"], btc["tick_size"]) == ("0.00005", "0.5", "0.1")
    assert btc["fees"][0] == [0, 0.4]
    assert btc["fees_maker"][0] == [0, 0.25]
    assert btc["status"] == "online"
    assert result["XETHXXBT"]["altname"] == "ETHXBT"
    assert result["USDTZUSD"]["fees"] == result["USDTZUSD"]["fees_maker"]


def test_asset_pairs_filter_by_id_altname_or_wsname(engine: Engine) -> None:
    """pair= accepts ids, altnames and wsnames in one comma list; the keys are ids."""
    result = engine.public("AssetPairs", {"pair": "XXBTZUSD,ETHUSD,SOL/EUR"})
    assert list(result) == ["XXBTZUSD", "XETHZUSD", "SOLEUR"]
    assert error_of(lambda: engine.public("AssetPairs", {"pair": "DOGEUSD"})) == (
        UNKNOWN_ASSET_PAIR
    )


def test_asset_pairs_info_subsets(engine: Engine) -> None:
    """info=leverage|fees|margin answer only those fields; anything else is invalid."""
    fees = engine.public("AssetPairs", {"pair": "XBTUSD", "info": "fees"})["XXBTZUSD"]
    assert set(fees) == {"fees", "fees_maker", "fee_volume_currency"}
    leverage = engine.public("AssetPairs", {"pair": "XBTUSD", "info": "leverage"})["XXBTZUSD"]
    assert set(leverage) == {"leverage_buy", "leverage_sell"}
    margin = engine.public("AssetPairs", {"pair": "XBTUSD", "info": "margin"})["XXBTZUSD"]
    assert set(margin) == {"margin_call", "margin_stop"}
    assert error_of(lambda: engine.public("AssetPairs", {"info": "x"})) == (
        "EGeneral:Invalid arguments:info"
    )


def test_ticker_shape_for_every_pair(engine: Engine) -> None:
    """Ticker has a,b,c,v,p,t,l,h,o for every pair, prices as strings and counts as ints."""
    result = engine.public("Ticker", {})
    assert set(result) == set(PAIRS)
    for entry in result.values():
        assert set(entry) == {"a", "b", "c", "v", "p", "t", "l", "h", "o"}
        assert len(entry["a"]) == 3
        assert len(entry["b"]) == 3
        assert len(entry["c"]) == 2
        for key in ("v", "p", "l", "h"):
            assert all(re.fullmatch(r"\d+\.\d+", value) for value in entry[key])
        assert all(isinstance(count, int) for count in entry["t"])
        assert isinstance(entry["o"], str)


def test_ticker_follows_prices_and_trades(engine: Engine, clock: Clock) -> None:
    """The ticker shows the last price, the day's range, volume, trade count and open."""
    engine.set_price("XBT/USD", "61000")
    engine.set_price("XXBTZUSD", "59000")
    market_buy = {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.5"}
    engine.private("alice", "AddOrder", market_buy)
    clock.advance(60)
    engine.set_price("XBTUSD", "60500")
    tick = engine.public("Ticker", {"pair": "XBTUSD"})["XXBTZUSD"]
    assert tick["c"] == ["60500.00000", "0.50000000"]
    assert tick["a"][0] == tick["b"][0] == "60500.00000"
    assert tick["h"] == ["61000.00000", "61000.00000"]
    assert tick["l"] == ["59000.00000", "59000.00000"]
    assert tick["v"] == ["0.50000000", "0.50000000"]
    assert tick["t"] == [1, 1]
    assert tick["p"] == ["59000.00000", "59000.00000"]
    assert tick["o"] == "60000.00000"


def test_ticker_window_forgets_after_a_day(engine: Engine, clock: Clock) -> None:
    """A day later the 24-hour figures no longer count yesterday's trade."""
    market_buy = {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.5"}
    engine.private("alice", "AddOrder", market_buy)
    clock.advance(2 * 86400)
    engine.set_price("XBTUSD", "60100")
    tick = engine.public("Ticker", {"pair": "XBTUSD"})["XXBTZUSD"]
    assert tick["v"] == ["0.00000000", "0.00000000"]
    assert tick["t"] == [0, 0]
    assert tick["o"] == "60000.00000"
    assert tick["c"] == ["60100.00000", "0.50000000"]


def test_set_price_accepts_any_name_and_checks_the_price(engine: Engine) -> None:
    """set_price takes id, altname or wsname; unknown pairs and bad prices are refused."""
    engine.set_price("ETH/USD", "3100.5")
    engine.set_price("ETHUSD", "3100.25")
    assert engine.state()["prices"]["XETHZUSD"] == "3100.25"
    assert error_of(lambda: engine.set_price("NOPE", "1")) == UNKNOWN_ASSET_PAIR
    assert error_of(lambda: engine.set_price("XBTUSD", "0")) == "EGeneral:Invalid arguments:price"
    assert error_of(lambda: engine.set_price("XBTUSD", "60000.05")) == (
        "EOrder:Tick size check failed"
    )
