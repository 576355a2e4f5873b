"""How long from a master order being seen to every user's copy acknowledged, for 1/10/100 users.

    .venv/bin/python -m benchmarks.bench_copy_latency [--users 1,10,100] [--orders 10]
                                                      [--latency-ms 50]

For each user count: a simulator (every request delayed by --latency-ms), the daemon as a
subprocess, and --orders master orders (market and limit buys) placed one after another with a
trader's own key. The daemon's `copy.summary` event of each master order carries
`seen_to_all_acked_ms`: from the moment the feed saw the order to the last user's AddOrder
acknowledgement. Each copy costs the user's equity read (TradeBalance) and the AddOrder, so the
floor is about 2 x latency. The goal: 100 users take less than twice as long as 1 user, i.e.
copies go out in parallel, not one after another.

Measured in steady state: the orders start once the daemon has run `start_window_s` (master orders
opened earlier are first looked up on the exchange, user by user, in case an earlier run sent
their copies: a start-up cost), after one unmeasured warm-up order that fills the balance
caches (as any earlier order does in a running daemon). The warm-up order's time is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from copytrader.copying.accounts import CopyTimings
from copytrader.paper.world import SimUser, copy_world

MASTER = {"ZUSD": "10000000", "XXBT": "100"}
USER_BALANCES = {"ZUSD": "200000", "XXBT": "2"}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3 of stat(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(users: int, orders: int, latency_ms: float) -> tuple[list[float], float, float | None]:
    """seen_to_all_acked_ms of each master order with `users` users, that of the warm-up
    order, and the daemon's CPU milliseconds per copy over the measured orders (polling
    included)."""
    sim_users = [SimUser(f"user{n:03d}", USER_BALANCES) for n in range(users)]
    settings = {"max_signal_age_seconds": "120"}
    with copy_world(
        sim_users,
        master_balances=MASTER,
        copy_settings=settings,
        sim_args=("--latency-ms", str(latency_ms)),
    ) as world:
        daemon = world.start_daemon()
        time.sleep(CopyTimings().start_window_s + 0.5)  # past the start-up window (see above)
        warm_up = world.place_master(pair="XBTUSD", type="buy", ordertype="market", volume="0.5")
        warm_up_ms = float(world.summary(daemon, warm_up, timeout_s=60)["seen_to_all_acked_ms"])
        time.sleep(0.2)
        cpu_before = cpu_seconds(daemon.process.pid)
        results: list[float] = []
        for index in range(orders):
            params = {"pair": "XBTUSD", "type": "buy", "volume": "0.5"}
            if index % 2:
                params |= {"ordertype": "limit", "price": str(50000 + index)}
            else:
                params |= {"ordertype": "market"}
            txid = world.place_master(**params)
            summary = world.summary(daemon, txid, timeout_s=60)
            if summary["placed"] != users:
                raise RuntimeError(f"{summary['message']}: expected {users} placed")
            results.append(float(summary["seen_to_all_acked_ms"]))
            time.sleep(0.2)
        cpu_after = cpu_seconds(daemon.process.pid)
        daemon.stop()
        per_copy = None
        if cpu_before is not None and cpu_after is not None:
            per_copy = 1000 * (cpu_after - cpu_before) / (orders * users)
        return results, warm_up_ms, per_copy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1,10,100", help="comma list of user counts")
    parser.add_argument("--orders", type=int, default=10, help="master orders per user count")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulator latency")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.users.split(",")]
    medians: dict[int, float] = {}
    print(f"simulator latency {args.latency_ms:g} ms per request; {args.orders} master orders each")
    print(
        f"{'users':>6} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'max ms':>8} "
        f"{'daemon CPU ms/copy':>19} {'warm-up ms':>10}"
    )
    for count in counts:
        started = time.monotonic()
        samples, warm_up_ms, cpu_per_copy = run_one(count, args.orders, args.latency_ms)
        cpu_text = "n/a" if cpu_per_copy is None else f"{cpu_per_copy:.2f}"
        ordered = sorted(samples)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        medians[count] = statistics.median(samples)
        print(
            f"{count:>6} {medians[count]:>10.1f} {p90:>8.1f} {ordered[0]:>8.1f} "
            f"{ordered[-1]:>8.1f} {cpu_text:>19} {warm_up_ms:>10.1f}"
            f"   ({time.monotonic() - started:.0f} s run)",
            flush=True,
        )
    if 1 in medians and len(medians) > 1:
        largest = max(medians)
        ratio = medians[largest] / medians[1]
        verdict = "goal met (< 2)" if ratio < 2 else "goal NOT met (>= 2)"
        print(f"ratio median {largest} users / 1 user: {ratio:.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
