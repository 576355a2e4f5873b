"""Crash campaign: kill -9 the daemon many times while master orders arrive; count the copies.

    .venv/bin/python -m benchmarks.crash_campaign [--rounds 10] [--kills 6] [--orders 20]
                                                  [--users 3] [--latency-ms 40] [--seed 1]
                                                  [--min-uptime-s 0] [--order-gap 0.1,0.5]

Each round: a fresh simulator and data folder, the daemon as a subprocess, a trader placing
--orders master orders (market buys, resting limit buys and sells) about every 0.3 s, and
--kills SIGKILLs of the daemon, each followed by a restart. Kills cycle through "while a copy's
AddOrder is in flight" (a ledger row is `submitting`), "0-150 ms after the daemon sees a master
order" and, in every other round, "right after one of its AddOrders hit an injected fault"
(drop_reply: applied but the reply lost; http502; unavailable).
With --min-uptime-s N (N > 5) each daemon runs at least N s before it is killed, and with
--order-gap 1,1.5 the users' lanes go idle between orders, so that master orders arrive after
its start-up window and their copies are sized together and written
`submitting` in one go (copying/batch.py): kills then also land between that write and the
sends.
At the end of a round every master order must have exactly one copy per user on the exchange
(by cl_ord_id, read with separate keys), none missing, none twice.

Prints one line per round and a total; exits 1 if any round broke the rule.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence

from copytrader.ledger import copy_client_order_id
from copytrader.paper.campaign import kill_during_fan_out, master_order_params
from copytrader.paper.world import CopyWorld, DaemonProcess, SimUser, copy_world, wait_until

MASTER = {"ZUSD": "1000000", "XXBT": "20"}
FAULT_KINDS = ("drop_reply", "http502", "unavailable")


def check_round(world: CopyWorld, txids: Sequence[str]) -> tuple[int, int, int]:
    """(missing, doubled, stray) copies over all users."""
    missing = doubled = stray = 0
    for user in world.users:
        found = Counter(o.get("cl_ord_id") for o in world.all_orders(user.user_id).values())
        wanted = {copy_client_order_id(txid, user.user_id) for txid in txids}
        missing += len(wanted - set(found))
        stray += len(set(found) - wanted)
        doubled += sum(n - 1 for n in found.values() if n > 1)
    return missing, doubled, stray


def all_there(world: CopyWorld, txids: Sequence[str]) -> bool:
    for user in world.users:
        found = {o.get("cl_ord_id") for o in world.all_orders(user.user_id).values()}
        if not {copy_client_order_id(t, user.user_id) for t in txids} <= found:
            return False
    return True


def kill_after_fault(world: CopyWorld, daemon: DaemonProcess, kind: str) -> None:
    """Arm one AddOrder fault for the daemon's next copy and SIGKILL the daemon as soon as it
    has hit it (for drop_reply: the copy is on the exchange, the daemon does not know yet)."""
    # Not while it starts: its connection check sends a validate-only AddOrder.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: daemon.named("daemon.running"), 30, "daemon running", 0.05)
    world.sim.control("fault", {"endpoint": "AddOrder", "kind": kind, "count": 1})
    with contextlib.suppress(AssertionError):
        wait_until(lambda: world.sim.control("faults") == {"faults": []}, 8, "fault used", 0.005)
    world.sim.control("faults/clear", {})
    daemon.kill9()


def run_round(number: int, args: argparse.Namespace, rng: random.Random) -> bool:
    users = [SimUser(f"u{number}_{n}", {"ZUSD": "100000", "XXBT": "3"}) for n in range(args.users)]
    faults = number % 2 == 1
    started = time.monotonic()
    with copy_world(
        users, master_balances=MASTER, sim_args=("--latency-ms", str(args.latency_ms))
    ) as world:
        daemon = world.start_daemon()
        txids: list[str] = []
        paused = threading.Event()  # the trader holds still while a fault waits for the daemon
        idle = threading.Event()

        def trade() -> None:
            for index in range(args.orders):
                while paused.is_set():
                    idle.set()
                    time.sleep(0.01)
                idle.clear()
                params = master_order_params(index)
                txids.append(world.place_master_surely(userref=index + 1, **params))
                time.sleep(rng.uniform(*args.order_gap))
            idle.set()

        trader = threading.Thread(target=trade)
        trader.start()
        for kill in range(args.kills):
            time.sleep(max(0.0, args.min_uptime_s - (time.time() - daemon.started_at)))
            mode = kill % 3
            if faults and mode == 2:
                paused.set()
                idle.wait(10)
                # A master order of its own, then the fault: the daemon's copy of it is the
                # next AddOrder the exchange sees.
                params = master_order_params(1)
                txids.append(world.place_master_surely(userref=1000 + kill, **params))
                kill_after_fault(world, daemon, rng.choice(FAULT_KINDS))
                paused.clear()
            else:
                kill_during_fan_out(world, daemon, rng, while_submitting=mode == 0)
            daemon = world.start_daemon(wait_ready=False)
        trader.join(120)
        with contextlib.suppress(AssertionError):  # what is missing is counted below
            wait_until(lambda: all_there(world, txids), 120, "every copy", 2.5)
        daemon.stop()
        missing, doubled, stray = check_round(world, txids)
        resolved = sum(
            1 for d in world.daemons for e in d.named("copy.placed") if e.get("resolved_by_lookup")
        )
        resent = sum(len(d.named("copy.resend")) for d in world.daemons)
        batched = sum(e["copies"] for d in world.daemons for e in d.named("copy.batched"))
        ok = missing == doubled == stray == 0
        print(
            f"round {number:>2}: {len(txids)} master orders x {args.users} users, "
            f"{args.kills} kills{' + faults' if faults else ''}: "
            f"missing {missing}, doubled {doubled}, stray {stray}; "
            f"copies found by cl_ord_id after a lost reply or a crash {resolved}, resent {resent}, "
            f"sized in a batch {batched} "
            f"({time.monotonic() - started:.0f} s) {'OK' if ok else 'FAILED'}",
            flush=True,
        )
        return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-uptime-s", type=float, default=0.0)
    parser.add_argument(
        "--order-gap",
        type=lambda text: tuple(float(x) for x in text.split(",")),
        default=(0.1, 0.5),
        help="min,max seconds between master orders (>= 1 lets lanes go idle: batches)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    results = [run_round(n, args, rng) for n in range(args.rounds)]
    failed = results.count(False)
    kills = args.rounds * args.kills
    print(f"{args.rounds} rounds, {kills} kill -9s: {failed} rounds broke exactly-once")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
