"""End to end (daemon and simulator as processes): a user whose key Kraken has locked out when
the daemon starts. The daemon stays up, copies to the other user at once, and keeps the locked
out user's copy of a resting master order waiting (never `failed`) while the account rests;
the copy goes out, exactly once, as soon as the account can trade (here: after a restart, whose
fresh broker has no rest; within one run it goes out when the broker's minutes of rest end,
which the in-process tests in tests/copy_fast/test_resting_accounts.py show)."""

from __future__ import annotations

import krakenex

from tests.copy.harness import CopyWorld, SimUser, copy_world, wait_until
from tests.simproc import new_secret

MASTER = {"ZUSD": "100000", "XXBT": "2"}
ALICE = SimUser("alice", {"ZUSD": "30000", "XXBT": "0.6"})
BOB = SimUser("bob", {"ZUSD": "7000", "XXBT": "0.1"})


def lock_out(world: CopyWorld, user: str) -> None:
    """Calls signed with a wrong secret under the user's daemon key until the simulator locks
    that key out (as a mistyped secret on another machine would)."""
    impostor = krakenex.API(world.keys[user].daemon_key, new_secret())
    impostor.uri = world.sim.url
    try:
        for _ in range(20):
            if (
                "EGeneral:Temporary lockout"
                in impostor.query_private("Balance", timeout=10)["error"]
            ):
                return
    finally:
        impostor.close()
    raise AssertionError(f"{user}'s key was not locked out")


def test_a_user_locked_out_at_start_waits_and_is_copied_once_it_can_trade() -> None:
    with copy_world([ALICE, BOB], master_balances=MASTER) as world:
        lock_out(world, "alice")
        daemon = world.start_daemon()
        [alice] = [e for e in daemon.named("account.failed") if e["account"] == "USER:alice"]
        assert alice["reason"] == "locked_out"
        txid = world.place_master(
            pair="XBTUSD", type="buy", ordertype="limit", volume="0.5", price="50000"
        )
        wait_until(
            lambda: [e for e in daemon.named("copy.placed") if e["user"] == "bob"],
            20,
            "bob's copy",
        )
        [resting] = wait_until(
            lambda: daemon.named("copy.account_resting"),
            20,
            "alice's copy waiting for her account's rest",
        )
        assert resting["user"] == "alice"
        assert resting["pending"] == 1
        assert "EGeneral:Temporary lockout" in resting["reason"]
        assert daemon.named("copy.failed") == []
        assert daemon.stop() == 0
        [stopped] = daemon.named("daemon.stopped")
        assert (stopped["placed"], stopped["failed"], stopped["planned"]) == (1, 0, 1)

        world.sim.control("lockouts/clear", {})  # Kraken's lockout is over
        again = world.start_daemon()
        [placed] = wait_until(
            lambda: [e for e in again.named("copy.placed") if e["master_txid"] == txid],
            30,
            "alice's copy after the restart",
        )
        assert placed["user"] == "alice"
        assert again.named("copy.failed") == []
        mine = [
            order
            for order in world.all_orders("alice").values()
            if order.get("cl_ord_id") == placed["cl_ord_id"]
        ]
        assert len(mine) == 1, mine
        assert again.stop() == 0
