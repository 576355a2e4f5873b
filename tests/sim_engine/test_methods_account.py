"""Batches, the dead-man switch, QueryTrades, Ledgers, QueryLedgers, TradeVolume and FOK on the
engine, with values checked against the engine's own state."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kraken_sim.auth import METHOD_PERMISSIONS
from kraken_sim.engine import Engine
from kraken_sim.errors import INSUFFICIENT_FUNDS, invalid_arguments
from tests.sim_engine.conftest import Clock, add, error_of, order

LIMIT = {"type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.01"}
MARKET_BUY = {"pair": "XBTUSD", "type": "buy", "ordertype": "market"}


def _open(engine: Engine, account: str = "alice") -> dict[str, Any]:
    found: dict[str, Any] = engine.private(account, "OpenOrders", {})["open"]
    return found


def test_every_method_with_a_permission_is_served() -> None:
    """rest.py refuses a method outside METHOD_PERMISSIONS before authentication; every one
    inside it must then be served (the two key methods are answered by rest.py itself)."""
    served = Engine(seed=1).served_private_methods()
    assert set(METHOD_PERMISSIONS) == served | {"GetWebSocketsToken", "GetApiKeyInfo"}


def test_add_order_batch_places_in_order_and_reports_each_failure(engine: Engine) -> None:
    reply = engine.private("bob", "AddOrderBatch", {"pair": "XBTUSD", "orders": [
        {**LIMIT, "cl_ord_id": "b-1"},
        {**LIMIT, "volume": "1"},  # 50000 USD: bob has 1000
        {**LIMIT, "price": "49000", "userref": 3},
    ]})  # fmt: skip
    first, second, third = reply["orders"]
    assert second == {"error": INSUFFICIENT_FUNDS}
    assert first["descr"]["order"] == "buy 0.01000000 XBTUSD @ limit 50000.0"
    assert list(_open(engine, "bob")) == [third["txid"], first["txid"]]
    assert order(engine, first["txid"], "bob")["cl_ord_id"] == "b-1"


def test_add_order_batch_validation_failure_rejects_the_whole_batch(engine: Engine) -> None:
    bad = {"pair": "XBTUSD", "orders": [LIMIT, {**LIMIT, "price": "50000.05"}]}
    error = error_of(lambda: engine.private("alice", "AddOrderBatch", bad))
    assert error.startswith("EOrder:Invalid price:XXBTZUSD")
    one = {"pair": "XBTUSD", "orders": [LIMIT]}
    assert error_of(lambda: engine.private("alice", "AddOrderBatch", one)) == invalid_arguments(
        "orders"
    )
    assert _open(engine) == {}


def test_cancel_order_batch_by_txid_userref_and_cl_ord_id(engine: Engine) -> None:
    a = add(engine, pair="XBTUSD", **LIMIT)
    b = add(engine, pair="XBTUSD", **LIMIT, userref=9)
    c = add(engine, pair="XBTUSD", **LIMIT, userref=9)
    d = add(engine, pair="XBTUSD", **LIMIT, cl_ord_id="keep-me-not")
    e = add(engine, pair="XBTUSD", **LIMIT)
    reply = engine.private(
        "alice",
        "CancelOrderBatch",
        {"orders": [a, "9", {"txid": "ONOPE1-AAAAA-AAAAAA"}], "cl_ord_ids": ["keep-me-not"]},
    )
    assert reply == {"count": 4}
    assert list(_open(engine)) == [e]
    assert {order(engine, t)["status"] for t in (a, b, c, d)} == {"canceled"}


def test_dead_man_switch_fires_on_the_clock(engine: Engine, clock: Clock) -> None:
    txid = add(engine, pair="XBTUSD", **LIMIT)
    add(engine, "bob", pair="XBTUSD", **LIMIT)
    reply = engine.private("alice", "CancelAllOrdersAfter", {"timeout": 60})
    assert reply == {"currentTime": "2023-11-14T22:13:20Z", "triggerTime": "2023-11-14T22:14:20Z"}
    clock.advance(59)
    assert list(_open(engine)) == [txid]
    clock.advance(1)
    assert _open(engine) == {}
    assert order(engine, txid)["reason"] == "Dead man switch"
    assert len(_open(engine, "bob")) == 1  # another account's orders stay
    # Fired once: a new order stays until the switch is armed again.
    later = add(engine, pair="XBTUSD", **LIMIT)
    clock.advance(3600)
    assert list(_open(engine)) == [later]


def test_dead_man_switch_rearm_and_disable(engine: Engine, clock: Clock) -> None:
    add(engine, pair="XBTUSD", **LIMIT)
    engine.private("alice", "CancelAllOrdersAfter", {"timeout": "30"})
    clock.advance(20)
    engine.private("alice", "CancelAllOrdersAfter", {"timeout": "30"})
    clock.advance(20)
    assert len(_open(engine)) == 1  # re-armed at 20 s: fires at 50 s
    off = engine.private("alice", "CancelAllOrdersAfter", {"timeout": 0})
    assert off["triggerTime"] == "0"
    clock.advance(3600)
    assert len(_open(engine)) == 1
    errors = {
        error_of(lambda: engine.private("alice", "CancelAllOrdersAfter", {"timeout": "-1"})),
        error_of(lambda: engine.private("alice", "CancelAllOrdersAfter", {"timeout": "86400"})),
        error_of(lambda: engine.private("alice", "CancelAllOrdersAfter", {"timeout": "x"})),
    }
    assert errors == {invalid_arguments("timeout")}


def test_query_trades_and_ledgers_agree_with_balances(engine: Engine, clock: Clock) -> None:
    start = engine.balances("bob")["ZUSD"]
    clock.advance(5)
    txid = add(engine, "bob", **MARKET_BUY, volume="0.01")
    trade_id = order(engine, txid, "bob")["trades"][0]
    trades = engine.private("bob", "QueryTrades", {"txid": f"{trade_id},TNOPE1-AAAAA-AAAAAA"})
    assert list(trades) == [trade_id]
    trade = trades[trade_id]
    assert (trade["ordertxid"], trade["vol"], trade["cost"]) == (txid, "0.01000000", "600.00000")

    ledger = engine.private("bob", "Ledgers", {})
    assert ledger["count"] == 3  # the opening deposit, then the trade's two legs
    entries = list(ledger["ledger"].values())
    assert [e["type"] for e in entries] == ["trade", "trade", "deposit"]
    usd = next(e for e in entries if e["type"] == "trade" and e["asset"] == "ZUSD")
    xbt = next(e for e in entries if e["asset"] == "XXBT")
    assert (usd["refid"], usd["amount"], usd["fee"]) == (trade_id, "-600.0000", "2.4000")
    assert Decimal(usd["balance"]) == engine.balances("bob")["ZUSD"] == start - Decimal("602.4")
    assert (xbt["amount"], Decimal(xbt["balance"])) == ("0.0100000000", Decimal("0.01"))
    only_usd = engine.private("bob", "Ledgers", {"asset": "USD", "type": "trade"})
    assert list(only_usd["ledger"].values()) == [usd]
    ids = ",".join(ledger["ledger"])
    assert engine.private("bob", "QueryLedgers", {"id": ids}) == ledger["ledger"]


def test_fees_follow_the_thirty_day_volume_tier(engine: Engine, clock: Clock) -> None:
    before = engine.private("alice", "TradeVolume", {"pair": "XBTUSD"})
    assert before["volume"] == "0.0000"
    assert before["fees"]["XXBTZUSD"]["fee"] == "0.4000"
    assert before["fees_maker"]["XXBTZUSD"]["fee"] == "0.2500"
    assert before["fees"]["XXBTZUSD"]["nextvolume"] == "10000.0000"
    first = add(engine, **MARKET_BUY, volume="0.2")  # 12000 USD at 0.40 %
    assert order(engine, first)["fee"] == "48.00000"
    after = engine.private("alice", "TradeVolume", {"pair": "XXBTZUSD"})
    assert after["volume"] == "12000.0000"
    assert after["fees"]["XXBTZUSD"]["fee"] == "0.3500"
    # At the same instant the first order's fills do not count yet: one order, one tier.
    same_moment = add(engine, **MARKET_BUY, volume="0.1")
    assert order(engine, same_moment)["fee"] == "24.00000"
    clock.advance(1)
    second = add(engine, **MARKET_BUY, volume="0.1")  # 6000 USD, now at 0.35 %
    assert order(engine, second)["fee"] == "21.00000"
    clock.advance(30 * 86400 + 1)  # the trades leave the 30-day window
    assert engine.private("alice", "TradeVolume", {})["volume"] == "0.0000"
    third = add(engine, **MARKET_BUY, volume="0.1")
    assert order(engine, third)["fee"] == "24.00000"


def test_fok_limit_fills_entirely_or_is_cancelled_with_nothing_filled(engine: Engine) -> None:
    resting = add(engine, pair="XBTUSD", **LIMIT, timeinforce="FOK")  # 50000 < price 60000
    gone = order(engine, resting)
    assert (gone["status"], gone["vol_exec"], gone["reason"]) == (
        "canceled", "0.00000000", "Insufficient liquidity")  # fmt: skip
    taking = add(engine, pair="XBTUSD", **{**LIMIT, "price": "61000"}, timeinforce="FOK")
    done = order(engine, taking)
    assert (done["status"], done["vol_exec"]) == ("closed", "0.01000000")
    assert error_of(lambda: add(engine, pair="XBTUSD", **LIMIT, timeinforce="FOK",
                                oflags="post")) == invalid_arguments("timeinforce")  # fmt: skip
