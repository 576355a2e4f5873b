"""A lost or restored ledger is never a silent first start: the daemon (a subprocess, against
the simulator) rebuilds it from the exchange, records the copies it finds (never sending them
again), cancels copies whose master order was cancelled meanwhile, and copies what is missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.copy.harness import CopyWorld, SimUser, copy_world
from tests.ledger_recovery.support import (
    assert_exactly_one,
    copies,
    delete_ledger,
    restore_ledger,
    save_ledger,
    wait_cancelled,
    wait_placed,
)

MASTER = {"ZUSD": "100000", "XXBT": "2"}
ANN = SimUser("ann", {"ZUSD": "30000", "XXBT": "0.5"})
BEN = SimUser("ben", {"ZUSD": "20000", "XXBT": "0.3"})


@pytest.fixture
def world() -> Iterator[CopyWorld]:
    with copy_world([ANN, BEN], master_balances=MASTER) as world:
        yield world


def rest(world: CopyWorld, price: str) -> str:
    """A resting master buy (far below the market, so it never fills)."""
    return world.place_master(
        pair="XBTUSD", type="buy", ordertype="limit", volume="0.01", price=price
    )


@pytest.mark.parametrize("baseline_file_too", [False, True], ids=["ledger", "ledger+baseline"])
def test_deleted_ledger_is_rebuilt_not_a_first_start(
    world: CopyWorld, baseline_file_too: bool
) -> None:
    first = world.start_daemon()
    kept = rest(world, "30000")
    cancelled_meanwhile = rest(world, "31000")
    wait_placed(world, first, kept)
    wait_placed(world, first, cancelled_meanwhile)
    first.stop()

    delete_ledger(world.data_dir, baseline_file=baseline_file_too)
    world.cancel_master(cancelled_meanwhile)
    placed_meanwhile = rest(world, "32000")

    second = world.start_daemon()
    wait_placed(world, second, placed_meanwhile)
    wait_cancelled(world, cancelled_meanwhile)
    lost = second.named("ledger.lost")
    assert lost, second.lines[-30:]
    assert not second.named("feed.baseline")
    assert any("nonce files" in item for item in lost[0]["evidence"])
    rebuilt = second.named("ledger.rebuilt")[0]
    assert rebuilt["fixed_adopted"] == 4  # two copies each of `kept` and `cancelled_meanwhile`
    assert rebuilt["missing"] == 2
    assert rebuilt["orphaned"] == 2

    assert_exactly_one(world, kept, open_=True)  # found and recorded, never sent again
    assert_exactly_one(world, placed_meanwhile, open_=True)
    assert_exactly_one(world, cancelled_meanwhile, open_=False)
    assert not second.named("copy.resend")


def test_first_start_stays_a_first_start(world: CopyWorld) -> None:
    existing = rest(world, "30000")
    daemon = world.start_daemon()
    assert daemon.named("feed.baseline")
    assert not daemon.named("ledger.lost")
    assert (world.data_dir / "ledger_baseline.txt").exists()
    fresh = rest(world, "31000")
    wait_placed(world, daemon, fresh)
    assert all(not copies(world, u.user_id, existing) for u in world.users)


def test_check_before_the_first_run_leaves_it_a_first_start(world: CopyWorld) -> None:
    """`copytrader check` (the README's step before a first run) makes the nonce files; the
    run after it is a first start, not a lost ledger: existing master orders are baselined."""
    existing = rest(world, "30000")
    check = subprocess.run(
        [sys.executable, "-m", "copytrader", "check"],
        env=world.environment(), cwd=world.workdir, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert list(world.data_dir.glob("kraken_nonce_*.txt"))

    daemon = world.start_daemon()
    assert daemon.named("feed.baseline")
    assert daemon.named("ledger.first_start_with_nonce_files")
    assert not daemon.named("ledger.lost")
    fresh = rest(world, "31000")
    wait_placed(world, daemon, fresh)
    assert all(not copies(world, u.user_id, existing) for u in world.users)


def test_restored_older_ledger_catches_up(world: CopyWorld, tmp_path: Path) -> None:
    first = world.start_daemon()
    old = rest(world, "30000")
    wait_placed(world, first, old)
    first.stop()
    save_ledger(world.data_dir, tmp_path / "backup")

    second = world.start_daemon()
    newer = rest(world, "31000")
    later_cancelled = rest(world, "32000")
    wait_placed(world, second, newer)
    wait_placed(world, second, later_cancelled)
    second.stop()

    restore_ledger(world.data_dir, tmp_path / "backup")
    world.cancel_master(later_cancelled)
    world.cancel_master(old)

    third = world.start_daemon()
    wait_cancelled(world, later_cancelled)
    wait_cancelled(world, old)
    assert_exactly_one(world, newer, open_=True)
    assert_exactly_one(world, later_cancelled, open_=False)
    assert_exactly_one(world, old, open_=False)
    assert second.named("ledger.checked")
    behind = third.named("ledger.behind")
    assert behind, third.lines[-30:]
    # `newer`'s copies are unknown to the old ledger; the copies of both cancelled master
    # orders are open (the old ledger knows those of `old`, not of `later_cancelled`).
    assert behind[0]["unrecorded"] == 2
    assert behind[0]["orphaned"] == 4
    assert not third.named("copy.resend")


def test_damaged_ledger_is_moved_aside_and_rebuilt(world: CopyWorld) -> None:
    first = world.start_daemon()
    kept = rest(world, "30000")
    wait_placed(world, first, kept)
    first.stop()
    delete_ledger(world.data_dir)
    (world.data_dir / "copies.sqlite3").write_bytes(b"not a database" * 100)
    placed_meanwhile = rest(world, "31000")

    second = world.start_daemon()
    assert second.named("ledger.damaged")
    assert second.named("ledger.lost")
    assert list(world.data_dir.glob("copies.sqlite3.damaged-*"))
    wait_placed(world, second, placed_meanwhile)
    assert_exactly_one(world, kept, open_=True)
    assert_exactly_one(world, placed_meanwhile, open_=True)
