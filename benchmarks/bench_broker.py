"""What the broker costs, and long nonce campaigns too slow for the test suite.

    .venv/bin/python -m benchmarks.bench_broker [--calls 2000] [--kills 40] [--quick]

Prints tables:
1. nonce generation: NonceStore (default: OS file lock, in-place write) vs. with an fsync per
   nonce (fsync_each_nonce=True) vs. a bare lock+counter;
2. one private call on loopback against the simulator: raw krakenex (with an in-memory
   max(now_ms, last+1) nonce, the least any multi-call client needs) vs. KrakenBroker;
3. a concurrency campaign (3 accounts x 8 threads, thousands of calls each) and a kill -9
   campaign (broker processes killed at random moments and restarted), both counting
   EAPI:Invalid nonce on the simulator (must be 0).
The simulator's own REST counter would throttle these runs, so it is turned off (/sim/limits).
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import krakenex

from benchmarks.broker_load import (
    LoadAccount,
    accounts_toml,
    load_broker,
    rest_limits_off,
    start_worker,
)
from copytrader.domain import RateTier
from copytrader.kraken.broker import KrakenBroker
from copytrader.nonce.store import NonceStore, wall_clock_ms
from kraken_sim.process import SimProcess, running_sim


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(call: Callable[[], object], count: int) -> list[float]:
    """Per-call durations in microseconds."""
    durations = []
    for _ in range(count):
        started = time.perf_counter_ns()
        call()
        durations.append((time.perf_counter_ns() - started) / 1000)
    return durations


def timed_interleaved(calls: list[Callable[[], object]], count: int) -> list[list[float]]:
    """Like timed(), for several variants in alternating blocks: load changes hit all alike."""
    results: list[list[float]] = [[] for _ in calls]
    block = 50
    for _ in range(0, count, block):
        for call, durations in zip(calls, results, strict=True):
            durations.extend(timed(call, block))
    return results


def row(name: str, durations: list[float]) -> str:
    return (
        f"| {name:<48} | {statistics.mean(durations):9.1f} | {percentile(durations, 0.5):9.1f}"
        f" | {percentile(durations, 0.99):9.1f} |"
    )


HEADER = (
    f"| {'what':<48} | {'mean µs':>9} | {'p50 µs':>9} | {'p99 µs':>9} |\n|{'-' * 50}|{'-' * 11}|"
    f"{'-' * 11}|{'-' * 11}|"
)


def bench_nonces(count: int) -> None:
    print("\n## Nonce generation (one thread)\n")
    print(HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        fast = NonceStore("USER:bench_fast", Path(tmp))
        durable = NonceStore("USER:bench_durable", Path(tmp), fsync_each_nonce=True)

        def take(store: NonceStore) -> Callable[[], object]:
            def one() -> object:
                with store.locked() as next_nonce:
                    return next_nonce()

            return one

        lock = threading.Lock()
        last = [0]

        def bare() -> object:
            with lock:
                last[0] = max(wall_clock_ms(), last[0] + 1)
                return last[0]

        def lock_only() -> object:
            with durable.locked():
                return None

        print(row("NonceStore: locks + in-place write (default)", timed(take(fast), count)))
        print(row("NonceStore: locks + fsync'd write per nonce", timed(take(durable), count)))
        print(row("NonceStore: thread + OS file lock only", timed(lock_only, count)))
        print(row("bare threading.Lock + counter (no file)", timed(bare, count)))


class RawKrakenex(krakenex.API):  # type: ignore[misc]  # krakenex has no type information
    """Plain krakenex with the cheapest correct multi-call nonce: max(now_ms, last + 1)."""

    def __init__(self, key: str, secret: str, uri: str) -> None:
        super().__init__(key=key, secret=secret)
        self.uri = uri
        self._last = 0

    def _nonce(self) -> int:
        self._last = max(wall_clock_ms(), self._last + 1)
        return self._last


def bench_calls(count: int) -> None:
    print(f"\n## One private call (Balance) on loopback, {count} sequential calls each\n")
    raw_account = LoadAccount(name="raw", account_id="USER:raw")
    broker_account = LoadAccount(name="broker", account_id="USER:broker")
    fsync_account = LoadAccount(name="fsync", account_id="USER:fsync")
    limited_account = LoadAccount(name="limited", account_id="USER:limited")
    toml = accounts_toml(raw_account, broker_account, fsync_account, limited_account)
    # The simulator's REST counter is off: sequential calls would fill it and time rejections.
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_sim(toml) as sim,
        rest_limits_off(sim),
    ):
        data = Path(tmp)
        raw = RawKrakenex(raw_account.key, raw_account.secret, sim.url)
        broker = load_broker(broker_account, sim.url, data)
        fsynced = load_broker(
            fsync_account,
            sim.url,
            data,
            nonce_store=NonceStore("USER:fsync", data, fsync_each_nonce=True),
        )
        with_counter = load_broker(
            limited_account, sim.url, data, client_rate_limit=True,
            tier=RateTier(limited_account.tier),
        )  # fmt: skip
        variants: list[Callable[[], object]] = [
            lambda: raw.query_private("Balance", timeout=10),
            broker.balances,
            fsynced.balances,
        ]
        timed_interleaved(variants, 100)  # warm up connections and code paths
        raw_times, broker_times, fsync_times = timed_interleaved(variants, count)
        # The REST counter would make this one wait for real; measure only what fits under it.
        counter_times = timed(with_counter.balances, 15)
        counters = sim.control("state")["counters"]
        invalid = counters["invalid_nonce"]
        rate_limited = counters["by_error"].get("EAPI:Rate limit exceeded", 0)
    print(HEADER)
    print(row("raw krakenex (in-memory nonce)", raw_times))
    print(row("KrakenBroker.balances() (typed, locked)", broker_times))
    print(row("KrakenBroker.balances(), fsync per nonce", fsync_times))
    print(row("KrakenBroker + REST counter (15 calls, no wait)", counter_times))
    overhead = statistics.median(broker_times) - statistics.median(raw_times)
    fsync_overhead = statistics.median(fsync_times) - statistics.median(raw_times)
    # What the broker adds to krakenex's own call: the nonce file and lock, the error table,
    # the retry policy, the typed and checked reading of the reply.
    print(
        f"\nbroker minus raw krakenex per private call (p50): {overhead:+.0f} µs"
        f" ({fsync_overhead:+.0f} µs with an fsync per nonce); invalid nonces: {invalid};"
        f" rate-limit rejections (should be 0): {rate_limited}"
    )


def bench_concurrency(calls_per_thread: int) -> None:
    accounts = [
        LoadAccount(name="master", account_id="MASTER"),
        LoadAccount(name="daivon", account_id="USER:daivon_frazier"),
        LoadAccount(name="tania", account_id="USER:tania_gilbert"),
    ]
    threads_per_account = 8
    errors: list[str] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_sim(accounts_toml(*accounts)) as sim,
        rest_limits_off(sim),
    ):
        brokers = [load_broker(a, sim.url, Path(tmp)) for a in accounts]

        def work(broker: KrakenBroker) -> None:
            for n in range(calls_per_thread):
                try:
                    broker.balances() if n % 2 else broker.open_orders()
                except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
                    errors.append(repr(exc))

        threads = [
            threading.Thread(target=work, args=(b,))
            for b in brokers
            for _ in range(threads_per_account)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        counters = sim.control("state")["counters"]
    total = len(threads) * calls_per_thread
    print("\n## Concurrency campaign\n")
    print(
        f"3 accounts x {threads_per_account} threads x {calls_per_thread} calls = {total} calls"
        f" ({total // 3} per account) in {elapsed:.1f} s = {total / elapsed:.0f} calls/s;"
        f" errors: {len(errors)}; EAPI:Invalid nonce on the simulator: {counters['invalid_nonce']}"
    )


def bench_kills(kills: int) -> None:
    rng = random.Random(7)
    account = LoadAccount(name="master", account_id="MASTER")
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_sim(accounts_toml(account)) as sim,
        rest_limits_off(sim),
    ):
        data_dir = Path(tmp)
        workers = [start_worker(sim, account, data_dir, -1, 2) for _ in range(2)]
        started = time.monotonic()
        try:
            for _ in range(kills):
                wait_calls(sim, rng.randint(10, 120))
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].communicate(timeout=10)
                workers[victim] = start_worker(sim, account, data_dir, -1, 2)
            wait_calls(sim, 100)
        finally:
            for worker in workers:
                worker.kill()
                worker.communicate(timeout=10)
        counters = sim.control("state")["counters"]
    print("\n## kill -9 campaign\n")
    print(
        f"{kills} SIGKILLs of 2 processes x 2 threads sharing one key, each restarted;"
        f" {counters['requests']} private calls in {time.monotonic() - started:.1f} s;"
        f" EAPI:Invalid nonce on the simulator: {counters['invalid_nonce']}"
    )


def wait_calls(sim: SimProcess, more: int) -> None:
    target = sim.control("state")["counters"]["requests"] + more
    deadline = time.monotonic() + 60
    while sim.control("state")["counters"]["requests"] < target:
        if time.monotonic() > deadline:
            raise RuntimeError("workers stopped making calls")
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per variant")
    parser.add_argument("--per-thread", type=int, default=500, help="concurrency campaign")
    parser.add_argument("--kills", type=int, default=40, help="kill -9 campaign")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args: Any = parser.parse_args(argv)
    if args.quick:
        args.calls, args.per_thread, args.kills = 200, 50, 3
    bench_nonces(args.calls)
    bench_calls(args.calls)
    bench_concurrency(args.per_thread)
    bench_kills(args.kills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
