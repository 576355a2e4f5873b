"""OpenOrders, ClosedOrders, QueryOrders and TradesHistory: filters and paging."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kraken_sim.engine import Engine
from kraken_sim.errors import invalid_arguments
from tests.sim_engine.conftest import Clock, add, error_of

BUY = {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.001"}
REST = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000",
        "volume": "0.001"}  # fmt: skip


@pytest.fixture
def rich(clock: Clock) -> Engine:
    engine = Engine(seed=11, clock=clock)
    engine.add_account("r", balances={"ZUSD": Decimal("10000000")}, tier="pro")
    engine.add_account("other", balances={"ZUSD": Decimal("1000")}, tier="pro")
    return engine


def _closed(engine: Engine, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = engine.private("r", "ClosedOrders", params)
    return result


def test_closed_orders_pages_of_fifty_newest_first(rich: Engine, clock: Clock) -> None:
    """120 closed orders come back 50, 50, 20, newest close first, count = 120 on every page."""
    placed = []
    for _ in range(120):
        placed.append(add(rich, "r", **BUY))
        clock.advance(1)
    newest_first = list(reversed(placed))
    pages = [_closed(rich, ofs=ofs) for ofs in (0, 50, 100, 150)]
    assert [len(page["closed"]) for page in pages] == [50, 50, 20, 0]
    assert all(page["count"] == 120 for page in pages)
    assert [txid for page in pages for txid in page["closed"]] == newest_first
    assert "count" not in _closed(rich, without_count="true")
    assert error_of(lambda: _closed(rich, ofs="-1")) == invalid_arguments("ofs")


def test_closed_orders_ties_are_broken_by_close_order(rich: Engine) -> None:
    """Orders closed at the same instant list the later close first."""
    first, second = add(rich, "r", **BUY), add(rich, "r", **BUY)
    assert list(_closed(rich)["closed"]) == [second, first]


def test_closed_orders_start_exclusive_end_inclusive(rich: Engine, clock: Clock) -> None:
    """start excludes its own second, end includes it; both accept an order txid."""
    times = {}
    for _ in range(5):
        txid = add(rich, "r", **BUY)
        times[txid] = clock.now
        clock.advance(10)
    ids = list(times)
    window = _closed(rich, start=str(times[ids[1]]), end=str(times[ids[3]]))
    assert list(window["closed"]) == [ids[3], ids[2]]
    assert window["count"] == 2
    assert list(_closed(rich, start=ids[1], end=ids[3])["closed"]) == [ids[3], ids[2]]
    assert list(_closed(rich, start=ids[3])["closed"]) == [ids[4]]
    assert error_of(lambda: _closed(rich, start="ONOPE1-AAAAA-AAAAAA")) == (
        invalid_arguments("start")
    )


def test_closed_orders_closetime_picks_which_time_counts(rich: Engine, clock: Clock) -> None:
    """closetime=open compares opentm, close compares closetm, both accepts either."""
    resting = add(rich, "r", **REST)
    opened = clock.now
    clock.advance(100)
    rich.private("r", "CancelOrder", {"txid": resting})
    assert list(_closed(rich, closetime="open", start=str(opened + 50))["closed"]) == []
    assert list(_closed(rich, closetime="close", start=str(opened + 50))["closed"]) == [resting]
    assert list(_closed(rich, closetime="both", end=str(opened))["closed"]) == [resting]
    assert error_of(lambda: _closed(rich, closetime="later")) == invalid_arguments("closetime")


def test_closed_orders_userref_and_cl_ord_id_filters(rich: Engine) -> None:
    """userref and cl_ord_id select exactly the matching closed orders."""
    a = add(rich, "r", **BUY, userref="5")
    b = add(rich, "r", **BUY, userref="5")
    c = add(rich, "r", **BUY, cl_ord_id="copy-c")
    add(rich, "r", **BUY)
    assert list(_closed(rich, userref="5")["closed"]) == [b, a]
    assert _closed(rich, userref="5")["count"] == 2
    assert list(_closed(rich, cl_ord_id="copy-c")["closed"]) == [c]
    assert _closed(rich, cl_ord_id="nope") == {"closed": {}, "count": 0}


def test_closed_orders_trades_only_when_asked(rich: Engine) -> None:
    """The trades list appears only with trades=true."""
    txid = add(rich, "r", **BUY)
    assert "trades" not in _closed(rich)["closed"][txid]
    assert len(_closed(rich, trades="True")["closed"][txid]["trades"]) == 1


def test_open_orders_filters(rich: Engine) -> None:
    """OpenOrders filters by userref and cl_ord_id, newest first, and hides closed ones."""
    a = add(rich, "r", **REST, userref="1")
    b = add(rich, "r", **REST, cl_ord_id="x-1")
    c = add(rich, "r", **REST, userref="1")
    add(rich, "r", **BUY, userref="1")
    assert list(rich.private("r", "OpenOrders", {})["open"]) == [c, b, a]
    assert list(rich.private("r", "OpenOrders", {"userref": 1})["open"]) == [c, a]
    assert list(rich.private("r", "OpenOrders", {"cl_ord_id": "x-1"})["open"]) == [b]
    assert rich.private("other", "OpenOrders", {}) == {"open": {}}


def test_query_orders_returns_only_known_ids(rich: Engine) -> None:
    """QueryOrders answers the known txids (open or closed); unknown ids are left out."""
    open_id = add(rich, "r", **REST)
    closed_id = add(rich, "r", **BUY)
    other_id = add(rich, "other", **REST)
    asked = f"{closed_id},ONOPE1-AAAAA-AAAAAA,{open_id},{other_id}"
    result = rich.private("r", "QueryOrders", {"txid": asked})
    assert list(result) == [closed_id, open_id]
    assert result[closed_id]["status"] == "closed"
    assert rich.private("r", "QueryOrders", {"txid": "ONOPE1-AAAAA-AAAAAA"}) == {}
    assert rich.private("r", "QueryOrders", {"txid": open_id, "userref": "3"}) == {}


def test_query_orders_argument_checks(rich: Engine) -> None:
    """txid is required and takes at most 50 ids."""
    assert error_of(lambda: rich.private("r", "QueryOrders", {})) == invalid_arguments("txid")
    many = ",".join(f"O{i:05d}-AAAAA-AAAAAA" for i in range(51))
    assert error_of(lambda: rich.private("r", "QueryOrders", {"txid": many})) == (
        invalid_arguments("txid")
    )


def test_trades_history_pages_and_window(rich: Engine, clock: Clock) -> None:
    """TradesHistory pages 50 at a time newest first; start/end accept times and trade ids."""
    for _ in range(60):
        add(rich, "r", **BUY)
        clock.advance(1)
    first = rich.private("r", "TradesHistory", {})
    second = rich.private("r", "TradesHistory", {"ofs": "50"})
    assert (len(first["trades"]), len(second["trades"]), first["count"]) == (50, 10, 60)
    ids = [*first["trades"], *second["trades"]]
    times = [t["time"] for t in [*first["trades"].values(), *second["trades"].values()]]
    assert times == sorted(times, reverse=True)
    window = rich.private("r", "TradesHistory", {"start": ids[5], "end": ids[2]})
    assert list(window["trades"]) == ids[2:5]
    trade = first["trades"][ids[0]]
    assert set(trade) == {"ordertxid", "postxid", "pair", "time", "type", "ordertype", "price",
                          "cost", "fee", "vol", "margin", "leverage", "misc", "trade_id",
                          "maker"}  # fmt: skip
    assert trade["pair"] == "XXBTZUSD"
    assert rich.private("r", "TradesHistory", {"type": "closed position"})["count"] == 0
    assert error_of(lambda: rich.private("r", "TradesHistory", {"type": "x"})) == (
        invalid_arguments("type")
    )
