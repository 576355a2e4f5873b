"""The dead-man switch, end to end: with cancel_after_seconds, the daemon keeps Kraken's
CancelAllOrdersAfter armed on the user's key. Killed with SIGKILL, it cannot cancel anything,
and once the timeout passes the simulator (as Kraken would) cancels that user's resting copies;
a user without the setting keeps theirs. While running, the daemon re-arms it before it runs
out; a clean stop disarms it, so the copies a later run left resting stay."""

from __future__ import annotations

from urllib.parse import quote

from copytrader.ledger import CopyState, copy_client_order_id
from tests.risk.world import RiskUser, RiskWorld, SimUser, events_for, risk_world, wait_until

TIMEOUT_S = 15
ALICE = RiskUser(SimUser("alice", {"ZUSD": "30000"}), {"cancel_after_seconds": str(TIMEOUT_S)})
BOB = RiskUser(SimUser("bob", {"ZUSD": "30000"}))


def resting_buy(world: RiskWorld, price: str) -> str:
    return world.place_master(
        pair="XBTUSD", type="buy", ordertype="limit", volume="0.1", price=price
    )


def rearm_calls(world: RiskWorld, user: str) -> int:
    key = quote(world.keys[user].daemon_key, safe="")
    sent = world.sim.control(f"requests?key={key}")["requests"]
    return sum(r["method"] == "CancelAllOrdersAfter" and not r["error"] for r in sent)


def status(world: RiskWorld, user: str, txid: str) -> str:
    return str(world.order_of(user, copy_client_order_id(txid, user))["status"])


def test_killed_daemon_leaves_kraken_to_cancel_the_resting_copies_clean_stop_disarms() -> None:
    with risk_world([ALICE, BOB]) as world:
        daemon = world.start_daemon()
        [armed] = events_for(daemon, "deadman.armed", "alice")
        assert armed["account"] == "USER:alice"
        assert armed["timeout_s"] == TIMEOUT_S
        assert events_for(daemon, "deadman.armed", "bob") == []
        first = resting_buy(world, "50000")
        assert world.summary(daemon, first)["placed"] == 2
        daemon.kill9()

        assert status(world, "alice", first) == "open"
        world.sim.control("clock", {"advance_s": TIMEOUT_S + 5})
        assert status(world, "alice", first) == "canceled"  # by Kraken's timer
        order = world.order_of("alice", copy_client_order_id(first, "alice"))
        assert order["reason"] == "Dead man switch"
        assert status(world, "bob", first) == "open"
        with world.ledger() as ledger:  # the daemon never saw it: its row still says placed
            assert ledger.copy(first, "alice").state is CopyState.PLACED

        daemon = world.start_daemon()
        second = resting_buy(world, "49000")
        assert world.summary(daemon, second)["placed"] == 2
        # Re-armed while running (every TIMEOUT_S / 3 = 5 s): 8 s, a re-arm, 8 s more is past
        # the timer armed before, not the new one.
        arms = rearm_calls(world, "alice")
        world.sim.control("clock", {"advance_s": 8})
        wait_until(lambda: rearm_calls(world, "alice") > arms, TIMEOUT_S, "a re-arm")
        world.sim.control("clock", {"advance_s": 8})
        assert status(world, "alice", second) == "open"
        assert daemon.stop() == 0
        [disarmed] = events_for(daemon, "deadman.disarmed", "alice")
        assert disarmed["calls"] >= 2  # armed, then disarmed
        world.sim.control("clock", {"advance_s": TIMEOUT_S + 5})
        assert status(world, "alice", second) == "open"


def test_leave_keeps_the_switch_armed_after_a_clean_stop() -> None:
    with risk_world([ALICE], copy_settings={"dead_man_on_stop": '"leave"'}) as world:
        daemon = world.start_daemon()
        txid = resting_buy(world, "50000")
        assert world.summary(daemon, txid)["placed"] == 1
        assert daemon.stop() == 0
        [left] = events_for(daemon, "deadman.left_armed", "alice")
        assert left["trigger_time"]
        assert events_for(daemon, "deadman.disarmed", "alice") == []
        world.sim.control("clock", {"advance_s": TIMEOUT_S + 5})
        assert status(world, "alice", txid) == "canceled"
