"""`copytrader resync [--apply]`, as a subprocess against the simulator: it lists missing,
orphaned and doubled copies without writing anything (beside a running daemon too), and
`--apply` fixes them, refused while a daemon holds the data folder."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from copytrader.ledger import LEDGER_FILE_NAME, copy_client_order_id
from tests.copy.harness import CopyWorld, SimUser, copy_world
from tests.ledger_recovery.support import (
    assert_exactly_one,
    copies,
    delete_ledger,
    live,
    wait_placed,
)

MASTER = {"ZUSD": "100000", "XXBT": "2"}
ANN = SimUser("ann", {"ZUSD": "30000", "XXBT": "0.5"})
BEN = SimUser("ben", {"ZUSD": "20000", "XXBT": "0.3"})
RESYNC_TIMEOUT_S = 150.0


@pytest.fixture
def world() -> Iterator[CopyWorld]:
    with copy_world([ANN, BEN], master_balances=MASTER) as world:
        yield world


def resync(world: CopyWorld, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    done = subprocess.run(
        [sys.executable, "-m", "copytrader", "resync", "--json", *args],
        env=world.environment(),
        cwd=world.workdir,
        capture_output=True,
        text=True,
        timeout=RESYNC_TIMEOUT_S,
        check=False,
    )
    world.on_output("copytrader resync", done.stdout + done.stderr)
    try:
        document = json.loads(done.stdout[done.stdout.index("{") :])
    except ValueError:
        document = None
    return done.returncode, document, done.stderr


def kinds(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["kind"], f["master_txid"], f["user_id"]) for f in document["findings"]}


def test_resync_lists_then_applies(world: CopyWorld) -> None:
    # Many reads by several processes on few keys: the exchange's REST counter would make this
    # test wait out Kraken's decay for tens of seconds, which is not what it checks.
    world.sim.control("limits", {"rest": False})
    daemon = world.start_daemon()
    market = world.place_master(pair="XBTUSD", type="buy", ordertype="market", volume="0.01")
    resting = world.place_master(
        pair="XBTUSD", type="buy", ordertype="limit", volume="0.01", price="30000"
    )
    wait_placed(world, daemon, market)
    wait_placed(world, daemon, resting)
    daemon.stop()

    delete_ledger(world.data_dir)
    # Ann's market copy sent twice (as a second copier on her key would have done).
    world.reader("ann").private(
        "AddOrder",
        {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.001",
         "cl_ord_id": copy_client_order_id(market, "ann")},
    )  # fmt: skip
    world.cancel_master(resting)
    missing = world.place_master(
        pair="XBTUSD", type="buy", ordertype="limit", volume="0.01", price="31000"
    )

    code, listed, err = resync(world)
    assert code == 1, err
    assert listed is not None
    found = kinds(listed)
    assert {("missing", missing, "ann"), ("missing", missing, "ben")} <= found
    assert {("orphaned", resting, "ann"), ("orphaned", resting, "ben")} <= found
    assert ("doubled", market, "ann") in found
    assert ("doubled", market, "ben") not in found
    assert not (world.data_dir / LEDGER_FILE_NAME).exists()  # listing writes nothing
    assert all(copies(world, u.user_id, missing) == [] for u in world.users)

    code, applied, err = resync(world, "--apply")
    assert code == 0, err
    assert applied is not None
    assert applied["applied"]["copies_left_pending"] == 0
    assert_exactly_one(world, missing, open_=True)
    assert_exactly_one(world, resting, open_=False)
    assert len(copies(world, "ann", market)) == 2  # filled twice: listed, cannot be undone

    code, again, err = resync(world)
    assert again is not None
    assert kinds(again) == {("doubled", market, "ann")}, again["findings"]

    # Beside a running daemon: the listing is read-only and shares the keys' nonce files and
    # locks; --apply is refused.
    daemon = world.start_daemon()
    assert daemon.named("ledger.checked") or daemon.named("ledger.behind")
    code, beside, err = resync(world)
    assert beside is not None, err
    assert kinds(beside) == {("doubled", market, "ann")}, err
    code, _, err = resync(world, "--apply")
    assert code == 3
    assert "already used" in err
    after = world.place_master(
        pair="XBTUSD", type="buy", ordertype="limit", volume="0.01", price="32000"
    )
    wait_placed(world, daemon, after)
    assert not [line for line in daemon.lines if "Invalid nonce" in line]
    assert all(live(copies(world, u.user_id, after)) for u in world.users)
