"""What needs the books' partial fills: AmendOrder on a partly filled order keeps the fills, and a
quantity at or below what has filled cancels the rest, as Kraken documents; a FOK limit walks the
book only when the walk fills all of it."""

from __future__ import annotations

from decimal import Decimal

from kraken_sim.books import BookSettings
from kraken_sim.engine import Engine
from tests.sim_engine.conftest import Clock, add, order

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000",
         "volume": "0.10000000"}  # fmt: skip


def test_amend_above_the_filled_quantity_keeps_the_fills(engine: Engine) -> None:
    txid = add(engine, **LIMIT)
    assert engine.trade("XBTUSD", "sell", "50000", "0.04") == Decimal("0.04")
    engine.private("alice", "AmendOrder", {"txid": txid, "order_qty": "0.06"})
    amended = order(engine, txid)
    assert (amended["status"], amended["vol"], amended["vol_exec"]) == (
        "open", "0.06000000", "0.04000000")  # fmt: skip
    rows = engine.private("alice", "OrderAmends", {"txid": txid})["amends"]
    assert rows[-1]["remaining_qty"] == "0.02000000"


def test_amend_below_the_filled_quantity_cancels_the_rest(engine: Engine) -> None:
    txid = add(engine, **LIMIT)
    engine.trade("XBTUSD", "sell", "50000", "0.04")
    trades_before = order(engine, txid)["trades"]
    engine.private("alice", "AmendOrder", {"txid": txid, "order_qty": "0.03"})
    done = order(engine, txid)
    assert (done["status"], done["vol"], done["vol_exec"]) == (
        "canceled", "0.10000000", "0.04000000")  # fmt: skip
    assert done["reason"] == "Order quantity amended below filled quantity"
    assert done["trades"] == trades_before
    assert set(done["misc"].split(",")) == {"partial", "amended"}
    rows = engine.private("alice", "OrderAmends", {"txid": txid})["amends"]
    assert (rows[-1]["order_qty"], rows[-1]["remaining_qty"]) == ("0.03000000", "0.00000000")
    assert engine.private("alice", "OpenOrders", {})["open"] == {}
    assert Decimal(engine.private("alice", "BalanceEx", {})["ZUSD"]["hold_trade"]) == 0


def test_fok_over_a_book_fills_entirely_or_not_at_all(clock: Clock) -> None:
    engine = Engine(seed=7, clock=clock, books=BookSettings(enabled=True))
    engine.add_account("alice", balances={"ZUSD": Decimal("10000000")}, tier="pro")
    asks = engine.public("Depth", {"pair": "XBTUSD"})["XXBTZUSD"]["asks"]
    limit = Decimal(asks[1][0])  # the best two ask levels are within the limit
    within = Decimal(asks[0][1]) + Decimal(asks[1][1])
    too_much = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price=str(limit),
                   volume=str(within + Decimal("0.001")), timeinforce="FOK")  # fmt: skip
    refused = order(engine, too_much)
    assert (refused["status"], refused["vol_exec"], refused["reason"]) == (
        "canceled", "0.00000000", "Insufficient liquidity")  # fmt: skip
    assert engine.public("Depth", {"pair": "XBTUSD"})["XXBTZUSD"]["asks"][:2] == asks[:2]
    enough = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price=str(limit),
                 volume=str(within), timeinforce="FOK")  # fmt: skip
    filled = order(engine, enough)
    assert (filled["status"], Decimal(filled["vol_exec"])) == ("closed", within)
    assert len(filled["trades"]) == 2


def test_amend_that_makes_a_limit_marketable_takes_from_the_book(clock: Clock) -> None:
    """A resting buy amended above the best ask walks the asks as taker up to its new limit
    (each level at its own price, the taker fee), as a new order with that limit would."""
    engine = Engine(seed=7, clock=clock, books=BookSettings(enabled=True))
    engine.add_account("alice", balances={"ZUSD": Decimal("10000000")}, tier="pro")
    asks = engine.public("Depth", {"pair": "XBTUSD"})["XXBTZUSD"]["asks"]
    first, second = (Decimal(asks[0][1]), Decimal(asks[1][1]))
    volume = first + second / 2  # all of the best level, half of the next
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price="50000",
               volume=str(volume))  # fmt: skip
    engine.private("alice", "AmendOrder", {"txid": txid, "limit_price": asks[1][0]})
    filled = order(engine, txid)
    assert (filled["status"], Decimal(filled["vol_exec"])) == ("closed", volume)
    trades = engine.private("alice", "QueryTrades", {"txid": ",".join(filled["trades"])})
    by_price = sorted((Decimal(t["price"]), Decimal(t["vol"]), t["maker"]) for t in trades.values())
    assert by_price == [
        (Decimal(asks[0][0]), first, False),
        (Decimal(asks[1][0]), second / 2, False),
    ]
