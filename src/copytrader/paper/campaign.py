"""What the crash tests and the crash campaign do to a copy world: a stream of master orders
every user can copy, and a kill -9 timed to land while copies are being sent."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time

from copytrader.paper.world import CopyWorld, DaemonProcess


def master_order_params(index: int) -> dict[str, str]:
    """A mix that every user can copy: market buys, resting limit buys and sells."""
    kind = index % 3
    if kind == 0:
        return {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.02"}
    if kind == 1:
        return {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.05",
                "price": str(50000 + index)}  # fmt: skip
    return {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "volume": "0.05",
            "price": str(70000 + index)}  # fmt: skip


def submitting_copies(world: CopyWorld, since: float) -> int:
    """Copies this daemon has started sending (AddOrder under way), read from its ledger file
    (read-only, as an outside observer)."""
    path = world.data_dir / "copies.sqlite3"
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT COUNT(*) FROM copies WHERE state = 'submitting' AND updated_at > ?",
                (since,),
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def kill_during_fan_out(world: CopyWorld, daemon: DaemonProcess, rng: random.Random, *,
                        while_submitting: bool) -> None:  # fmt: skip
    """SIGKILL the daemon while an AddOrder of a copy is in flight (a ledger row is
    `submitting`), or a random 0-150 ms after it next sees a master order; at a random moment
    if neither happens within a few seconds."""
    seen = len(daemon.named("feed.master_order"))
    deadline = time.monotonic() + rng.uniform(1.5, 4.0)
    while time.monotonic() < deadline:
        if while_submitting and submitting_copies(world, daemon.started_at):
            break
        if not while_submitting and len(daemon.named("feed.master_order")) > seen:
            time.sleep(rng.uniform(0.0, 0.15))
            break
        time.sleep(0.002)
    daemon.kill9()
