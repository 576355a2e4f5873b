"""Copies sized together (copying/batch.py): the same volumes as one by one, and exactly once
when the daemon dies between writing them `submitting` and sending them."""

from __future__ import annotations

import time
from decimal import ROUND_DOWN, Decimal, localcontext

from copytrader.copying.placing import CLOCK_SKEW_S
from tests.copy.harness import CopyWorld, DaemonProcess, SimUser, copy_world, wait_until
from tests.copy.test_crash_and_faults import all_copied_once, assert_exactly_once

MASTER = {"ZUSD": "200000", "XXBT": "5"}
USERS = [
    SimUser("ann", {"ZUSD": "60000", "XXBT": "1.5"}),
    SimUser("ben", {"ZUSD": "20000", "XXBT": "0.5"}),
    SimUser("cat", {"ZUSD": "40000", "XXBT": "1"}, max_order_fraction="0.05"),
    SimUser("dan", {"ZUSD": "7000", "XXBT": "0.25"}),
]
LOT = Decimal("0.00000001")


def past_the_start_window(daemon: DaemonProcess) -> None:
    """Master orders opened within CLOCK_SKEW_S of the daemon's start are first looked up on
    the exchange (an earlier run may have sent their copies), one lane at a time; only later
    ones are batched. This is a rule about clock time, so the test lets the time pass."""
    assert daemon.named("daemon.running")
    time.sleep(CLOCK_SKEW_S + 0.5)


def batched(daemon: DaemonProcess, txid: str) -> int:
    return sum(e["copies"] for e in daemon.named("copy.batched") if txid in e["master_txids"])


def placed_volumes(world: CopyWorld, daemon: DaemonProcess, txid: str) -> dict[str, Decimal]:
    events = [e for e in daemon.named("copy.placed") if e["master_txid"] == txid]
    volumes = {}
    for event in events:
        order = world.reader(event["user"]).private("QueryOrders", {"txid": event["txid"]})
        volumes[event["user"]] = Decimal(order[event["txid"]]["vol"])
    return volumes


def test_batched_copies_have_the_volumes_the_sizing_rules_give() -> None:
    """Buys by equity ratio (with a cost cap for one user) and sells by holdings, each after a
    first order of its side has filled the balance caches: the second of each is sized in the
    batch, and every copy's volume matches independent arithmetic to the last decimal."""
    with copy_world(USERS, master_balances=MASTER) as world:
        daemon = world.start_daemon()
        past_the_start_window(daemon)
        buy = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.3"}
        sell = {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "volume": "0.4"}
        # Resting orders (far from the 60000 market) change neither equity nor holdings.
        world.summary(daemon, world.place_master(**buy, price="50000"))
        world.summary(daemon, world.place_master(**sell, price="70000"))
        equity = {u.user_id: world.equity(u.user_id) for u in USERS}
        master_equity = world.equity("master")
        xbt = {u.user_id: world.balance_ex(u.user_id)["XXBT"] for u in USERS}
        master_xbt = world.balance_ex("master")["XXBT"]["balance"]
        buy_txid = world.place_master(**buy, price="50001")
        world.summary(daemon, buy_txid)
        sell_txid = world.place_master(**sell, price="70001")
        world.summary(daemon, sell_txid)
        assert batched(daemon, buy_txid) == len(USERS)
        assert batched(daemon, sell_txid) == len(USERS)
        with localcontext() as ctx:
            ctx.prec = 60
            for user in USERS:
                mine = user.user_id
                buy_raw = Decimal("0.3") * equity[mine] / master_equity
                if user.max_order_fraction is not None:
                    cap = Decimal(user.max_order_fraction) * equity[mine] / Decimal("50001")
                    buy_raw = min(buy_raw, cap)
                held = xbt[mine]["balance"]
                sell_raw = min(Decimal("0.4") * held / master_xbt, held - xbt[mine]["hold_trade"])
                if user.max_order_fraction is not None:
                    cap = Decimal(user.max_order_fraction) * equity[mine] / Decimal("70001")
                    sell_raw = min(sell_raw, cap)
                expected_buy = buy_raw.quantize(LOT, rounding=ROUND_DOWN)
                expected_sell = sell_raw.quantize(LOT, rounding=ROUND_DOWN)
                assert placed_volumes(world, daemon, buy_txid)[mine] == expected_buy, mine
                assert placed_volumes(world, daemon, sell_txid)[mine] == expected_sell, mine
        assert daemon.named("copy.failed") == []
        assert daemon.stop() == 0


def test_killed_after_the_batch_wrote_submitting_each_copy_is_placed_once() -> None:
    """The daemon is SIGKILLed as soon as it logs the batch (every copy `submitting`, their
    AddOrders held up by the exchange), then restarted: each user ends with exactly one copy,
    found by its cl_ord_id or sent after the lookup, never twice."""
    with copy_world(USERS, master_balances=MASTER) as world:
        daemon = world.start_daemon()
        past_the_start_window(daemon)
        params = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.2"}
        first = world.place_master(**params, price="50000")  # fills the equity caches
        world.summary(daemon, first)
        world.sim.control("fault", {"endpoint": "AddOrder", "kind": "latency",
                                    "latency_ms": 1500, "count": len(USERS)})  # fmt: skip
        second = world.place_master(**params, price="50002")
        wait_until(lambda: batched(daemon, second), 30, "the batch of the second order")
        daemon.kill9()
        acked = {e["user"] for e in daemon.named("copy.placed") if e["master_txid"] == second}
        assert len(acked) < len(USERS)  # the AddOrders are held up: the restart has work left
        restarted = world.start_daemon()
        wait_until(lambda: all_copied_once(world, [first, second]), 40, "every copy", 0.5)
        restarted.wait_running()
        wait_until(
            lambda: acked | {e["user"] for e in restarted.named("copy.placed")
                             if e["master_txid"] == second} == {u.user_id for u in USERS},
            30,
            "the restarted daemon settling every copy of the second order",
        )  # fmt: skip
        assert restarted.stop() == 0
        assert_exactly_once(world, [first, second])
