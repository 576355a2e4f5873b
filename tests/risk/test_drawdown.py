"""The drawdown stop, end to end: a user's equity falls more than max_drawdown_pct below its
high-water mark (kept in the ledger) when the price moves; the user goes close-only
(`risk.drawdown_stop` with account, equity, mark and pct), stays so across a restart, and is
released by the operator's RESET_DRAWDOWN file. A user without the setting is not affected."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

from copytrader.ledger import CopyState
from tests.risk.world import RiskUser, RiskWorld, SimUser, events_for, risk_world, wait_until

ALICE = RiskUser(SimUser("alice", {"ZUSD": "10000", "XXBT": "1"}), {"max_drawdown_pct": '"20"'})
BOB = RiskUser(SimUser("bob", {"ZUSD": "10000", "XXBT": "1"}))


def equity_reads(world: RiskWorld, user: str) -> int:
    key = quote(world.keys[user].daemon_key, safe="")
    sent = world.sim.control(f"requests?key={key}")["requests"]
    return sum(r["method"] == "TradeBalance" for r in sent)


def limit(world: RiskWorld, side: str, price: str) -> str:
    return world.place_master(
        pair="XBTUSD", type=side, ordertype="limit", volume="0.1", price=price
    )


def test_drawdown_past_the_limit_makes_the_user_close_only_until_reset() -> None:
    with risk_world([ALICE, BOB], copy_settings={"risk_check_seconds": "0.2"}) as world:
        daemon = world.start_daemon()
        before = equity_reads(world, "alice")
        wait_until(lambda: equity_reads(world, "alice") >= before + 2, 10, "drawdown checks")
        mark = world.equity("alice")
        world.sim.control("price", {"pair": "XXBTZUSD", "price": "40000"})
        [stop] = wait_until(lambda: events_for(daemon, "risk.drawdown_stop", "alice"), 10, "stop")
        equity = world.equity("alice")
        pct = ((mark - equity) / mark * 100).quantize(Decimal("0.01"))
        assert stop["account"] == "USER:alice"
        assert (Decimal(stop["equity"]), Decimal(stop["mark"])) == (equity, mark)
        assert Decimal(stop["pct"]) == pct > 20
        [on] = wait_until(lambda: events_for(daemon, "risk.close_only_on", "alice"), 10, "on")
        assert on["reason"].startswith("drawdown stop")
        assert events_for(daemon, "risk.drawdown_stop", "bob") == []

        buy = limit(world, "buy", "30000")
        summary = world.summary(daemon, buy)
        assert (summary["placed"], summary["skipped"]) == (1, 1)
        sell = limit(world, "sell", "50000")
        assert world.summary(daemon, sell)["placed"] == 2
        assert daemon.stop() == 0

        with world.ledger() as ledger:
            state = ledger.risk_state("alice")
            assert state.drawdown_stop
            assert state.equity_mark == mark
            assert state.stop_reason is not None
            assert "drawdown stop" in state.stop_reason
            [event] = [e for e in ledger.risk_events("alice") if e.kind == "drawdown_stop"]
            assert event.detail["equity"] == str(equity)
            assert event.detail["mark"] == str(mark)
            assert ledger.risk_state("bob").equity_mark is None
            assert ledger.copy(buy, "alice").state is CopyState.SKIPPED
            assert ledger.copy(buy, "bob").state is CopyState.PLACED
            assert ledger.copy(sell, "alice").state is CopyState.PLACED

        # The stop survives a restart (it is in the ledger) until the operator lifts it.
        daemon = world.start_daemon()
        wait_until(lambda: events_for(daemon, "risk.close_only_on", "alice"), 10, "on again")
        reset = world.data_dir / "RESET_DRAWDOWN.alice"
        reset.write_text("")
        [lifted] = wait_until(
            lambda: events_for(daemon, "risk.drawdown_reset", "alice"), 10, "reset"
        )
        assert Decimal(lifted["equity"]) == equity
        wait_until(lambda: events_for(daemon, "risk.close_only_off", "alice"), 10, "off")
        assert not reset.exists()
        again = limit(world, "buy", "31000")
        assert world.summary(daemon, again)["placed"] == 2
        assert daemon.stop() == 0
        with world.ledger() as ledger:
            state = ledger.risk_state("alice")
            assert not state.drawdown_stop
            assert state.equity_mark == equity
