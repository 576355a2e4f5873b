"""Key safety at start, end to end: GetApiKeyInfo on every key. A USER key that may withdraw is
refused (`account.failed`, reason `withdraw_permission`, saying why and how to fix the key), a
USER key that cannot trade is named before the first copy (`missing_permission`); the other
users are copied as usual, and the refused ones' copies are skipped with the reason in the
ledger."""

from __future__ import annotations

from urllib.parse import quote

from copytrader.config.settings import load_settings
from copytrader.ledger import CopyState, copy_client_order_id
from copytrader.service.probe import AccountState, ProbeDepth, Reason
from copytrader.service.startup import connect_accounts
from tests.risk.world import RiskUser, SimUser, risk_world

ALL = ["query_funds", "query_orders", "create_orders", "cancel_orders", "websocket"]
ALICE = RiskUser(SimUser("alice", {"ZUSD": "30000"}), permissions=[*ALL, "withdraw"])
BOB = RiskUser(SimUser("bob", {"ZUSD": "30000"}))
CAROL = RiskUser(
    SimUser("carol", {"ZUSD": "30000"}),
    permissions=["query_funds", "query_orders", "cancel_orders", "websocket"],
)


def test_a_withdraw_key_is_refused_and_a_key_that_cannot_trade_is_named_at_start() -> None:
    with risk_world([ALICE, BOB, CAROL]) as world:
        daemon = world.start_daemon()
        failed = {e["account"]: e for e in daemon.named("account.failed")}
        assert set(failed) == {"USER:alice", "USER:carol"}
        alice = failed["USER:alice"]
        assert alice["reason"] == "withdraw_permission"
        assert "may withdraw funds" in alice["message"]
        assert "untick Withdraw Funds" in alice["message"]
        assert "KRAKEN_USER_ALICE_API_KEY" in alice["message"]
        carol = failed["USER:carol"]
        assert carol["reason"] == "missing_permission"
        assert "Create & Modify Orders" in carol["message"]
        # Named before anything is copied, and no order-shaped call was sent for them.
        first_copy = min(
            (i for i, e in enumerate(daemon.events) if e.get("event", "").startswith("copy.")),
            default=len(daemon.events),
        )
        assert all(daemon.events.index(e) < first_copy for e in failed.values())

        buy = world.place_master(
            pair="XBTUSD", type="buy", ordertype="limit", volume="0.1", price="50000"
        )
        summary = world.summary(daemon, buy)
        assert (summary["placed"], summary["skipped"]) == (1, 2)
        assert daemon.stop() == 0

        for user in ("alice", "carol"):
            ids = {o.get("cl_ord_id") for o in world.all_orders(user).values()}
            assert copy_client_order_id(buy, user) not in ids
            key = quote(world.keys[user].daemon_key, safe="")
            sent = world.sim.control(f"requests?key={key}")["requests"]
            methods = {r["method"] for r in sent}
            assert "GetApiKeyInfo" in methods
            assert "AddOrder" not in methods
        with world.ledger() as ledger:
            assert ledger.copy(buy, "bob").state is CopyState.PLACED
            row = ledger.copy(buy, "alice")
            assert row.state is CopyState.SKIPPED
            assert row.reason is not None
            assert "may withdraw funds" in row.reason
            carol_row = ledger.copy(buy, "carol")
            assert carol_row.state is CopyState.SKIPPED
            assert carol_row.reason is not None
            assert "Create & Modify Orders" in carol_row.reason


def test_check_refuses_the_withdraw_key_too() -> None:
    """`copytrader check` (the full probe) says the same as the daemon's start."""
    with risk_world([ALICE, BOB]) as world:
        settings = load_settings(world.environment(), cwd=world.workdir, dotenv=False)
        report = connect_accounts(settings, depth=ProbeDepth.FULL)
        for outcome in report.all:
            if outcome.broker is not None:
                outcome.broker.close()
        alice, bob = report.users
        assert (alice.state, alice.reason) == (AccountState.FAILED, Reason.WITHDRAW_PERMISSION)
        assert alice.permissions.withdraw is True
        assert bob.connected
        assert bob.permissions.withdraw is False
