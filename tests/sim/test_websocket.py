"""The simulator's private WebSocket v2 `executions` feed, against a real simulator process: a
token from krakenex's GetWebSocketsToken, an aiohttp client on ws://127.0.0.1:PORT/v2, orders
placed and cancelled over REST by krakenex, prices moved through /sim/price."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.sim.ws_support import (
    Feed,
    add,
    in_thread,
    private,
    run,
    token_for,
)
from tests.simproc import SimProcess, new_secret, running_sim

TRADER = ("ws-trader-key", new_secret())
OTHER_KEY = ("ws-other-key", new_secret())  # a second key of the same account
ACCOUNTS = f"""
[[accounts]]
name = "ws"
key = "{TRADER[0]}"
secret = "{TRADER[1]}"
tier = "pro"
balances = {{ ZUSD = "100000", XXBT = "2" }}

[[accounts.keys]]
key = "{OTHER_KEY[0]}"
secret = "{OTHER_KEY[1]}"

[prices]
XXBTZUSD = "60000"
"""


@pytest.fixture(scope="module")
def ws_sim() -> Iterator[SimProcess]:
    with running_sim(ACCOUNTS, "--seed", "11") as process:
        yield process


def _token(sim: SimProcess) -> str:
    return token_for(sim, TRADER)


def test_status_ping_and_heartbeat(ws_sim: SimProcess) -> None:
    """The first frame is a status update; ping gets pong with the req_id; once subscribed, a
    heartbeat arrives about once a second."""
    token = _token(ws_sim)

    async def body(feed: Feed) -> None:
        status = await feed.next(skip=())
        assert status["channel"] == "status"
        assert status["data"][0]["system"] == "online"
        await feed.send({"method": "ping", "req_id": 101})
        pong = await feed.next()
        assert pong["method"] == "pong"
        assert pong["req_id"] == 101
        assert pong["time_in"].endswith("Z")
        assert pong["time_out"].endswith("Z")
        ack = await feed.subscribe(token, snap_orders=False)
        assert ack["success"] is True
        heartbeat = await feed.next(skip=("status",))
        assert heartbeat == {"channel": "heartbeat"}
        params = {"channel": "executions", "token": token}
        await feed.send({"method": "unsubscribe", "params": params, "req_id": 3})
        unsub = await feed.next()
        assert unsub["method"] == "unsubscribe"
        assert unsub["success"] is True
        assert unsub["result"] == {"channel": "executions"}

    run(ws_sim, body)


def test_bad_token_gets_kraken_error(ws_sim: SimProcess) -> None:
    async def body(feed: Feed) -> None:
        reply = await feed.subscribe("not-a-token")
        assert reply["method"] == "subscribe"
        assert reply["req_id"] == 7
        assert reply["success"] is False
        assert reply["error"] == "ESession:Invalid session"
        assert "result" not in reply

    run(ws_sim, body)


def test_order_lifecycle_from_any_key(ws_sim: SimProcess) -> None:
    """Ack and snapshot; a resting GTC and a marketable IOC placed over REST (one per key of the
    account); the price move that fills the GTC; a cancel; sequences keep increasing."""
    token = _token(ws_sim)

    async def body(feed: Feed) -> None:
        ack = await feed.subscribe(token, snap_orders=True, snap_trades=False)
        assert ack["method"] == "subscribe"
        assert ack["success"] is True
        assert ack["req_id"] == 7
        assert ack["result"]["channel"] == "executions"
        assert ack["result"]["snapshot"] is True
        assert ack["result"]["maxratecount"] == 180  # the pro tier's threshold
        snapshot = await feed.next()
        assert snapshot["type"] == "snapshot"
        assert snapshot["sequence"] == 1
        assert snapshot["data"] == []  # nothing open yet

        # A resting GTC buy below the market: pending_new, then new.
        gtc = await add(ws_sim, TRADER, type="buy", volume="0.01", price="59000",
                         cl_ord_id="ws-gtc-1")  # fmt: skip
        pending, new = await feed.updates(2)
        for item, kind in ((pending, "pending_new"), (new, "new")):
            assert item["exec_type"] == kind
            assert item["order_status"] == kind
            assert item["order_id"] == gtc
            assert item["symbol"] == "BTC/USD"
            assert item["side"] == "buy"
            assert item["order_type"] == "limit"
            assert item["order_qty"] == Decimal("0.01")
            assert item["limit_price"] == Decimal("59000")
            assert item["time_in_force"] == "GTC"
            assert item["cl_ord_id"] == "ws-gtc-1"
            assert item["order_userref"] == 0
            assert item["timestamp"].endswith("Z")

        # A marketable IOC sell, through the account's other key: fills at once at 60000.
        ioc = await add(ws_sim, OTHER_KEY, type="sell", volume="0.02", price="59500",
                         timeinforce="IOC", userref="42")  # fmt: skip
        items = await feed.updates(4)
        assert [i["exec_type"] for i in items] == ["pending_new", "new", "trade", "filled"]
        assert all(i["order_id"] == ioc for i in items)
        assert items[0]["time_in_force"] == "IOC"
        assert items[0]["order_userref"] == 42
        trade = items[2]
        assert trade["last_qty"] == Decimal("0.02")
        assert trade["last_price"] == Decimal("60000")
        assert trade["cost"] == Decimal("1200")
        assert trade["liquidity_ind"] == "t"
        assert trade["order_status"] == "filled"
        assert trade["side"] == "sell"
        assert trade["fees"][0]["asset"] == "USD"
        assert trade["fees"][0]["qty"] > 0
        assert trade["exec_id"]
        assert items[3]["order_status"] == "filled"
        assert items[3]["cum_qty"] == Decimal("0.02")

        # The market falls to the GTC's limit: it fills there as maker.
        await in_thread(lambda: ws_sim.control("price", {"pair": "XBTUSD", "price": "59000"}))
        trade, filled = await feed.updates(2)
        assert trade["exec_type"] == "trade"
        assert trade["order_id"] == gtc
        assert trade["last_price"] == Decimal("59000")
        assert trade["liquidity_ind"] == "m"
        assert trade["last_qty"] == Decimal("0.01")
        assert trade["cost"] == Decimal("590")
        assert filled["exec_type"] == "filled"
        assert filled["order_id"] == gtc

        # Another resting order, cancelled over REST.
        resting = await add(ws_sim, TRADER, type="buy", volume="0.01", price="50000")
        await feed.updates(2)
        await in_thread(lambda: private(ws_sim, OTHER_KEY, "CancelOrder", {"txid": resting}))
        (canceled,) = await feed.updates(1)
        assert canceled["exec_type"] == "canceled"
        assert canceled["order_status"] == "canceled"
        assert canceled["order_id"] == resting
        assert canceled["reason"] == "User requested"

        # The snapshot of a new subscription on a second socket shows open orders.
        await add(ws_sim, TRADER, type="sell", volume="0.01", price="70000")
        await feed.updates(2)
        await in_thread(lambda: private(ws_sim, TRADER, "CancelAll", {}))
        (all_canceled,) = await feed.updates(1)
        assert all_canceled["exec_type"] == "canceled"
        await feed.send({"method": "ping"})
        assert (await feed.next())["method"] == "pong"

    run(ws_sim, body)


def test_sequence_increases_and_snapshot_lists_open_orders(ws_sim: SimProcess) -> None:
    token = _token(ws_sim)

    async def body(feed: Feed) -> None:
        await add(ws_sim, TRADER, type="buy", volume="0.001", price="90000")  # fills at once
        open_id = await add(ws_sim, TRADER, type="buy", volume="0.01", price="40000")
        ack = await feed.subscribe(token, snap_orders=True, snap_trades=True)
        assert ack["success"] is True
        snapshot = await feed.next()
        assert snapshot["type"] == "snapshot"
        assert snapshot["sequence"] == 1
        orders = [item for item in snapshot["data"] if "exec_id" not in item]
        trades = [item for item in snapshot["data"] if "exec_id" in item]
        assert [o["order_id"] for o in orders] == [open_id]
        assert orders[0]["order_status"] == "new"
        assert orders[0]["limit_price"] == Decimal("40000")
        assert trades
        assert all(t["exec_type"] == "trade" for t in trades)
        assert trades[-1]["last_qty"] == Decimal("0.001")
        await in_thread(lambda: private(ws_sim, TRADER, "CancelOrder", {"txid": open_id}))
        frame = await feed.next()
        assert frame["type"] == "update"
        assert frame["sequence"] == 2
        assert frame["data"][0]["exec_type"] == "canceled"

    run(ws_sim, body)


def test_expiry_is_pushed_without_a_request(ws_sim: SimProcess) -> None:
    """A GTD order whose time passes is reported `expired` by the feed itself (the simulator
    applies expiries on the socket's quiet seconds, not only on the next REST request)."""
    token = _token(ws_sim)

    async def body(feed: Feed) -> None:
        ack = await feed.subscribe(token, snap_orders=False)
        assert ack["success"] is True
        gtd = await add(ws_sim, TRADER, type="buy", volume="0.01", price="30000",
                         timeinforce="GTD", expiretm="+60")  # fmt: skip
        pending, new = await feed.updates(2)
        assert pending["time_in_force"] == "GTD"
        assert new["order_id"] == gtd
        await in_thread(lambda: ws_sim.control("clock", {"advance_s": 61}))
        (expired,) = await feed.updates(1)
        assert expired["exec_type"] == "expired"
        assert expired["order_status"] == "expired"
        assert expired["order_id"] == gtd

    run(ws_sim, body)


def test_a_partial_fill_is_partially_filled_with_the_orders_totals() -> None:
    """With books, a resting buy filled in two parts by outside trades: the first trade item
    says partially_filled with the order's totals so far, the second completes it (filled,
    cumulative quantity and cost of both trades), then a `filled` update follows."""
    with running_sim(ACCOUNTS + "\n[books]\n", "--seed", "12") as sim:
        token = _token(sim)

        async def body(feed: Feed) -> None:
            await feed.subscribe(token, snap_orders=False)
            txid = await add(sim, TRADER, type="buy", volume="0.3", price="59000")
            await feed.updates(2)  # pending_new, new
            trade = {"pair": "XBTUSD", "side": "sell", "price": "59000", "volume": "0.1"}
            await in_thread(lambda: sim.control("trade", trade))
            (first,) = await feed.updates(1)
            assert (first["exec_type"], first["order_status"]) == ("trade", "partially_filled")
            assert first["order_id"] == txid
            assert (first["last_qty"], first["cum_qty"]) == (Decimal("0.1"), Decimal("0.1"))
            assert first["cum_cost"] == Decimal("5900")
            await in_thread(lambda: sim.control("trade", trade | {"volume": "0.5"}))
            second, filled = await feed.updates(2)
            assert (second["exec_type"], second["order_status"]) == ("trade", "filled")
            assert (second["last_qty"], second["cum_qty"]) == (Decimal("0.2"), Decimal("0.3"))
            assert second["cum_cost"] == Decimal("17700")
            assert second["avg_price"] == Decimal("59000")
            assert (filled["exec_type"], filled["cum_qty"]) == ("filled", Decimal("0.3"))

        run(sim, body)
