"""Writes whose reply is lost or refused: every placed order exists exactly once.

The broker runs against the simulator's exchange in-process (its `transport` seam; the same
request path, faults and answers as over HTTP, see tests/sim/test_parity.py), so these many
cases cost no subprocess each. A hung request, which only a real socket can show, runs against
the simulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pytest
from benchmarks.broker_load import load_broker
from structlog.testing import capture_logs

from copytrader.domain import OrderStatus, OrderType, Side
from copytrader.errors import OrderRejectedError, OutcomeUnknownError
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import OrderRequest
from kraken_sim.inprocess import InProcessExchange
from tests.broker.conftest import SimAccount, accounts_toml, make_broker
from tests.simproc import running_sim

BASE_URL = "http://kraken.inprocess.test"


class Exchange(Protocol):
    """The simulator's control operations, in-process or over HTTP."""

    def control(self, path: str, payload: dict[str, Any] | None = None) -> Any: ...


@pytest.fixture(name="sim")
def _sim(master: SimAccount) -> InProcessExchange:
    return InProcessExchange(accounts_toml(master), seed=7)


@pytest.fixture(name="broker")
def _broker(master: SimAccount, sim: InProcessExchange, tmp_path: Path) -> Iterator[KrakenBroker]:
    broker = load_broker(master, BASE_URL, tmp_path / "data", transport=sim.adapter())
    yield broker
    broker.close()


def sim_counters(sim: Exchange) -> dict[str, Any]:
    counters: dict[str, Any] = sim.control("state")["counters"]
    return counters


def limit_buy(cl_ord_id: str | None = None, userref: int | None = None) -> OrderRequest:
    return OrderRequest(
        pair="XBTUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        volume=Decimal("0.01"),
        price=Decimal("50000"),
        cl_ord_id=cl_ord_id,
        userref=userref,
    )


def orders_with(sim: Exchange, cl_ord_id: str) -> list[dict[str, Any]]:
    """Every order (open or closed) the simulator holds for the master with this cl_ord_id."""
    state = sim.control("state")
    open_orders = state["accounts"]["master"]["open_orders"].values()
    return [o for o in open_orders if o.get("cl_ord_id") == cl_ord_id]


def arm(sim: Exchange, endpoint: str, kind: str, count: int = 1) -> None:
    sim.control("fault", {"endpoint": endpoint, "kind": kind, "count": count})


@pytest.mark.parametrize(
    "faults",
    [
        ["drop_reply"],
        ["http502"],
        ["http520"],
        ["unavailable"],
        ["busy"],
        ["internal"],
        ["http502", "drop_reply"],
        ["unavailable", "http502", "internal"],
    ],
)
def test_order_exists_exactly_once_after_faults(
    broker: KrakenBroker, sim: Exchange, faults: list[str]
) -> None:
    """Lost replies, 5xx and EService errors on AddOrder never double the order nor lose it."""
    for kind in faults:
        arm(sim, "AddOrder", kind)
    result = broker.add_order(limit_buy("copy-1"))
    assert len(orders_with(sim, "copy-1")) == 1
    assert result.cl_ord_id == "copy-1"
    (txid,) = result.txids
    assert broker.open_orders()[txid].cl_ord_id == "copy-1"
    assert result.resolved_by_lookup == ("drop_reply" in faults)
    assert sim_counters(sim)["invalid_nonce"] == 0


def test_dropped_reply_is_resolved_by_lookup_not_resend(
    broker: KrakenBroker, sim: Exchange
) -> None:
    """After the exchange applied AddOrder and the reply was lost, only a lookup follows."""
    arm(sim, "AddOrder", "drop_reply")
    with capture_logs() as logs:
        result = broker.add_order(limit_buy("copy-2"))
    assert result.resolved_by_lookup
    assert sim_counters(sim)["by_method"]["AddOrder"] == 1
    resolved = [e for e in logs if e["event"] == "broker.outcome_resolved"]
    assert resolved[0]["found"] is True
    assert resolved[0]["account"] == "MASTER"
    assert resolved[0]["txid"] == result.txids[0]


def test_hanging_add_order_times_out_and_lands_once(master: SimAccount, tmp_path: Path) -> None:
    """A request that never gets a reply times out (the timeout is honoured) and is not
    doubled; over HTTP, where the hang is a real socket that never answers."""
    with running_sim(accounts_toml(master)) as sim:
        broker = make_broker(master, sim, tmp_path, timeout_s=0.5)
        arm(sim, "AddOrder", "hang")
        result = broker.add_order(limit_buy("copy-3"))
        assert len(orders_with(sim, "copy-3")) == 1
        assert not result.resolved_by_lookup  # the hung request was never applied: resent once
        assert sim_counters(sim)["by_method"]["AddOrder"] == 2


def test_unresolvable_outcome_raises_and_sends_nothing_more(
    broker: KrakenBroker, sim: Exchange
) -> None:
    """If the lookup itself keeps failing, OutcomeUnknownError is raised and AddOrder not resent."""
    arm(sim, "AddOrder", "drop_reply")
    arm(sim, "OpenOrders", "unavailable", count=-1)
    with pytest.raises(OutcomeUnknownError, match=r"\[MASTER\] AddOrder: outcome unknown"):
        broker.add_order(limit_buy("copy-4"))
    assert sim_counters(sim)["by_method"]["AddOrder"] == 1
    sim.control("faults/clear", {})
    sim.control("clock", {"advance_s": 60})  # the lookups filled the REST counter; let it drain
    found = broker.find_order_by_cl_ord_id("copy-4")
    assert found is not None
    assert found.status is OrderStatus.OPEN


def test_userref_only_order_is_never_resent(broker: KrakenBroker, sim: Exchange) -> None:
    """Without a cl_ord_id the outcome cannot be looked up, so it is raised, not retried."""
    arm(sim, "AddOrder", "drop_reply")
    with pytest.raises(OutcomeUnknownError):
        broker.add_order(limit_buy(userref=42))
    assert sim_counters(sim)["by_method"]["AddOrder"] == 1


def test_order_without_ids_gets_a_client_order_id(broker: KrakenBroker, sim: Exchange) -> None:
    """An order sent with neither id gets a fresh cl_ord_id, so its outcome can be resolved."""
    arm(sim, "AddOrder", "drop_reply")
    result = broker.add_order(limit_buy())
    assert result.cl_ord_id is not None
    assert result.resolved_by_lookup
    assert len(orders_with(sim, result.cl_ord_id)) == 1


def test_unreadable_add_order_reply_is_resolved_by_lookup(
    broker: KrakenBroker, sim: Exchange
) -> None:
    """An AddOrder applied but answered with a body that is not Kraken's envelope is looked
    up, not sent again: one order with that cl_ord_id."""
    arm(sim, "AddOrder", "bad_reply")
    result = broker.add_order(limit_buy("copy-bad"))
    assert result.resolved_by_lookup
    assert len(orders_with(sim, "copy-bad")) == 1
    assert sim_counters(sim)["by_method"]["AddOrder"] == 1
    assert broker.open_orders()[result.txids[0]].cl_ord_id == "copy-bad"


def test_unreadable_cancel_reply_is_resolved_by_lookup(broker: KrakenBroker, sim: Exchange) -> None:
    """A CancelOrder applied but answered with a body that is not Kraken's envelope is
    settled by looking the order up."""
    placed = broker.add_order(limit_buy("cancel-bad"))
    arm(sim, "CancelOrder", "bad_reply")
    assert broker.cancel_order(txid=placed.txids[0]) == 1
    assert sim_counters(sim)["by_method"]["CancelOrder"] == 1
    assert orders_with(sim, "cancel-bad") == []


def test_duplicate_client_order_id_returns_the_existing_order(
    broker: KrakenBroker, sim: Exchange
) -> None:
    """Sending a cl_ord_id that is already open returns that order instead of failing."""
    first = broker.add_order(limit_buy("copy-5"))
    again = broker.add_order(limit_buy("copy-5"))
    assert again.txids == first.txids
    assert again.resolved_by_lookup
    assert len(orders_with(sim, "copy-5")) == 1


def test_rejected_order_is_raised_without_retry(broker: KrakenBroker, sim: Exchange) -> None:
    """A definitive refusal (insufficient funds) is OrderRejectedError after one request."""
    request = OrderRequest(
        pair="XBTUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        volume=Decimal("1000"),
        price=Decimal("50000"),
    )
    with pytest.raises(OrderRejectedError, match="EOrder:Insufficient funds") as caught:
        broker.add_order(request)
    assert caught.value.account == "MASTER"
    assert sim_counters(sim)["by_method"]["AddOrder"] == 1


@pytest.mark.parametrize("kind", ["drop_reply", "http502", "unavailable"])
def test_cancel_with_lost_reply_cancels_once(
    broker: KrakenBroker, sim: Exchange, kind: str
) -> None:
    """A CancelOrder whose reply is lost is settled by looking the order up."""
    placed = broker.add_order(limit_buy(f"cancel-{kind}"))
    arm(sim, "CancelOrder", kind)
    assert broker.cancel_order(txid=placed.txids[0]) == 1
    assert orders_with(sim, f"cancel-{kind}") == []
    assert broker.query_orders(placed.txids)[placed.txids[0]].status is OrderStatus.CANCELLED


def test_cancel_by_client_order_id_with_dropped_reply(broker: KrakenBroker, sim: Exchange) -> None:
    """Cancelling by cl_ord_id after a dropped reply resolves through the cl_ord_id lookup."""
    broker.add_order(limit_buy("cancel-cl"))
    arm(sim, "CancelOrder", "drop_reply")
    assert broker.cancel_order(cl_ord_id="cancel-cl") == 1
    assert sim_counters(sim)["by_method"]["CancelOrder"] == 1


def test_cancel_unknown_order_is_rejected(broker: KrakenBroker) -> None:
    """Cancelling an order that does not exist is OrderRejectedError (EOrder:Unknown order)."""
    with pytest.raises(OrderRejectedError, match="EOrder:Unknown order"):
        broker.cancel_order(txid="OAAAAA-BBBBB-CCCCCC")
    with pytest.raises(ValueError, match="exactly one"):
        broker.cancel_order()
