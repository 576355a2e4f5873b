"""The simulator's WebSocket v2 beyond the basic order lifecycle, against a real simulator process
over loopback: `amended` and `status` (a stop triggering) items frame by frame against Kraken's
captured frames (kraken-api.md §6), the `order_status` and `ratecounter` options, the
per-connection `sequence`, the `balances` channel, `late_visibility` on the socket, and the
socket faults (`ws_skip`, `ws_drop`, `ws_stall`)."""

from __future__ import annotations

import asyncio
import urllib.error
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from kraken_sim.websocket import HEARTBEAT_S
from tests.sim.ws_support import (
    TIMEOUT_S,
    Feed,
    add,
    in_thread,
    private,
    run,
    token_for,
    trader_accounts,
)
from tests.simproc import SimProcess, new_secret, running_sim

TRADER = ("wsc-trader-key", new_secret())
ACCOUNTS = trader_accounts("wsc", TRADER)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with running_sim(ACCOUNTS, "--seed", "21") as process:
        # Many REST calls in a row; the REST rate limit is not what these tests are about.
        process.control("limits", {"rest": False})
        yield process


@pytest.fixture(autouse=True)
def _clean(sim: SimProcess) -> Iterator[None]:
    """Each test starts with no fault armed, no open order and the price at 60000."""
    yield
    sim.control("faults/clear", {})
    private(sim, TRADER, "CancelAll", {})
    sim.control("price", {"pair": "XBTUSD", "price": "60000"})


def _token(sim: SimProcess) -> str:
    return token_for(sim, TRADER)


def _keys_except(item: dict[str, Any], *names: str) -> set[str]:
    return set(item) - set(names)


def test_amend_is_an_amended_item_shaped_like_krakens_frame(sim: SimProcess) -> None:
    """AmendOrder over REST: one `amended` update with exactly the fields of Kraken's captured
    frame (plus `cl_ord_id` when the order has one), carrying the new terms."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False)
        txid = await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        await feed.updates(2)
        amend = {"txid": txid, "order_qty": "0.02", "limit_price": "58500"}
        await in_thread(lambda: private(sim, TRADER, "AmendOrder", amend))
        (item,) = await feed.updates(1)
        # Kraken (KARS test_execution_order_amended): timestamp, exec_type, order_status,
        # cum_qty, reason, amended, order_qty, limit_price, limit_price_type, order_userref,
        # order_id.
        assert set(item) == {
            "timestamp", "exec_type", "order_status", "cum_qty", "reason", "amended",
            "order_qty", "limit_price", "limit_price_type", "order_userref", "order_id",
        }  # fmt: skip
        assert item["exec_type"] == "amended"
        assert item["order_status"] == "new"
        assert item["amended"] is True
        assert item["reason"] == "User requested"
        assert item["order_qty"] == Decimal("0.02")
        assert item["limit_price"] == Decimal("58500")
        assert item["limit_price_type"] == "static"
        assert item["cum_qty"] == 0
        assert item["order_id"] == txid

        # An amend that makes the limit marketable: amended first, then the fill.
        to_market = {"txid": txid, "limit_price": "60000"}
        await in_thread(lambda: private(sim, TRADER, "AmendOrder", to_market))
        items = await feed.updates(3)
        assert [i["exec_type"] for i in items] == ["amended", "trade", "filled"]
        assert items[0]["limit_price"] == Decimal("60000")
        assert items[1]["last_qty"] == Decimal("0.02")

    run(sim, body)


def test_stop_order_carries_its_trigger_and_reports_triggering(sim: SimProcess) -> None:
    """A stop-loss-limit's pending_new has `stop_price`, `trigger` and a `triggers` object as in
    Kraken's captured frame; when the price reaches the trigger a `status` item says
    `triggers.status` "triggered", then the order trades as a limit."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False)
        txid = await add(sim, TRADER, type="sell", volume="0.01", ordertype="stop-loss-limit",
                          price="59000", price2="58000")  # fmt: skip
        pending, new = await feed.updates(2)
        # Every field of Kraken's captured stop-loss-limit pending_new is there.
        assert {
            "order_id", "symbol", "order_qty", "cum_cost", "time_in_force", "exec_type", "side",
            "order_type", "order_userref", "limit_price_type", "triggers", "stop_price",
            "limit_price", "trigger", "order_status", "fee_usd_equiv", "fee_ccy_pref",
            "timestamp",
        } <= set(pending)  # fmt: skip
        assert pending["exec_type"] == "pending_new"
        assert pending["order_type"] == "stop-loss-limit"
        assert pending["stop_price"] == Decimal("59000")
        assert pending["limit_price"] == Decimal("58000")
        assert pending["trigger"] == "last"
        assert pending["triggers"] == {
            "price": Decimal("59000"), "price_type": "static", "reference": "last",
            "status": "untriggered",
        }  # fmt: skip
        assert new["triggers"]["status"] == "untriggered"
        await in_thread(lambda: sim.control("price", {"pair": "XBTUSD", "price": "58900"}))
        status, trade, filled = await feed.updates(3)
        assert (status["exec_type"], status["order_status"]) == ("status", "new")
        assert status["order_id"] == txid
        assert status["triggers"]["status"] == "triggered"
        assert status["triggers"]["timestamp"].endswith("Z")
        assert status["stop_price"] == Decimal("59000")
        assert (trade["exec_type"], trade["last_price"]) == ("trade", Decimal("58900"))
        assert filled["exec_type"] == "filled"

    run(sim, body)


def test_order_status_false_streams_only_open_and_close(sim: SimProcess) -> None:
    """With `order_status: false`: no pending_new and no amended; new, trades, filled and
    canceled still come."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False, order_status=False)
        txid = await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        (new,) = await feed.updates(1)
        assert (new["exec_type"], new["order_id"]) == ("new", txid)
        amend = {"txid": txid, "order_qty": "0.03"}
        await in_thread(lambda: private(sim, TRADER, "AmendOrder", amend))
        await in_thread(lambda: private(sim, TRADER, "CancelOrder", {"txid": txid}))
        (canceled,) = await feed.updates(1)  # the amend sent nothing
        assert (canceled["exec_type"], canceled["order_id"]) == ("canceled", txid)
        market = await add(sim, TRADER, type="buy", volume="0.01", ordertype="market")
        items = await feed.updates(3)
        assert [i["exec_type"] for i in items] == ["new", "trade", "filled"]
        assert {i["order_id"] for i in items} == {market}

    run(sim, body)


def test_ratecounter_adds_the_engines_counter_to_items(sim: SimProcess) -> None:
    """With `ratecounter: true` every item carries `ratecount`, the account's matching-engine
    counter on the pair (which earlier tests have raised): placing adds 1, cancelling a
    young order adds 8 (Kraken's table)."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False, ratecounter=True)
        txid = await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        pending, new = await feed.updates(2)
        assert pending["ratecount"] >= 1  # AddOrder has been charged
        await in_thread(lambda: private(sim, TRADER, "CancelOrder", {"txid": txid}))
        (canceled,) = await feed.updates(1)
        assert canceled["ratecount"] > new["ratecount"] + 7

    run(sim, body)
    # Without the option there is no ratecount.
    token = _token(sim)

    async def plain(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False)
        await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        assert all("ratecount" not in item for item in await feed.updates(2))

    run(sim, plain)


def test_sequence_runs_per_connection_across_resubscribes(sim: SimProcess) -> None:
    """The sequence is the connection's: unsubscribe and subscribe again, and the new snapshot
    continues the count instead of starting at 1."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token)
        first = await feed.next()
        assert (first["type"], first["sequence"]) == ("snapshot", 1)
        await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        await feed.updates(2)
        assert feed.sequence == 3
        await feed.send({"method": "unsubscribe",
                         "params": {"channel": "executions", "token": token}})  # fmt: skip
        assert (await feed.next())["method"] == "unsubscribe"
        await feed.subscribe(token)
        again = await feed.next()
        assert (again["type"], again["sequence"]) == ("snapshot", 4)
        assert len(again["data"]) == 1

    run(sim, body)


def test_deprecated_snapshot_trades_means_trades_only(sim: SimProcess) -> None:
    """`snapshot_trades: true` (Kraken's deprecated option): a snapshot of fills only."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await add(sim, TRADER, type="buy", volume="0.001", price="61000")  # fills at once
        await add(sim, TRADER, type="buy", volume="0.01", price="40000")  # rests
        await feed.subscribe(token, snapshot_trades=True)
        snapshot = await feed.next()
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"]
        assert all(item["exec_type"] == "trade" for item in snapshot["data"])

    run(sim, body)


def _rest_balances(sim: SimProcess) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in private(sim, TRADER, "Balance", {}).items()}


def test_balances_snapshot_and_an_update_per_ledger_entry(sim: SimProcess) -> None:
    """`balances`: the ack, a snapshot equal to REST Balance, then on a fill one update with the
    trade's two ledger entries (the ids REST Ledgers shows), each with the new balance."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        before = await in_thread(lambda: _rest_balances(sim))
        params = {"channel": "balances", "token": token}
        await feed.send({"method": "subscribe", "params": params, "req_id": 3})
        ack = await feed.next()
        assert ack["success"] is True
        assert ack["result"] == {"channel": "balances", "snapshot": True}
        snapshot = await feed.next()
        assert (snapshot["channel"], snapshot["type"]) == ("balances", "snapshot")
        shown = {row["asset"]: row for row in snapshot["data"]}
        assert shown["USD"]["balance"] == before["ZUSD"]
        assert shown["BTC"]["balance"] == before["XXBT"]
        assert shown["BTC"]["wallets"] == [{"type": "spot", "id": "main",
                                            "balance": before["XXBT"]}]  # fmt: skip
        txid = await add(sim, TRADER, type="buy", volume="0.01", ordertype="market")
        update = await feed.next()
        assert (update["channel"], update["type"]) == ("balances", "update")
        base, quote = update["data"]
        after = await in_thread(lambda: _rest_balances(sim))
        assert (base["asset"], base["balance"]) == ("BTC", after["XXBT"])
        assert (quote["asset"], quote["balance"]) == ("USD", after["ZUSD"])
        assert base["amount"] == Decimal("0.01")
        assert quote["amount"] == -Decimal("600")
        assert quote["fee"] > 0
        assert base["ref_id"] == quote["ref_id"]
        assert base["type"] == base["category"] == "trade"
        query = {"txid": txid, "trades": True}
        orders = await in_thread(lambda: private(sim, TRADER, "QueryOrders", query))
        assert orders[txid]["trades"] == [base["ref_id"]]
        ledger = (await in_thread(lambda: private(sim, TRADER, "Ledgers", {})))["ledger"]
        assert {base["ledger_id"], quote["ledger_id"]} <= set(ledger)

    run(sim, body)


def test_late_visibility_holds_the_orders_frames_back(sim: SimProcess) -> None:
    """An order a late_visibility fault hides from REST is not on the socket either: nothing
    about it (only heartbeats) until the simulator's clock passes the delay, then its
    pending_new and new, in order; a snapshot taken meanwhile leaves it out."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False)
        fault = {"endpoint": "AddOrder", "kind": "late_visibility", "delay_s": 30}
        await in_thread(lambda: sim.control("fault", fault))
        txid = await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        heartbeat = await feed.next(skip=("status",))
        assert heartbeat == {"channel": "heartbeat"}
        visible = await add(sim, TRADER, type="buy", volume="0.01", price="58000")
        items = await feed.updates(2)  # the visible order's frames are not held back
        assert {i["order_id"] for i in items} == {visible}
        open_now = (await in_thread(lambda: private(sim, TRADER, "OpenOrders", {})))["open"]
        assert txid not in open_now

        async def second(other: Feed) -> None:
            await other.subscribe(token)
            snapshot = await other.next()
            assert [i["order_id"] for i in snapshot["data"]] == [visible]

        await asyncio.to_thread(run, sim, second)
        await in_thread(lambda: sim.control("clock", {"advance_s": 31}))
        pending, new = await feed.updates(2)
        assert (pending["exec_type"], new["exec_type"]) == ("pending_new", "new")
        assert pending["order_id"] == new["order_id"] == txid

    run(sim, body)


def test_ws_skip_leaves_a_sequence_gap(sim: SimProcess) -> None:
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False)
        fault = {"endpoint": "ws:executions", "kind": "ws_skip"}
        await in_thread(lambda: sim.control("fault", fault))
        await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        frame = await feed.next()
        assert frame["data"][0]["exec_type"] == "new"  # pending_new was skipped
        assert frame["sequence"] == 2  # sequence 1 never arrived

    run(sim, body)


def test_ws_drop_closes_the_connection(sim: SimProcess) -> None:
    """The line drops: no close frame, the client sees an abnormal closure (1006)."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False)
        fault = {"endpoint": "ws:executions", "kind": "ws_drop"}
        await in_thread(lambda: sim.control("fault", fault))
        await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        message = await asyncio.wait_for(feed.ws.receive(), TIMEOUT_S)
        while message.type is aiohttp.WSMsgType.TEXT and "heartbeat" in message.data:
            message = await asyncio.wait_for(feed.ws.receive(), TIMEOUT_S)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert feed.ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE

    run(sim, body)


def test_ws_stall_goes_silent_without_closing(sim: SimProcess) -> None:
    """After the stall fires: no frame, no heartbeat, no pong, while the socket stays open."""
    token = _token(sim)

    async def body(feed: Feed) -> None:
        await feed.subscribe(token, snap_orders=False)
        fault = {"endpoint": "ws:executions", "kind": "ws_stall"}
        await in_thread(lambda: sim.control("fault", fault))
        await add(sim, TRADER, type="buy", volume="0.01", price="59000")
        await feed.send({"method": "ping", "req_id": 5})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(feed.ws.receive(), 3 * HEARTBEAT_S)
        assert not feed.ws.closed

    run(sim, body)


@pytest.mark.parametrize(
    "spec",
    [
        {"endpoint": "AddOrder", "kind": "ws_drop"},
        {"endpoint": "*", "kind": "ws_skip"},
        {"endpoint": "ws:executions", "kind": "http502"},
        {"endpoint": "ws:book", "kind": "ws_stall"},
    ],
)
def test_socket_fault_specs_are_checked(sim: SimProcess, spec: dict[str, Any]) -> None:
    """Socket kinds only for ws:executions / ws:balances, and only socket kinds there."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        sim.control("fault", spec)
    assert refused.value.code == 400
    assert "WebSocket" in refused.value.read().decode()
