"""Close-only, end to end (daemon and simulator as processes): switched on and off for one user by
a file in the data folder, without a restart; while on, that user's buys are skipped and the
sells of what the user holds and the cancels are copied; other users are not affected."""

from __future__ import annotations

from copytrader.ledger import CopyState, copy_client_order_id
from tests.risk.world import RiskUser, SimUser, events_for, risk_world, wait_until

ALICE = RiskUser(SimUser("alice", {"ZUSD": "30000", "XXBT": "0.6"}))
BOB = RiskUser(SimUser("bob", {"ZUSD": "30000", "XXBT": "0.6"}))


def test_close_only_file_skips_buys_copies_sells_and_cancels_without_a_restart() -> None:
    with risk_world([ALICE, BOB], copy_settings={"risk_check_seconds": "0.2"}) as world:
        daemon = world.start_daemon()
        switch = world.data_dir / "CLOSE_ONLY.alice"
        switch.write_text("")
        [on] = wait_until(lambda: events_for(daemon, "risk.close_only_on", "alice"), 10, "on")
        assert on["account"] == "USER:alice"
        assert "CLOSE_ONLY.alice" in on["reason"]
        assert events_for(daemon, "risk.close_only_on", "bob") == []

        buy = world.place_master(
            pair="XBTUSD", type="buy", ordertype="limit", volume="0.1", price="50000"
        )
        summary = world.summary(daemon, buy)
        assert (summary["placed"], summary["skipped"]) == (1, 1)
        [skipped] = [e for e in events_for(daemon, "copy.skipped", "alice")
                     if e["master_txid"] == buy]  # fmt: skip
        assert "close-only" in skipped["reason"]

        sell = world.place_master(
            pair="XBTUSD", type="sell", ordertype="limit", volume="0.2", price="70000"
        )
        assert world.summary(daemon, sell)["placed"] == 2  # alice holds XXBT: a sell reduces
        world.cancel_master(sell)
        wait_until(
            lambda: [
                e for e in events_for(daemon, "copy.cancelled", "alice") if e["master_txid"] == sell
            ],
            20,
            "alice's copy of the sell cancelled while close-only",
        )

        switch.unlink()
        [off] = wait_until(lambda: events_for(daemon, "risk.close_only_off", "alice"), 10, "off")
        assert off["account"] == "USER:alice"
        again = world.place_master(
            pair="XBTUSD", type="buy", ordertype="limit", volume="0.1", price="51000"
        )
        assert world.summary(daemon, again)["placed"] == 2
        assert daemon.stop() == 0

        alice_ids = {o.get("cl_ord_id") for o in world.all_orders("alice").values()}
        assert copy_client_order_id(buy, "alice") not in alice_ids
        assert copy_client_order_id(sell, "alice") in alice_ids
        assert copy_client_order_id(again, "alice") in alice_ids
        sold = world.order_of("alice", copy_client_order_id(sell, "alice"))
        assert sold["status"] == "canceled"

        with world.ledger() as ledger:
            row = ledger.copy(buy, "alice")
            assert row.state is CopyState.SKIPPED
            assert row.reason is not None
            assert "close-only" in row.reason
            assert ledger.copy(buy, "bob").state is CopyState.PLACED
            assert ledger.copy(sell, "alice").state is CopyState.CANCELLED
            assert ledger.copy(again, "alice").state is CopyState.PLACED


def test_close_only_from_the_environment_applies_to_every_user() -> None:
    with risk_world([ALICE, BOB], copy_settings={"risk_check_seconds": "0.2"}) as world:
        daemon = world.start_daemon(extra_env={"COPYTRADER_CLOSE_ONLY": "1"})
        wait_until(lambda: len(daemon.named("risk.close_only_on")) >= 2, 10, "both users on")
        ons = daemon.named("risk.close_only_on")
        assert {e["account"] for e in ons} == {"USER:alice", "USER:bob"}
        assert {e["reason"] for e in ons} == {"COPYTRADER_CLOSE_ONLY is set"}
        buy = world.place_master(
            pair="XBTUSD", type="buy", ordertype="limit", volume="0.1", price="50000"
        )
        summary = world.summary(daemon, buy)
        assert (summary["placed"], summary["skipped"]) == (0, 2)
        assert daemon.stop() == 0
        with world.ledger() as ledger:
            assert {c.state for c in ledger.copies_of(buy)} == {CopyState.SKIPPED}
