"""Fills, fees, post-only, IOC, stops and take-profits, expiry and scheduled starts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kraken_sim.engine import Engine
from tests.sim_engine.conftest import Clock, add, order


def _balances(engine: Engine, account: str = "alice") -> dict[str, str]:
    result: dict[str, str] = engine.private(account, "Balance", {})
    return result


def test_market_buy_fills_at_last_with_taker_fee_in_quote(engine: Engine) -> None:
    """A market buy fills at once at the current price; the 0.40 % fee is paid in USD."""
    engine.set_price("XBTUSD", "61000")
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="market", volume="0.1")
    found = order(engine, txid)
    assert found["status"] == "closed"
    assert found["reason"] is None
    assert (found["vol_exec"], found["cost"], found["fee"], found["price"]) == (
        "0.10000000", "6100.00000", "24.40000", "61000.0",
    )  # fmt: skip
    assert len(found["trades"]) == 1
    assert found["closetm"] == found["opentm"]
    assert _balances(engine)["ZUSD"] == "93875.6000"
    assert _balances(engine)["XXBT"] == "2.1000000000"
    assert engine.fees_collected() == {"ZUSD": Decimal("24.4000")}


def test_market_sell_with_fee_in_base(engine: Engine) -> None:
    """With fcib a sell pays its fee in XBT on top of the volume sold."""
    txid = add(engine, pair="XBTUSD", type="sell", ordertype="market", volume="1",
               oflags="fcib")  # fmt: skip
    assert order(engine, txid)["fee"] == "0.0040000000"
    assert _balances(engine)["XXBT"] == "0.9960000000"
    assert _balances(engine)["ZUSD"] == "160000.0000"
    assert engine.fees_collected() == {"XXBT": Decimal("0.004")}


def test_market_buy_with_fee_in_base_receives_less(engine: Engine) -> None:
    """With fcib a buy receives its volume minus the fee, and pays exactly the cost."""
    add(engine, pair="ETHUSD", type="buy", ordertype="market", volume="2", oflags="fcib")
    assert _balances(engine)["XETH"] == "11.9920000000"
    assert _balances(engine)["ZUSD"] == "94000.0000"


def test_viqc_market_buy_spends_a_quote_amount(engine: Engine) -> None:
    """viqc: volume is in USD; the base bought is rounded down to lot_decimals."""
    engine.set_price("XBTUSD", "60000")
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="market", volume="100",
               oflags="viqc")  # fmt: skip
    found = order(engine, txid)
    assert found["descr"]["order"] == "buy 100.00000000 XBTUSD @ market"
    trade = engine.private("alice", "TradesHistory", {})["trades"][found["trades"][0]]
    assert trade["vol"] == "0.00166666"
    assert trade["cost"] == "99.99960"
    assert _balances(engine)["XXBT"] == "2.0016666600"


def test_marketable_limit_fills_at_once_as_taker_at_the_market_price(engine: Engine) -> None:
    """A buy limit above the price fills at the price (not its limit), paying the taker fee."""
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="65000", volume="0.1")
    found = order(engine, txid)
    assert (found["status"], found["price"], found["fee"]) == ("closed", "60000.0", "24.00000")
    trade = engine.private("alice", "TradesHistory", {})["trades"][found["trades"][0]]
    assert trade["maker"] is False


def test_resting_limit_fills_at_its_price_as_maker_when_crossed(engine: Engine) -> None:
    """A resting sell fills at its own limit, maker fee, when the price jumps past it."""
    txid = add(engine, pair="XBTUSD", type="sell", ordertype="limit", price="62000", volume="1")
    engine.set_price("XBTUSD", "61900")
    assert order(engine, txid)["status"] == "open"
    engine.set_price("XBTUSD", "63000")
    found = order(engine, txid)
    assert (found["status"], found["price"], found["cost"], found["fee"]) == (
        "closed", "62000.0", "62000.00000", "155.00000",
    )  # fmt: skip
    trade = engine.private("alice", "TradesHistory", {})["trades"][found["trades"][0]]
    assert trade["maker"] is True
    assert trade["pair"] == "XXBTZUSD"
    assert _balances(engine)["ZUSD"] == "161845.0000"


def test_post_only_that_would_take_is_cancelled(engine: Engine) -> None:
    """A marketable post-only limit is accepted and cancelled with reason "Post only order"."""
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="61000",
               volume="0.1", oflags="post")  # fmt: skip
    found = order(engine, txid)
    assert (found["status"], found["reason"], found["vol_exec"]) == (
        "canceled", "Post only order", "0.00000000",
    )  # fmt: skip
    assert _balances(engine)["ZUSD"] == "100000.0000"
    rests = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="59000",
                volume="0.1", oflags="post")  # fmt: skip
    assert order(engine, rests)["status"] == "open"


def test_ioc_limit_never_rests(engine: Engine) -> None:
    """An IOC limit that cannot fill now is cancelled; one that can fills."""
    miss = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="59000",
               volume="0.1", timeinforce="IOC")  # fmt: skip
    assert (order(engine, miss)["status"], order(engine, miss)["reason"]) == (
        "canceled", "Insufficient liquidity",
    )  # fmt: skip
    hit = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="61000",
              volume="0.1", timeinforce="ioc")  # fmt: skip
    assert order(engine, hit)["status"] == "closed"


@pytest.mark.parametrize(
    ("ordertype", "side", "trigger", "untouched", "touched", "misc"),
    [
        ("stop-loss", "sell", "58000", "58100", "57000", "stopped"),
        ("stop-loss", "buy", "62000", "61900", "62500", "stopped"),
        ("take-profit", "sell", "62000", "61900", "62500", "touched"),
        ("take-profit", "buy", "58000", "58100", "57900", "touched"),
    ],
)
def test_stops_and_take_profits_trigger_and_fill_at_market(
    engine: Engine, ordertype: str, side: str, trigger: str, untouched: str, touched: str,
    misc: str,
) -> None:  # fmt: skip
    """Stop-loss triggers on a move against, take-profit on a move for; both fill at market."""
    txid = add(engine, pair="XBTUSD", type=side, ordertype=ordertype, price=trigger,
               volume="0.1")  # fmt: skip
    engine.set_price("XBTUSD", untouched)
    assert order(engine, txid)["status"] == "open"
    engine.set_price("XBTUSD", touched)
    found = order(engine, txid)
    assert (found["status"], found["price"], found["misc"]) == ("closed", f"{touched}.0", misc)
    assert found["stopprice"] == f"{trigger}.0"
    assert found["descr"]["price"] == f"{trigger}.0"


def test_stop_already_past_its_trigger_fires_at_once(engine: Engine) -> None:
    """A sell stop-loss above the current price triggers when it arrives."""
    txid = add(engine, pair="XBTUSD", type="sell", ordertype="stop-loss", price="65000",
               volume="0.1")  # fmt: skip
    assert order(engine, txid)["status"] == "closed"


def test_stop_limit_triggers_then_rests_then_fills_as_maker(engine: Engine) -> None:
    """A sell stop-loss-limit triggers at 58000, rests at 58500, fills when price comes back."""
    txid = add(engine, pair="XBTUSD", type="sell", ordertype="stop-loss-limit", price="58000",
               price2="58500", volume="0.5")  # fmt: skip
    assert engine.private("alice", "BalanceEx", {})["XXBT"]["hold_trade"] == "0.5000000000"
    engine.set_price("XBTUSD", "57900")
    found = order(engine, txid)
    assert (found["status"], found["misc"], found["limitprice"]) == ("open", "stopped", "58500.0")
    engine.set_price("XBTUSD", "58600")
    found = order(engine, txid)
    assert (found["status"], found["price"], found["fee"]) == ("closed", "58500.0", "73.12500")


def test_buy_stop_limit_that_is_marketable_when_triggered_takes(engine: Engine) -> None:
    """A buy stop-loss-limit whose limit is above the new price fills at once as taker."""
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="stop-loss-limit", price="61000",
               price2="61500", volume="0.1")  # fmt: skip
    hold = engine.private("alice", "BalanceEx", {})["ZUSD"]["hold_trade"]
    assert hold == "6174.6000"  # 0.1 x 61500 = 6150, + 0.40 %
    engine.set_price("XBTUSD", "61200")
    found = order(engine, txid)
    assert (found["status"], found["price"], found["fee"]) == ("closed", "61200.0", "24.48000")


def test_triggered_stop_without_funds_is_cancelled(clock: Clock) -> None:
    """A buy stop that gaps far above its trigger cannot be paid for and is cancelled."""
    engine = Engine(seed=3, clock=clock)
    engine.add_account("poor", balances={"ZUSD": Decimal("6100")}, tier="starter")
    txid = add(engine, "poor", pair="XBTUSD", type="buy", ordertype="stop-loss",
               price="60500", volume="0.1")  # fmt: skip
    engine.set_price("XBTUSD", "70000")
    found = order(engine, txid, "poor")
    assert (found["status"], found["reason"]) == ("canceled", "Insufficient funds")
    assert engine.private("poor", "Balance", {}) == {"ZUSD": "6100.0000"}


def test_gtd_order_expires_lazily_at_its_time(engine: Engine, clock: Clock) -> None:
    """A GTD order is expired on the first call after expiretm, with closetm = expiretm."""
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="50000",
               volume="0.1", timeinforce="GTD", expiretm="+30")  # fmt: skip
    assert order(engine, txid)["expiretm"] == clock.now + 30
    clock.advance(29)
    assert order(engine, txid)["status"] == "open"
    clock.advance(1)
    found = order(engine, txid)
    assert (found["status"], found["closetm"]) == ("expired", found["expiretm"])
    assert engine.private("alice", "BalanceEx", {})["ZUSD"]["hold_trade"] == "0.0000"


def test_expired_order_does_not_fill_on_a_later_price_move(engine: Engine, clock: Clock) -> None:
    """Expiry is applied before a price move, so an order past its time never fills."""
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="50000",
               volume="0.1", expiretm=str(clock.now + 10))  # fmt: skip
    clock.advance(11)
    engine.set_price("XBTUSD", "40000")
    assert order(engine, txid)["status"] == "expired"


def test_scheduled_start_is_pending_then_live(engine: Engine, clock: Clock) -> None:
    """An order with starttm in the future is pending (holding funds) until then."""
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="61000",
               volume="0.1", starttm="+60")  # fmt: skip
    assert order(engine, txid)["status"] == "pending"
    engine.set_price("XBTUSD", "60500")
    assert order(engine, txid)["status"] == "pending"
    assert engine.private("alice", "BalanceEx", {})["ZUSD"]["hold_trade"] == "6124.4000"
    clock.advance(60)
    found = order(engine, txid)
    assert (found["status"], found["price"]) == ("closed", "60500.0")
