"""What the lost-ledger tests share: the users' orders by copy id, and taking the ledger away."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from copytrader.ledger import LEDGER_FILE_NAME, copy_client_order_id
from tests.copy.harness import CopyWorld, DaemonProcess, wait_until

LIVE = ("open", "pending")
JOURNAL_SUFFIXES = ("", "-wal", "-shm")


def copies(world: CopyWorld, user: str, master_txid: str) -> list[dict[str, Any]]:
    """The user's orders (open and closed) carrying the copy id of this master order."""
    wanted = copy_client_order_id(master_txid, user)
    return [o for o in world.all_orders(user).values() if o.get("cl_ord_id") == wanted]


def live(orders: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in orders if o["status"] in LIVE]


def delete_ledger(data_dir: Path, *, baseline_file: bool = False) -> None:
    for suffix in JOURNAL_SUFFIXES:
        (data_dir / (LEDGER_FILE_NAME + suffix)).unlink(missing_ok=True)
    if baseline_file:
        (data_dir / "ledger_baseline.txt").unlink()


def save_ledger(data_dir: Path, to: Path) -> None:
    """Copy the ledger (a stopped daemon's: its journal is folded in at close) aside."""
    to.mkdir()
    for suffix in JOURNAL_SUFFIXES:
        source = data_dir / (LEDGER_FILE_NAME + suffix)
        if source.exists():
            shutil.copy2(source, to / source.name)


def restore_ledger(data_dir: Path, saved: Path) -> None:
    delete_ledger(data_dir)
    for source in saved.iterdir():
        shutil.copy2(source, data_dir / source.name)


def wait_placed(world: CopyWorld, daemon: DaemonProcess, txid: str) -> None:
    summary = world.summary(daemon, txid)
    assert summary["placed"] == len(world.users), summary


def wait_cancelled(world: CopyWorld, txid: str, timeout_s: float = 20.0) -> None:
    """Until no user holds an open copy of this master order."""
    wait_until(
        lambda: all(not live(copies(world, u.user_id, txid)) for u in world.users),
        timeout_s,
        f"the copies of {txid} to be cancelled",
        step_s=0.2,
    )


def assert_exactly_one(world: CopyWorld, txid: str, *, open_: bool | None = None) -> None:
    for user in world.users:
        found = copies(world, user.user_id, txid)
        assert len(found) == 1, (user.user_id, txid, found)
        if open_ is not None:
            assert (found[0]["status"] in LIVE) is open_, (user.user_id, found[0])
