"""What is not copied, and why: orders from before the first start, stale signals, the kill
switch, and dry-run mode (validated by Kraken, never placed)."""

from __future__ import annotations

import time
from typing import Any

from copytrader.ledger import copy_client_order_id
from tests.copy.harness import CopyWorld, DaemonProcess, SimUser, copy_world

USERS = [
    SimUser("alice", {"ZUSD": "30000", "XXBT": "0.6"}),
    SimUser("bob", {"ZUSD": "7000", "XXBT": "0.1"}),
]
MAX_SIGNAL_AGE_S = 2.0


def limit_buy(world: CopyWorld, price: int) -> str:
    return world.place_master(pair="XBTUSD", type="buy", ordertype="limit", volume="0.1",
                              price=str(price))  # fmt: skip


def events_of(daemon: DaemonProcess, name: str, txid: str) -> list[dict[str, Any]]:
    return [e for e in daemon.named(name) if e.get("master_txid") == txid]


def on_exchange(world: CopyWorld, txid: str) -> set[str]:
    """Users holding an order that carries this master order's copy id."""
    found = set()
    for user in world.users:
        ids = {o.get("cl_ord_id") for o in world.all_orders(user.user_id).values()}
        if copy_client_order_id(txid, user.user_id) in ids:
            found.add(user.user_id)
    return found


def test_baseline_downtime_kill_switch_and_dry_run() -> None:
    """An order from before the first start is never copied; while the daemon is down, a
    resting order is copied on restart and a filled one older than max_signal_age is skipped;
    with the kill-switch file present nothing is sent; in dry run Kraken validates the copies
    and nothing is placed."""
    settings = {"max_signal_age_seconds": str(MAX_SIGNAL_AGE_S)}
    with copy_world(USERS, master_balances={"ZUSD": "100000", "XXBT": "2"},
                    copy_settings=settings) as world:  # fmt: skip
        before_first_start = limit_buy(world, 40000)
        world.start_daemon().stop()

        resting = limit_buy(world, 41000)
        filled = world.place_master(pair="XBTUSD", type="buy", ordertype="market", volume="0.1")
        time.sleep(MAX_SIGNAL_AGE_S + 0.5)  # the market order's signal goes stale meanwhile
        daemon = world.start_daemon()
        assert world.summary(daemon, resting)["placed"] == 2
        stale = world.summary(daemon, filled)
        assert (stale["placed"], stale["skipped"]) == (0, 2)
        old = events_of(daemon, "feed.master_order", filled)
        assert "signal too old" in old[0]["reason"]
        assert on_exchange(world, resting) == {"alice", "bob"}
        assert on_exchange(world, filled) == set()

        switch = world.data_dir / "KILL_SWITCH"
        switch.write_text("")
        stopped = limit_buy(world, 42000)
        summary = world.summary(daemon, stopped)
        assert (summary["placed"], summary["skipped"]) == (0, 2)
        assert all("kill switch" in e["reason"] for e in events_of(daemon, "copy.skipped", stopped))
        switch.unlink()
        assert daemon.stop() == 0
        assert on_exchange(world, stopped) == set()

        dry = world.start_daemon(extra_env={"COPYTRADER_DRY_RUN": "1"})
        validated = limit_buy(world, 43000)
        world.summary(dry, validated)
        assert {e["user"] for e in events_of(dry, "copy.validated", validated)} == {"alice", "bob"}
        assert dry.stop() == 0
        assert on_exchange(world, validated) == set()

        everything = [d for d in world.daemons]
        assert not any(events_of(d, "feed.master_order", before_first_start) for d in everything)
        assert on_exchange(world, before_first_start) == set()
