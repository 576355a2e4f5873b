"""The slippage cap, end to end with an order book: the master buys at market, then the book moves
up before the copies go out. A user with max_slippage_bps gets an IOC limit order capped at the
master's average fill price plus that many basis points (tick-rounded down): it fills only what
the moved book has within the cap, the rest is reported (`risk.slippage_unfilled`, a
`risk_events` row) and never chased. A user without the cap gets a market order that walks the
book past it."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from copytrader.ledger import CopyState, copy_client_order_id
from tests.risk.world import RiskUser, SimUser, events_for, risk_world

ALICE = RiskUser(SimUser("alice", {"ZUSD": "300000"}), {"max_slippage_bps": '"10"'})
BOB = RiskUser(SimUser("bob", {"ZUSD": "300000"}))
# The master's own walk empties the best levels, which come back over a minute, and the price
# then moves up: little is left within the cap when the copies go out.
BOOKS = "[books]\nrefill_seconds = 60\n"
TICK = Decimal("0.1")  # XBT/USD


def test_a_capped_market_copy_fills_within_the_cap_and_reports_the_rest() -> None:
    with risk_world([ALICE, BOB], books=BOOKS) as world:
        world.start_daemon().stop()  # the first start: the baseline
        txid = world.place_master(pair="XBTUSD", type="buy", ordertype="market", volume="1")
        [master] = world.reader("master").private("QueryOrders", {"txid": txid}).values()
        master_avg = Decimal(master["price"])
        world.sim.control("price", {"pair": "XXBTZUSD", "price": "60060"})  # the book moves up

        daemon = world.start_daemon()
        summary = world.summary(daemon, txid)
        assert summary["placed"] == 2
        cap = (master_avg * (1 + Decimal(10) / 10_000) / TICK).to_integral_value(ROUND_DOWN) * TICK

        [report] = events_for(daemon, "risk.slippage_unfilled", "alice")
        assert report["account"] == "USER:alice"
        assert Decimal(report["cap_price"]) == cap
        assert Decimal(report["master_avg_price"]) == master_avg
        alice = world.order_of("alice", copy_client_order_id(txid, "alice"))
        assert alice["descr"]["ordertype"] == "limit"
        assert Decimal(alice["descr"]["price"]) == cap
        filled, volume = Decimal(alice["vol_exec"]), Decimal(alice["vol"])
        assert 0 < filled < volume
        assert Decimal(alice["price"]) <= cap  # the average fill
        assert (Decimal(report["filled"]), Decimal(report["unfilled"])) == (
            filled,
            volume - filled,
        )
        [placed] = events_for(daemon, "copy.placed", "alice")
        assert any("capped" in note for note in placed["notes"])
        assert events_for(daemon, "risk.slippage_unfilled", "bob") == []
        bob = world.order_of("bob", copy_client_order_id(txid, "bob"))
        assert bob["descr"]["ordertype"] == "market"
        assert Decimal(bob["vol_exec"]) == Decimal(bob["vol"])
        assert Decimal(bob["price"]) > cap  # what the cap kept alice from paying
        assert daemon.stop() == 0

        assert len(world.all_orders("alice")) == 1  # the unfilled part was not chased
        with world.ledger() as ledger:
            row = ledger.copy(txid, "alice")
            assert row.state is CopyState.PLACED
            assert row.price == cap
            assert row.reason is not None
            assert "not chased" in row.reason
            [event] = [e for e in ledger.risk_events("alice") if e.kind == "slippage_unfilled"]
            assert event.master_txid == txid
            assert Decimal(event.detail["filled"]) == filled
            assert Decimal(event.detail["unfilled"]) == volume - filled
            assert ledger.risk_events("bob") == []
