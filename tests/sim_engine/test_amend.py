"""AmendOrder, OrderAmends and EditOrder on the engine: ids kept or replaced, holds, fills."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kraken_sim.engine import Engine
from kraken_sim.errors import (
    INSUFFICIENT_FUNDS,
    ORDER_MINIMUM,
    POST_ONLY_REJECTED,
    TICK_SIZE,
    UNKNOWN_ORDER,
    invalid_arguments,
)
from tests.sim_engine.conftest import Clock, add, error_of, order

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000",
         "volume": "0.10000000"}  # fmt: skip


def _hold_usd(engine: Engine, account: str = "alice") -> Decimal:
    held = engine.private(account, "BalanceEx", {})["ZUSD"]["hold_trade"]
    return Decimal(held)


def _amend(engine: Engine, account: str = "alice", **params: Any) -> Any:
    return engine.private(account, "AmendOrder", params)


def test_amend_keeps_txid_and_cl_ord_id_and_changes_quantity_and_price(engine: Engine) -> None:
    txid = add(engine, **LIMIT, cl_ord_id="copy-1")
    reply = _amend(engine, cl_ord_id="copy-1", order_qty="0.2", limit_price="49000")
    assert set(reply) == {"amend_id"}
    amended = order(engine, txid)
    assert amended["status"] == "open"
    assert amended["cl_ord_id"] == "copy-1"
    assert (amended["vol"], amended["descr"]["price"]) == ("0.20000000", "49000.0")
    assert "amended" in amended["misc"].split(",")
    assert list(engine.private("alice", "OpenOrders", {})["open"]) == [txid]
    # The hold follows the new terms: 0.2 x 49000 = 9800, plus the 0.40 % taker fee.
    assert _hold_usd(engine) == Decimal("9839.2000")


def test_order_amends_lists_the_original_and_every_amend(engine: Engine, clock: Clock) -> None:
    txid = add(engine, **LIMIT)
    before = engine.private("alice", "OrderAmends", {"txid": txid})
    assert before["count"] == 1
    assert before["amends"][0]["amend_type"] == "original"
    clock.advance(20)
    first = _amend(engine, txid=txid, order_qty="0.15")["amend_id"]
    clock.advance(20)
    second = _amend(engine, txid=txid, limit_price="48000")["amend_id"]
    listed = engine.private("alice", "OrderAmends", {"txid": txid})
    assert listed["count"] == 3
    rows = listed["amends"]
    assert [r["amend_type"] for r in rows] == ["original", "user", "user"]
    assert rows[0]["amend_id"] == before["amends"][0]["amend_id"]
    assert [r["amend_id"] for r in rows[1:]] == [first, second]
    assert [r["order_qty"] for r in rows] == ["0.10000000", "0.15000000", "0.15000000"]
    assert [r["limit_price"] for r in rows] == ["50000.0", "50000.0", "48000.0"]
    assert rows[2]["remaining_qty"] == "0.15000000"


def test_amend_that_crosses_the_price_fills_the_order(engine: Engine) -> None:
    txid = add(engine, **LIMIT)
    _amend(engine, txid=txid, limit_price="60000")  # the price is 60000
    filled = order(engine, txid)
    assert (filled["status"], filled["vol_exec"]) == ("closed", "0.10000000")
    assert _hold_usd(engine) == 0


def test_post_only_amend_that_would_take_is_refused_and_changes_nothing(engine: Engine) -> None:
    txid = add(engine, **LIMIT, oflags="post")
    assert error_of(lambda: _amend(engine, txid=txid, limit_price="60000")) == POST_ONLY_REJECTED
    plain = add(engine, **LIMIT)
    assert error_of(lambda: _amend(engine, txid=plain, limit_price="60000", post_only=True)) == (
        POST_ONLY_REJECTED
    )
    assert order(engine, txid)["descr"]["price"] == "50000.0"
    assert "amended" not in order(engine, txid)["misc"]


def test_amend_refusals(engine: Engine) -> None:
    txid = add(engine, **LIMIT)
    assert error_of(lambda: _amend(engine, txid="ONOPE1-AAAAA-AAAAAA", order_qty="1")) == (
        UNKNOWN_ORDER
    )
    assert error_of(lambda: _amend(engine, txid=txid)) == invalid_arguments("order_qty")
    assert error_of(lambda: _amend(engine, txid=txid, limit_price="50000.05")) == TICK_SIZE
    assert error_of(lambda: _amend(engine, txid=txid, order_qty="0.00001")) == ORDER_MINIMUM
    assert error_of(lambda: _amend(engine, txid=txid, order_qty="10")) == INSUFFICIENT_FUNDS
    assert error_of(lambda: _amend(engine, txid=txid, trigger_price="1")) == invalid_arguments(
        "trigger_price"
    )
    assert order(engine, txid)["vol"] == "0.10000000"


def test_amend_a_stop_loss_limit_changes_trigger_and_limit(engine: Engine) -> None:
    txid = add(engine, pair="XBTUSD", type="sell", ordertype="stop-loss-limit", price="55000",
               price2="54900", volume="0.5")  # fmt: skip
    _amend(engine, txid=txid, trigger_price="56000", limit_price="55900")
    amended = order(engine, txid)
    assert (amended["stopprice"], amended["limitprice"]) == ("56000.0", "55900.0")


def test_edit_order_replaces_the_order_with_a_new_txid(engine: Engine) -> None:
    txid = add(engine, **LIMIT, userref=7)
    reply = engine.private("alice", "EditOrder", {"txid": txid, "pair": "XBTUSD",
                                                  "volume": "0.2", "price": "49000"})  # fmt: skip
    new = reply["txid"]
    assert new != txid
    assert reply["originaltxid"] == txid
    assert (reply["status"], reply["orders_cancelled"]) == ("ok", 1)
    assert (reply["volume"], reply["price"]) == ("0.20000000", "49000.0")
    assert (reply["olduserref"], reply["newuserref"]) == (7, 7)
    assert reply["descr"]["order"] == "buy 0.20000000 XBTUSD @ limit 49000.0"
    old = order(engine, txid)
    assert (old["status"], old["reason"]) == ("canceled", "Order replaced")
    assert order(engine, new)["status"] == "open"
    assert list(engine.private("alice", "OpenOrders", {})["open"]) == [new]
    assert _hold_usd(engine) == Decimal("9839.2000")


def test_edit_order_validate_changes_nothing_and_refusals(engine: Engine) -> None:
    txid = add(engine, **LIMIT)
    reply = engine.private("alice", "EditOrder", {"txid": txid, "pair": "XBTUSD",
                                                  "price": "49000", "validate": True})  # fmt: skip
    assert "txid" not in reply
    assert order(engine, txid)["status"] == "open"
    assert (
        error_of(
            lambda: engine.private(
                "alice", "EditOrder", {"txid": txid, "pair": "ETHUSD", "price": "1"}
            )
        )
        == UNKNOWN_ORDER
    )
    assert error_of(lambda: engine.private("alice", "EditOrder", {
        "txid": txid, "pair": "XBTUSD", "volume": "100"})) == INSUFFICIENT_FUNDS  # fmt: skip
    assert order(engine, txid)["status"] == "open"
