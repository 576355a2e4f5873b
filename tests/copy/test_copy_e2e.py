"""The daemon, as a subprocess against the simulator, mirrors master orders onto every user."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any

import pytest

from tests.copy.harness import CopyWorld, DaemonProcess, SimUser, copy_world, wait_until

MASTER = {"ZUSD": "100000", "XXBT": "2"}
ALICE = SimUser("alice", {"ZUSD": "30000", "XXBT": "0.6"})
BOB = SimUser("bob", {"ZUSD": "7000", "XXBT": "0.1"})
CAROL = SimUser("carol", {"ZUSD": "20000", "XXBT": "0.3"}, max_order_fraction="0.01")
LOT = Decimal("0.00000001")


def floor_lot(value: Decimal) -> Decimal:
    return value.quantize(LOT, rounding=ROUND_DOWN)


@pytest.fixture
def world() -> Iterator[CopyWorld]:
    with copy_world([ALICE, BOB, CAROL], master_balances=MASTER) as world:
        yield world


def reference_price(params: dict[str, str], master_order: dict[str, Any]) -> Decimal:
    """The price a copy's cost is estimated at: limit, trigger, or the master's fill price."""
    kind = params["ordertype"]
    if kind == "market":
        return Decimal(master_order["price"])
    if kind.endswith("-limit"):
        return Decimal(params["price2"])
    return Decimal(params["price"])


def expected_volumes(
    world: CopyWorld, params: dict[str, str], before: dict[str, Any], master_order: dict[str, Any]
) -> dict[str, Decimal]:
    """Independent arithmetic of the sizing rules, from balances read with the test's keys."""
    volume = Decimal(params["volume"])
    price = reference_price(params, master_order)
    expected = {}
    with localcontext() as ctx:
        ctx.prec = 60
        for user in world.users:
            mine = before[user.user_id]
            if params["type"] == "buy":
                raw = volume * mine["equity"] / before["master"]["equity"]
            else:
                raw = volume * mine["xbt"] / before["master"]["xbt"]
                raw = min(raw, mine["xbt_available"])
            if user.max_order_fraction is not None:
                raw = min(raw, Decimal(user.max_order_fraction) * mine["equity"] / price)
            expected[user.user_id] = floor_lot(raw)
    return expected


def snapshot(world: CopyWorld) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for account in ["master", *(u.user_id for u in world.users)]:
        xbt = world.balance_ex(account).get(
            "XXBT", {"balance": Decimal(0), "hold_trade": Decimal(0)}
        )
        found[account] = {
            "equity": world.equity(account),
            "xbt": xbt["balance"],
            "xbt_available": xbt["balance"] - xbt["hold_trade"],
        }
    return found


def copies_of(daemon: DaemonProcess, txid: str) -> dict[str, dict[str, Any]]:
    return {e["user"]: e for e in daemon.named("copy.placed") if e["master_txid"] == txid}


# Waves of master orders whose copies' sizes do not depend on each other: resting orders change
# neither equity nor total holdings, so a wave can go out at once (the daemon's MASTER key is
# rate-limited like Kraken's: each poll costs two calls).
WAVES: list[list[dict[str, str]]] = [
    [{"type": "buy", "ordertype": "market", "volume": "0.1"}],
    [
        {"type": "buy", "ordertype": "limit", "volume": "0.2", "price": "55000.0",
         "oflags": "post", "timeinforce": "GTD", "expiretm": "+3600"},
        {"type": "buy", "ordertype": "stop-loss", "volume": "0.05", "price": "70000"},
        {"type": "buy", "ordertype": "take-profit", "volume": "0.05", "price": "50000"},
        {"type": "buy", "ordertype": "stop-loss-limit", "volume": "0.04", "price": "70000",
         "price2": "70100"},
        {"type": "buy", "ordertype": "take-profit-limit", "volume": "0.03", "price": "50000",
         "price2": "50100"},
    ],
    [
        {"type": "sell", "ordertype": "limit", "volume": "0.1", "price": "65000.5"},
        {"type": "sell", "ordertype": "stop-loss", "volume": "0.05", "price": "50000"},
        {"type": "sell", "ordertype": "take-profit", "volume": "0.05", "price": "70000"},
        {"type": "sell", "ordertype": "stop-loss-limit", "volume": "0.04", "price": "50000",
         "price2": "49900"},
        {"type": "sell", "ordertype": "take-profit-limit", "volume": "0.03", "price": "70000",
         "price2": "69900"},
    ],
    [{"type": "sell", "ordertype": "market", "volume": "0.2"}],
]  # fmt: skip


def test_every_order_type_is_copied_to_every_user_with_exact_volume(world: CopyWorld) -> None:
    """Market, limit, stop and take-profit (plain and -limit), buys and sells: each copy has the
    master's type, side, prices, flags and time-in-force, and the volume the sizing rules give,
    to the last decimal, for users with and without a cost cap."""
    daemon = world.start_daemon()
    for wave in WAVES:
        before = snapshot(world)
        txids = [world.place_master(pair="XBTUSD", **params) for params in wave]
        # The master's equity is taken when the daemon sees the orders (after a market buy's
        # fee); its holding for sells is the one before the sell.
        before["master"]["equity"] = world.equity("master")
        masters = world.reader("master").private("QueryOrders", {"txid": ",".join(txids)})
        for txid in txids:
            summary = world.summary(daemon, txid)
            assert (summary["placed"], summary["users"]) == (3, 3), summary
        placed = {txid: copies_of(daemon, txid) for txid in txids}
        for user in world.users:
            ids = ",".join(placed[txid][user.user_id]["txid"] for txid in txids)
            copies = world.reader(user.user_id).private("QueryOrders", {"txid": ids})
            for txid, params in zip(txids, wave, strict=True):
                expected = expected_volumes(world, params, before, masters[txid])
                event = placed[txid][user.user_id]
                copy = copies[event["txid"]]
                descr = copy["descr"]
                assert Decimal(copy["vol"]) == expected[user.user_id], (user.user_id, params)
                assert (descr["type"], descr["ordertype"], descr["pair"]) == (
                    params["type"], params["ordertype"], "XBTUSD")  # fmt: skip
                assert copy["cl_ord_id"] == event["cl_ord_id"]
                if "price" in params:
                    assert Decimal(descr["price"]) == Decimal(params["price"])
                if "price2" in params:
                    assert Decimal(descr["price2"]) == Decimal(params["price2"])
                if params.get("oflags") == "post":
                    assert "post" in copy["oflags"].split(",")
                if params.get("timeinforce") == "GTD":
                    # whole seconds on the wire, never later than the master's expiry
                    assert copy["expiretm"] == int(masters[txid]["expiretm"])
    assert daemon.named("copy.failed") == []
    assert daemon.stop() == 0


def test_master_cancel_cancels_copies_and_a_user_without_funds_fails_alone() -> None:
    """A user with no dollars fails to copy a buy while the others copy it; when the master
    cancels, the placed copies are cancelled on the exchange."""
    broke = SimUser("dora", {"ZUSD": "0", "XXBT": "1"})
    with copy_world([ALICE, broke, BOB], master_balances=MASTER) as world:
        daemon = world.start_daemon()
        txid = world.place_master(pair="XBTUSD", type="buy", ordertype="limit", volume="0.5",
                                  price="50000")  # fmt: skip
        summary = world.summary(daemon, txid)
        assert (summary["placed"], summary["failed"]) == (2, 1)
        failed = [e for e in daemon.named("copy.failed") if e["master_txid"] == txid]
        assert [e["user"] for e in failed] == ["dora"]
        assert "Insufficient funds" in failed[0]["error"]
        placed = copies_of(daemon, txid)
        assert set(placed) == {"alice", "bob"}
        world.cancel_master(txid)
        wait_until(
            lambda: (
                {e["user"] for e in daemon.named("copy.cancelled") if e["master_txid"] == txid}
                == {"alice", "bob"}
            ),
            20,
            "both copies cancelled",
        )
        for user, event in placed.items():
            order = world.reader(user).private("QueryOrders", {"txid": event["txid"]})
            assert order[event["txid"]]["status"] == "canceled"
        assert daemon.stop() == 0
