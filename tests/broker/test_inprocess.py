"""The broker over the in-process exchange (kraken_sim.inprocess) through its `transport`
seam: the same answers and failures as over HTTP, without a socket."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from benchmarks.broker_load import load_broker

from copytrader.domain import OrderType, Side
from copytrader.errors import OutcomeUnknownError, RetryLaterError
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import OrderRequest
from kraken_sim.inprocess import InProcessExchange
from tests.broker.conftest import SimAccount, accounts_toml

BASE_URL = "http://kraken.inprocess.test"
ORDER = OrderRequest(
    pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
    volume=Decimal("0.01"), price=Decimal("50000"),
)  # fmt: skip


@pytest.fixture(name="exchange")
def _exchange(master: SimAccount) -> InProcessExchange:
    return InProcessExchange(accounts_toml(master), seed=7)


@pytest.fixture(name="broker")
def _broker(
    master: SimAccount, exchange: InProcessExchange, tmp_path: Path
) -> Iterator[KrakenBroker]:
    broker = load_broker(master, BASE_URL, tmp_path, transport=exchange.adapter())
    yield broker
    broker.close()


def test_reads_and_an_order_go_through_the_transport(
    broker: KrakenBroker, exchange: InProcessExchange
) -> None:
    assert broker.balances()["ZUSD"] == Decimal("100000")
    placed = broker.add_order(ORDER)
    assert set(broker.open_orders()) == set(placed.txids)
    assert broker.pair("XBTUSD").pair_id == "XXBTZUSD"
    assert exchange.state()["counters"]["invalid_nonce"] == 0


def test_a_dropped_add_order_reply_is_resolved_by_a_lookup(
    broker: KrakenBroker, exchange: InProcessExchange
) -> None:
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "drop_reply", "count": 1})
    placed = broker.add_order(ORDER)
    assert placed.resolved_by_lookup
    assert list(broker.open_orders()) == list(placed.txids)


def test_a_refused_connection_is_not_sent_and_a_hang_is_no_reply(
    broker: KrakenBroker, exchange: InProcessExchange
) -> None:
    exchange.arm_fault({"endpoint": "Balance", "kind": "refused", "count": -1})
    with pytest.raises(RetryLaterError, match="not sent"):
        broker.balances()
    exchange.clear_faults()
    exchange.arm_fault({"endpoint": "CancelOrder", "kind": "hang", "count": -1})
    with pytest.raises(OutcomeUnknownError):
        broker.private_write("CancelOrder", {"txid": "OUNKNOWN"})
