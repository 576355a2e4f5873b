"""Trading over the simulator's WebSocket v2 (add_order, amend_order, edit_order, cancel_order,
cancel_all, cancel_all_orders_after, batch_add, batch_cancel), against a real simulator
process: each request's reply in Kraken's shape (kraken-api.md §6), and the engine's state as
REST (krakenex) then shows it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.sim.ws_support import Feed, in_thread, private, run, token_for, trader_accounts
from tests.simproc import SimProcess, new_secret, running_sim

TRADER = ("wst-trader-key", new_secret())
READER = ("wst-reader-key", new_secret())  # the same account; may read and subscribe, not trade
ACCOUNTS = trader_accounts("wst", TRADER).replace(
    "[prices]",
    f"""[[accounts.keys]]
key = "{READER[0]}"
secret = "{READER[1]}"
permissions = ["query_funds", "query_orders", "websocket"]

[prices]""",
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with running_sim(ACCOUNTS, "--seed", "31") as process:
        # Many REST calls in a row; the REST rate limit is not what these tests are about.
        process.control("limits", {"rest": False})
        yield process


@pytest.fixture(autouse=True)
def _clean(sim: SimProcess) -> Iterator[None]:
    yield
    private(sim, TRADER, "CancelAll", {})
    private(sim, TRADER, "CancelAllOrdersAfter", {"timeout": 0})


def _token(sim: SimProcess) -> str:
    return token_for(sim, TRADER)


async def _call(feed: Feed, token: str, method: str, req_id: int, **params: Any) -> Any:
    await feed.send({"method": method, "params": {**params, "token": token}, "req_id": req_id})
    return await feed.next()


def _query(sim: SimProcess, txid: str) -> Any:
    return private(sim, TRADER, "QueryOrders", {"txid": txid})[txid]


def test_add_order_reply_and_the_order_it_places(sim: SimProcess) -> None:
    """Kraken's request and reply shapes; the order on the engine has the request's terms."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        reply = await _call(feed, token, "add_order", 4, order_type="limit", side="buy",
                            symbol="BTC/USD", limit_price=59000.5, order_qty=0.0125,
                            time_in_force="gtc", post_only=True, fee_preference="quote",
                            cl_ord_id="ws-add-1")  # fmt: skip
        assert set(reply) == {"method", "req_id", "result", "success", "time_in", "time_out"}, reply
        assert (reply["method"], reply["req_id"], reply["success"]) == ("add_order", 4, True)
        txid = reply["result"]["order_id"]
        assert reply["result"] == {"order_id": txid, "cl_ord_id": "ws-add-1"}
        order = await in_thread(lambda: _query(sim, txid))
        assert order["status"] == "open"
        assert order["cl_ord_id"] == "ws-add-1"
        assert Decimal(order["vol"]) == Decimal("0.0125")
        assert Decimal(order["descr"]["price"]) == Decimal("59000.5")
        assert "post" in order["oflags"]

    run(sim, body)


def test_a_token_trades_only_with_its_keys_rights(sim: SimProcess) -> None:
    """A token from a key without *Create & Modify Orders* or *Cancel/Close Orders*: trading
    over the socket is refused as REST refuses it, and nothing reaches the engine."""
    token = token_for(sim, READER)

    async def body(feed: Feed) -> None:
        reply = await _call(feed, token, "add_order", 6, order_type="limit", side="buy",
                            symbol="BTC/USD", limit_price=59000, order_qty=0.01,
                            cl_ord_id="ws-denied-1")  # fmt: skip
        assert (reply["success"], reply["error"]) == (False, "EGeneral:Permission denied")
        reply = await _call(feed, token, "cancel_all", 7)
        assert (reply["success"], reply["error"]) == (False, "EGeneral:Permission denied")
        open_orders = await in_thread(lambda: private(sim, TRADER, "OpenOrders", {}))
        assert open_orders["open"] == {}

    run(sim, body)


def test_trading_errors_are_one_string(sim: SimProcess) -> None:
    """A refused request: `error` is one string (not REST's list) and success is false."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        reply = await _call(feed, token, "add_order", 5, order_type="limit", side="buy",
                            symbol="BTC/USD", limit_price=59000, order_qty=100)  # fmt: skip
        assert reply["success"] is False
        assert reply["error"] == "EOrder:Insufficient funds"
        assert "result" not in reply
        bad = await _call(feed, "not-a-token", "cancel_all", 6)
        assert (bad["success"], bad["error"]) == (False, "ESession:Invalid session")
        margin = await _call(feed, token, "add_order", 7, order_type="market", side="buy",
                             symbol="BTC/USD", order_qty=0.01, margin=True)  # fmt: skip
        assert margin["error"] == "EGeneral:Invalid arguments:margin"

    run(sim, body)


def test_amend_edit_and_cancel(sim: SimProcess) -> None:
    """amend_order keeps the order (REST OrderAmends lists it), edit_order replaces it,
    cancel_order answers once per id."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        add = {"order_type": "limit", "side": "buy", "symbol": "BTC/USD", "order_qty": 0.01}
        first = (await _call(feed, token, "add_order", 1, **add, limit_price=58000,
                             cl_ord_id="ws-amend"))["result"]["order_id"]  # fmt: skip
        amended = await _call(feed, token, "amend_order", 2, cl_ord_id="ws-amend",
                              order_qty=0.02, limit_price=57000)  # fmt: skip
        assert amended["success"] is True
        assert set(amended["result"]) == {"amend_id", "cl_ord_id"}
        amends = await in_thread(lambda: private(sim, TRADER, "OrderAmends", {"txid": first}))
        assert amends["count"] == 2
        assert amends["amends"][-1]["amend_id"] == amended["result"]["amend_id"]
        order = await in_thread(lambda: _query(sim, first))
        assert Decimal(order["vol"]) == Decimal("0.02")

        edited = await _call(feed, token, "edit_order", 3, order_id=first, symbol="BTC/USD",
                             limit_price=56000)  # fmt: skip
        new_id = edited["result"]["order_id"]
        assert edited["result"] == {"order_id": new_id, "original_order_id": first}
        assert (await in_thread(lambda: _query(sim, first)))["status"] == "canceled"

        second = (await _call(feed, token, "add_order", 4, **add,
                              limit_price=55000))["result"]["order_id"]  # fmt: skip
        await feed.send({"method": "cancel_order", "req_id": 5,
                         "params": {"order_id": [new_id, second], "token": token}})  # fmt: skip
        replies = [await feed.next(), await feed.next()]
        assert [r["result"] for r in replies] == [{"order_id": new_id}, {"order_id": second}]
        assert all(r["req_id"] == 5 and r["success"] for r in replies)
        statuses = await in_thread(
            lambda: [_query(sim, txid)["status"] for txid in (new_id, second)]
        )
        assert statuses == ["canceled", "canceled"]

    run(sim, body)


def test_batches_stops_and_the_dead_man_switch(sim: SimProcess) -> None:
    """batch_add places both orders (a stop-loss-limit through `triggers`), batch_cancel cancels
    them; cancel_all_orders_after arms the switch, which then cancels what is open."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        orders = [
            {"order_type": "limit", "side": "buy", "order_qty": 0.01, "limit_price": 50000,
             "cl_ord_id": "ws-batch-1"},
            {"order_type": "stop-loss-limit", "side": "sell", "order_qty": 0.01,
             "triggers": {"reference": "last", "price": 55000, "price_type": "static"},
             "limit_price": 54000},
        ]  # fmt: skip
        batch = await _call(feed, token, "batch_add", 1, symbol="BTC/USD", orders=orders)
        assert batch["success"] is True
        limit, stop = batch["result"]
        assert limit["cl_ord_id"] == "ws-batch-1"
        stop_order = await in_thread(lambda: _query(sim, stop["order_id"]))
        assert stop_order["descr"]["ordertype"] == "stop-loss-limit"
        assert Decimal(stop_order["descr"]["price"]) == Decimal("55000")
        assert Decimal(stop_order["descr"]["price2"]) == Decimal("54000")
        cancelled = await _call(feed, token, "batch_cancel", 2,
                                orders=[limit["order_id"], stop["order_id"]])  # fmt: skip
        assert cancelled["result"] == {"count": 2}

        switch = await _call(feed, token, "cancel_all_orders_after", 3, timeout=60)
        assert set(switch["result"]) == {"currentTime", "triggerTime"}
        placed = await _call(feed, token, "add_order", 4, order_type="limit", side="buy",
                             symbol="BTC/USD", order_qty=0.01, limit_price=50000,
                             order_userref=77)  # fmt: skip
        resting = placed["result"]["order_id"]
        assert placed["result"] == {"order_id": resting, "order_userref": 77}
        await in_thread(lambda: sim.control("clock", {"advance_s": 61}))
        order = await in_thread(lambda: _query(sim, resting))
        assert (order["status"], order["reason"]) == ("canceled", "Dead man switch")
        none_left = await _call(feed, token, "cancel_all", 5)
        assert none_left["result"] == {"count": 0}

    run(sim, body)
