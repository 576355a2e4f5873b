"""The ledger's durability and what it costs: one copy's writes with `synchronous=NORMAL`
(what the daemon runs) against `FULL` (an fsync per commit), on the data folder's disk.

    .venv/bin/python -m benchmarks.ledger_durability [--copies 300] [--users 4] [--dir PATH]

One "copy" is the ledger's writes for it: the master order with its planned rows (one per
user, once per master order), then per user `submitting` and `placed`. Sequential: one
thread, so the figure is the latency a copy lane waits on the ledger. Fanned out: one thread
per user writing at once, as the lanes do. Run it on the disk the daemon's volume lives on
(--dir): an fsync costs what that disk makes it cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.ledger import Decision, Ledger, MasterOrderRecord


def master(index: int) -> MasterOrderRecord:
    now = time.time()
    return MasterOrderRecord(
        txid=f"OBENCH-{index:05d}-AAAAAA", pair="XBTUSD", side=Side.BUY,
        order_type=OrderType.LIMIT, volume=Decimal("0.1"), price=Decimal("50000"), price2=None,
        oflags=frozenset(), timeinforce=TimeInForce.GTC, expiretm=None, opentm=now,
        status=OrderStatus.OPEN, vol_exec=Decimal(0), avg_price=None, decision=Decision.COPY,
        first_seen_at=now,
    )  # fmt: skip


def one_copy(ledger: Ledger, txid: str, user: str) -> float:
    started = time.perf_counter()
    ledger.mark_submitting(txid, user, volume=Decimal("0.01"), price=Decimal(50000), price2=None)
    ledger.mark_placed(txid, user, txid=f"U-{txid}-{user}", acked_at=time.time(), latency_ms=1.0)
    return (time.perf_counter() - started) * 1000


def run(mode: str, folder: Path, copies: int, users: list[str]) -> dict[str, float]:
    path = folder / f"bench-{mode}.sqlite3"
    masters = copies // len(users)
    with Ledger(path, synchronous=mode) as ledger:
        sequential: list[float] = []
        started = time.perf_counter()
        for index in range(masters):
            record = master(index)
            ledger.record_master_order(record, users)
            sequential += [one_copy(ledger, record.txid, user) for user in users]
        seq_s = time.perf_counter() - started
        records = [master(masters + index) for index in range(masters)]
        for record in records:
            ledger.record_master_order(record, users)
        fanned: list[float] = []
        lock = threading.Lock()

        def lane(user: str) -> None:
            mine = [one_copy(ledger, record.txid, user) for record in records]
            with lock:
                fanned.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=lane, args=(user,)) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        fan_s = time.perf_counter() - started
    return {
        "seq_median_ms": statistics.median(sequential),
        "seq_p99_ms": sorted(sequential)[int(len(sequential) * 0.99) - 1],
        "seq_copies_per_s": len(sequential) / seq_s,
        "fan_median_ms": statistics.median(fanned),
        "fan_copies_per_s": len(fanned) / fan_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    users = [f"user{n}" for n in range(args.users)]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ledger-bench-") as tmp:
        print(f"{args.copies} copies, {args.users} users, folder {tmp}")
        print(f"{'mode':<7} {'median ms':>10} {'p99 ms':>8} {'copies/s':>9}"
              f" {'fan-out median ms':>18} {'fan-out copies/s':>17}")  # fmt: skip
        for mode in ("NORMAL", "FULL"):
            r = run(mode, Path(tmp), args.copies, users)
            print(
                f"{mode:<7} {r['seq_median_ms']:>10.3f} {r['seq_p99_ms']:>8.3f}"
                f" {r['seq_copies_per_s']:>9.0f} {r['fan_median_ms']:>18.3f}"
                f" {r['fan_copies_per_s']:>17.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
