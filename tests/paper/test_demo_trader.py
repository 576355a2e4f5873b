"""Paper mode's demo trader against a simulator process: its opening script places every kind
of master order, fills part of one, and amends a resting limit in place (same txid), as a
real master's trading app does."""

from __future__ import annotations

import random
from decimal import Decimal

import krakenex

from copytrader.domain import Side
from copytrader.paper.demo_trader import OPENING_SCRIPT, DemoTrader
from tests.simproc import new_secret, running_sim

MASTER = ("demo-master-key", new_secret())
TRADER = ("demo-trader-key", new_secret())
ACCOUNTS = f"""
[[accounts]]
name = "master"
key = "{MASTER[0]}"
secret = "{MASTER[1]}"
tier = "pro"
balances = {{ ZUSD = "1000000", XXBT = "10", XETH = "100", SOL = "1000" }}

[[accounts.keys]]
key = "{TRADER[0]}"
secret = "{TRADER[1]}"

[prices]
XXBTZUSD = "60000"
XETHZUSD = "3000"
SOLUSD = "150"

[books]
"""


def test_the_opening_script_amends_a_resting_limit_in_place() -> None:
    with running_sim(ACCOUNTS, "--seed", "5") as sim:
        sim.control("limits", {"rest": False})

        def trade_through(pair: str, side: Side, price: Decimal, volume: Decimal) -> None:
            sim.control("trade", {"pair": pair, "side": side.value, "price": str(price),
                                  "volume": str(volume)})  # fmt: skip

        def set_price(pair: str, price: Decimal) -> None:
            sim.control("price", {"pair": pair, "price": str(price)})

        trader = DemoTrader(
            api_url=sim.url,
            key=TRADER[0],
            secret=TRADER[1],
            set_price=set_price,
            trade_through=trade_through,
            rng=random.Random(3),
        )
        for _ in OPENING_SCRIPT:
            trader.step()

        assert trader.failures == 0
        assert trader.amended, "the opening script ends with an amend"
        txid = trader.amended[0]
        api = krakenex.API(*MASTER)
        api.uri = sim.url
        amends = api.query_private("OrderAmends", {"txid": txid})
        assert amends["error"] == []
        rows = amends["result"]["amends"]
        assert [row["amend_type"] for row in rows] == ["original", "user"]
        placed = next(order for order in trader.placed if order.txid == txid)
        assert Decimal(rows[0]["order_qty"]) == placed.volume
        shown = api.query_private("QueryOrders", {"txid": txid})["result"][txid]
        assert "amended" in shown["misc"].split(",")
        assert Decimal(shown["vol"]) == Decimal(rows[1]["order_qty"])
