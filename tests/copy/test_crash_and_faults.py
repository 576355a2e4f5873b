"""Exactly one copy per master order and user, whatever crashes and network faults happen."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from copytrader.ledger import copy_client_order_id
from copytrader.paper.campaign import kill_during_fan_out, master_order_params, submitting_copies
from tests.copy.harness import CopyWorld, SimUser, copy_world, wait_until

MASTER = {"ZUSD": "200000", "XXBT": "5"}
USERS: list[SimUser] = [
    SimUser("alice", {"ZUSD": "60000", "XXBT": "1.5"}),
    SimUser("bob", {"ZUSD": "20000", "XXBT": "0.5"}),
    SimUser("carol", {"ZUSD": "40000", "XXBT": "1"}),
]


def copies_by_id(world: CopyWorld, user: str) -> Counter[str | None]:
    return Counter(order.get("cl_ord_id") for order in world.all_orders(user).values())


def all_copied_once(world: CopyWorld, master_txids: list[str]) -> bool:
    for user in world.users:
        found = copies_by_id(world, user.user_id)
        wanted = {copy_client_order_id(txid, user.user_id) for txid in master_txids}
        if not wanted <= set(found):
            return False
    return True


def assert_exactly_once(world: CopyWorld, master_txids: list[str]) -> None:
    """Every master order has exactly one copy per user on the exchange, and nothing else."""
    for user in world.users:
        found = copies_by_id(world, user.user_id)
        wanted = {copy_client_order_id(txid, user.user_id) for txid in master_txids}
        assert set(found) == wanted, f"{user.user_id}: missing or stray copies"
        doubled = {cl: n for cl, n in found.items() if n != 1}
        assert doubled == {}, f"{user.user_id}: copies placed more than once: {doubled}"


def test_kill_9_at_random_moments_during_a_burst_copies_each_order_once() -> None:
    """The daemon is SIGKILLed four times while master orders keep coming, mostly in the middle
    of sending copies, and restarted each time: in the end each master order has exactly one
    copy per user, none missing, none twice."""
    rng = random.Random(5)
    with copy_world(USERS, master_balances=MASTER, sim_args=("--latency-ms", "40")) as world:
        daemon = world.start_daemon()
        txids: list[str] = []

        def burst() -> None:
            for index in range(12):
                txids.append(world.place_master(**master_order_params(index)))
                time.sleep(0.25)

        trader = threading.Thread(target=burst)
        trader.start()
        for kill in range(4):
            kill_during_fan_out(world, daemon, rng, while_submitting=kill % 2 == 0)
            daemon = world.start_daemon(wait_ready=False)
        trader.join(30)
        wait_until(lambda: all_copied_once(world, txids), 40, "every copy on the exchange", 2.0)
        # The copies may all be done before the last daemon has even started; a SIGTERM
        # before its handlers are in place would end it with -15, not a drain.
        daemon.wait_running()
        assert daemon.stop() == 0
        assert_exactly_once(world, txids)


def test_dropped_replies_502s_and_unavailable_never_double_a_copy() -> None:
    """AddOrder replies that are lost after the order was applied, HTTP 502s and
    EService:Unavailable are resolved by cl_ord_id: one copy per user and master order."""
    with copy_world(USERS, master_balances=MASTER) as world:
        world.start_daemon().stop()  # first start: the baseline; the orders below come after
        txids = [world.place_master(**master_order_params(i)) for i in (1, 2, 4, 5, 7, 8)]
        for kind in ("drop_reply", "http502", "unavailable", "drop_reply", "http502"):
            world.sim.control("fault", {"endpoint": "AddOrder", "kind": kind, "count": 1})
        daemon = world.start_daemon()
        wait_until(lambda: all_copied_once(world, txids), 40, "every copy on the exchange", 2.5)
        assert world.sim.control("faults") == {"faults": []}  # every fault fired
        assert daemon.stop() == 0
        assert_exactly_once(world, txids)
        placed = daemon.named("copy.placed")
        assert len(placed) == len(txids) * len(world.users)


def test_copy_applied_but_not_recorded_before_a_kill_is_found_not_resent() -> None:
    """AddOrder lands on the exchange but its reply is lost, and the daemon is killed while it
    is still finding out: the restarted daemon finds the copy by its cl_ord_id and records it,
    sending nothing again."""
    with copy_world(USERS[:1], master_balances=MASTER) as world:
        daemon = world.start_daemon()
        txid = world.place_master(**master_order_params(1))
        # The daemon's copy is the next AddOrder: applied, then the connection is dropped.
        world.sim.control("fault", {"endpoint": "AddOrder", "kind": "drop_reply", "count": 1})
        copy_id = copy_client_order_id(txid, "alice")

        def landed() -> bool:
            open_orders = world.sim.control("state")["accounts"]["alice"]["open_orders"]
            return any(o.get("cl_ord_id") == copy_id for o in open_orders.values())

        wait_until(landed, 20, "the copy on the exchange", 0.01)
        # The broker is now settling before it looks the order up; the ledger says submitting.
        assert submitting_copies(world, daemon.started_at) == 1
        daemon.kill9()
        restarted = world.start_daemon()
        placed = world.summary(restarted, txid)
        assert placed["placed"] == 1
        found = [e for e in restarted.named("copy.placed") if e["master_txid"] == txid]
        assert found[0]["resolved_by_lookup"] is True
        assert restarted.named("copy.resend") == []
        assert restarted.stop() == 0
        assert_exactly_once(world, [txid])
