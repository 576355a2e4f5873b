"""Balance, BalanceEx and TradeBalance: strings at each asset's precision, holds, equity."""

from __future__ import annotations

from decimal import Decimal

from kraken_sim.engine import Engine
from kraken_sim.errors import UNKNOWN_ASSET, UNKNOWN_METHOD
from tests.sim_engine.conftest import Clock, add, error_of


def test_balance_keys_are_asset_ids_at_asset_precision(engine: Engine) -> None:
    """Balance answers asset ids with amounts at the asset's decimals."""
    assert engine.private("alice", "Balance", {"nonce": "1"}) == {
        "ZUSD": "100000.0000", "XXBT": "2.0000000000", "XETH": "10.0000000000",
        "ZEUR": "5000.0000",
    }  # fmt: skip


def test_altname_balances_are_stored_under_ids(clock: Clock) -> None:
    """An accounts file saying USD/XBT is read as ZUSD/XXBT; unknown assets are kept as given."""
    engine = Engine(seed=1, clock=clock)
    engine.add_account("c", balances={"USD": Decimal("5"), "XBT": Decimal("1"),
                                      "KSM": Decimal("2.5")}, tier="pro")  # fmt: skip
    assert engine.private("c", "Balance", {}) == {
        "ZUSD": "5.0000", "XXBT": "1.0000000000", "KSM": "2.5",
    }  # fmt: skip


def test_balance_ex_shows_what_open_orders_hold(engine: Engine) -> None:
    """A resting buy holds volume x price + the taker fee in quote; a sell holds the base."""
    add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="50000", volume="0.1")
    add(engine, pair="XBTUSD", type="sell", ordertype="limit", price="70000", volume="0.25")
    result = engine.private("alice", "BalanceEx", {})
    # 0.1 x 50000 = 5000, plus 0.40 % taker fee = 20
    assert result["ZUSD"] == {"balance": "100000.0000", "hold_trade": "5020.0000"}
    assert result["XXBT"] == {"balance": "2.0000000000", "hold_trade": "0.2500000000"}
    assert result["XETH"]["hold_trade"] == "0.0000000000"


def test_hold_is_released_on_cancel_and_fill(engine: Engine) -> None:
    """Cancelling releases the hold; a fill turns it into the spent amount."""
    buy = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="50000", volume="0.1")
    engine.private("alice", "CancelOrder", {"txid": buy})
    assert engine.private("alice", "BalanceEx", {})["ZUSD"]["hold_trade"] == "0.0000"
    add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="50000", volume="0.1")
    engine.set_price("XBTUSD", "49000")
    ex = engine.private("alice", "BalanceEx", {})
    # maker fill at the limit: 5000 + 0.25 % = 12.5
    assert ex["ZUSD"] == {"balance": "94987.5000", "hold_trade": "0.0000"}
    assert ex["XXBT"]["balance"] == "2.1000000000"


def test_trade_balance_values_every_holding_in_usd(engine: Engine) -> None:
    """TradeBalance equity = each holding x its current price, EUR through EUR/USD."""
    engine.set_price("XBTUSD", "61234.5")
    engine.set_price("ETHUSD", "3456.78")
    engine.set_price("EURUSD", "1.08765")
    result = engine.private("alice", "TradeBalance", {})
    equity = (Decimal("100000") + 2 * Decimal("61234.5") + 10 * Decimal("3456.78")
              + 5000 * Decimal("1.08765"))  # fmt: skip
    assert result["eb"] == result["tb"] == result["e"] == result["mf"] == f"{equity:.4f}"
    assert set(result) == {"eb", "tb", "m", "n", "c", "v", "e", "mf", "ml", "uv"}
    assert result["m"] == result["n"] == result["c"] == result["v"] == "0.0000"
    assert result["uv"] == "0.0000"


def test_trade_balance_in_another_asset_and_rounding(engine: Engine) -> None:
    """asset=XBT values USD by dividing by the price and rounds half-up once at 10 places."""
    engine.set_price("XBTUSD", "60000")
    engine.set_price("ETHXBT", "0.051234")
    engine.set_price("XBTEUR", "55000")
    result = engine.private("alice", "TradeBalance", {"asset": "XBT"})
    equity = (Decimal(2) + Decimal(100000) / Decimal(60000) + 10 * Decimal("0.051234")
              + Decimal(5000) / Decimal(55000))  # fmt: skip
    assert result["e"] == f"{equity.quantize(Decimal('1E-10')):.10f}"
    assert error_of(lambda: engine.private("alice", "TradeBalance", {"asset": "NOPE"})) == (
        UNKNOWN_ASSET
    )


def test_trade_balance_unexecuted_value(engine: Engine) -> None:
    """uv is the value of open orders at their limit price."""
    add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="50000", volume="0.1")
    assert engine.private("alice", "TradeBalance", {"asset": "ZUSD"})["uv"] == "5000.0000"


def test_unknown_private_method(engine: Engine) -> None:
    """A private method the engine does not serve is EGeneral:Unknown method."""
    assert error_of(lambda: engine.private("alice", "Ledgerz", {})) == UNKNOWN_METHOD
