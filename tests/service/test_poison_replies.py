"""Poisoned numbers in Kraken's replies, end to end: the daemon as a subprocess, the simulator
mutating real replies. A number that is not a number (in the master's order list, in an
equity read) is a failed read that is asked again; it is never stored, never sized, and the
copies that follow come out exactly as they would have without it."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.copy.harness import CopyWorld, DaemonProcess, SimUser, copy_world

MASTER = {"ZUSD": "100000"}
USERS = [SimUser("alice", {"ZUSD": "30000"}), SimUser("bob", {"ZUSD": "10000"})]
LOT = Decimal("0.00000001")


def expected_volume(master_volume: str, user: SimUser) -> Decimal:
    """equity_ratio sizing with cash-only accounts and nothing filled: equity is the ZUSD."""
    ratio = Decimal(user.balances["ZUSD"]) / Decimal(MASTER["ZUSD"])
    return (Decimal(master_volume) * ratio).quantize(LOT, rounding=ROUND_DOWN)


def copy_and_check(world: CopyWorld, daemon: DaemonProcess, volume: str, price: str) -> str:
    txid = world.place_master(
        pair="XBTUSD", type="buy", ordertype="limit", volume=volume, price=price
    )
    summary = world.summary(daemon, txid, timeout_s=40)
    assert (summary["placed"], summary["skipped"], summary["failed"]) == (2, 0, 0), summary
    for user in USERS:
        copies = [
            order
            for order in world.all_orders(user.user_id).values()
            if Decimal(order["descr"]["price"]) == Decimal(price)
        ]
        assert len(copies) == 1, copies
        assert Decimal(copies[0]["vol"]) == expected_volume(volume, user)
    return txid


def unreadable_retries(daemon: DaemonProcess, method: str) -> list[dict[str, Any]]:
    return [
        event
        for event in daemon.named("broker.retry")
        if event.get("method") == method and event.get("error_class") == "BadReplyError"
    ]


def test_poisoned_feed_and_balance_replies_are_read_again_and_copies_stay_exact() -> None:
    with copy_world(USERS, master_balances=MASTER) as world:
        daemon = world.start_daemon()
        first = copy_and_check(world, daemon, "0.1", "50000")

        # The master's order list now carries a resting order, so every OpenOrders reply has a
        # `vol` to poison: the next two replies say "NaN", then "lots".
        for value in ("NaN", "lots"):
            world.sim.control(
                "fault",
                {"endpoint": "OpenOrders", "kind": "mutate", "path": "open.*.vol",
                 "value": value, "count": 1},
            )  # fmt: skip
        copy_and_check(world, daemon, "0.2", "50001")
        assert len(unreadable_retries(daemon, "OpenOrders")) >= 2

        # Equity reads (the master's and the users', for equity_ratio sizing) now answer
        # absurd numbers twice.
        for value in ("1e999999", "-3"):
            world.sim.control(
                "fault",
                {"endpoint": "TradeBalance", "kind": "mutate", "path": "e", "value": value,
                 "count": 1},
            )  # fmt: skip
        copy_and_check(world, daemon, "0.1", "50002")
        assert len(unreadable_retries(daemon, "TradeBalance")) >= 2

        assert not daemon.named("copy.failed")
        assert not daemon.named("copy.skipped")
        assert not daemon.named("copy.cancelled"), "the first order's copies were left alone"
        assert first
        assert daemon.stop() == 0
