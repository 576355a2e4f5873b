"""Lost-ledger campaign: take the ledger away between runs of the daemon, change the master's
orders meanwhile, start it again, and count the copies.

    .venv/bin/python -m benchmarks.lost_ledger_campaign [--rounds 8] [--orders 6] [--users 2]
                                                        [--seed 1]

Each round: a fresh simulator and data folder; the daemon copies --orders master orders
(market buys, resting limit buys and sells); a backup of the ledger is taken halfway (the
daemon stopped for it, as a volume snapshot would be); at the end the daemon is killed (-9)
and the ledger is lost in one of four ways, in turn: deleted; deleted with the baseline file;
the halfway backup put back; overwritten with garbage. While it is down, half of the master's
resting orders are cancelled and two new orders (one resting, one market) are placed. Then
the daemon starts again and runs until its copies settle.

Rule checked at the end of a round, per master order and user, by cl_ord_id on the exchange
(read with separate keys): exactly one copy (missing: none, doubled: more than one); no open
copy of a cancelled master order (orphaned). Prints one line per round and a total; exits 1
if any round broke the rule.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from copytrader.ledger import LEDGER_FILE_NAME, copy_client_order_id
from copytrader.paper.campaign import master_order_params
from copytrader.paper.world import CopyWorld, SimUser, copy_world, wait_until

MASTER = {"ZUSD": "1000000", "XXBT": "20"}
MODES = ("deleted", "deleted+baseline", "restored-backup", "damaged")
SETTLE_S = 30.0
LEDGER_FILES = [LEDGER_FILE_NAME + suffix for suffix in ("", "-wal", "-shm")]


def tally(world: CopyWorld, txids: Sequence[str], cancelled: set[str]) -> tuple[int, int, int]:
    """(missing, doubled, orphaned) over all users."""
    missing = doubled = orphaned = 0
    for user in world.users:
        orders = world.all_orders(user.user_id).values()
        count = Counter(o.get("cl_ord_id") for o in orders)
        live = {o.get("cl_ord_id") for o in orders if o["status"] in ("open", "pending")}
        for txid in txids:
            cl_ord_id = copy_client_order_id(txid, user.user_id)
            missing += count[cl_ord_id] == 0
            doubled += max(0, count[cl_ord_id] - 1)
            orphaned += txid in cancelled and cl_ord_id in live
    return missing, doubled, orphaned


def lose_ledger(mode: str, data_dir: Path, backup: Path) -> None:
    for name in LEDGER_FILES:
        (data_dir / name).unlink(missing_ok=True)
    if mode == "deleted+baseline":
        (data_dir / "ledger_baseline.txt").unlink(missing_ok=True)
    elif mode == "restored-backup":
        for source in backup.iterdir():
            shutil.copy2(source, data_dir / source.name)
    elif mode == "damaged":
        (data_dir / LEDGER_FILE_NAME).write_bytes(b"\x00garbage" * 512)


def run_round(
    number: int, mode: str, orders: int, users: int, rng: random.Random
) -> tuple[int, int, int, int]:
    sim_users = [SimUser(f"user{n}", {"ZUSD": "100000", "XXBT": "2"}) for n in range(users)]
    with copy_world(sim_users, master_balances=MASTER) as world:
        txids: list[str] = []
        daemon = world.start_daemon()
        for index in range(orders):
            txids.append(world.place_master(**master_order_params(index)))
            if index == orders // 2:
                wait_until(lambda: _all_copied(world, txids), SETTLE_S, "copies", step_s=0.2)
                daemon.stop()
                backup = world.workdir / "backup"
                backup.mkdir()
                for name in LEDGER_FILES:
                    if (world.data_dir / name).exists():
                        shutil.copy2(world.data_dir / name, backup / name)
                daemon = world.start_daemon()
            time.sleep(rng.uniform(0.05, 0.4))
        wait_until(lambda: _all_copied(world, txids), SETTLE_S, "copies", step_s=0.2)
        daemon.kill9()
        lose_ledger(mode, world.data_dir, world.workdir / "backup")
        resting = [t for t, i in zip(txids, range(orders), strict=True) if i % 3]
        cancelled = set(rng.sample(resting, k=len(resting) // 2))
        for txid in cancelled:
            world.cancel_master(txid)
        txids.append(world.place_master(**master_order_params(1 + 3 * orders)))
        txids.append(world.place_master(**master_order_params(3 * orders)))
        started = time.monotonic()
        daemon = world.start_daemon()
        with contextlib.suppress(AssertionError):
            wait_until(
                lambda: tally(world, txids, cancelled) == (0, 0, 0), SETTLE_S, "settled", 0.3
            )
        settle_s = time.monotonic() - started
        missing, doubled, orphaned = tally(world, txids, cancelled)
        event = next(
            (e["event"] for e in daemon.events
             if e.get("event") in ("ledger.rebuilt", "ledger.behind", "feed.baseline")),
            "none",
        )  # fmt: skip
        daemon.stop()
    copies = len(txids) * users
    print(
        f"round {number:>2} {mode:<17} copies {copies:>3}  missing {missing}  doubled {doubled}"
        f"  orphaned {orphaned}  start event {event:<14} settled in {settle_s:5.1f} s",
        flush=True,
    )
    return copies, missing, doubled, orphaned


def _all_copied(world: CopyWorld, txids: Sequence[str]) -> bool:
    return tally(world, txids, set())[0] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--orders", type=int, default=6)
    parser.add_argument("--users", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    totals = Counter[str]()
    for number in range(1, args.rounds + 1):
        mode = MODES[(number - 1) % len(MODES)]
        copies, missing, doubled, orphaned = run_round(number, mode, args.orders, args.users, rng)
        totals.update(copies=copies, missing=missing, doubled=doubled, orphaned=orphaned)
    print(
        f"total: {args.rounds} rounds, {totals['copies']} copies, missing {totals['missing']},"
        f" doubled {totals['doubled']}, orphaned {totals['orphaned']}"
    )
    return 1 if totals["missing"] or totals["doubled"] or totals["orphaned"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
