"""Copies whose order is on Kraken but not (yet) visible to lookups: never lost, never doubled.

The copier runs in-process against the simulator with a real broker and ledger. The exchange
leaves the user's orders out of its OpenOrders/ClosedOrders replies (a `mutate` fault), as an
exchange whose order lists lag behind its matching engine would: the order is there, the lists
do not show it yet.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from copytrader.copying.accounts import CopierSettings, UserAccount, UserSizing
from copytrader.copying.kill_switch import KillSwitch
from copytrader.copying.lanes import Copier
from copytrader.domain import OrderStatus, OrderType, Side, SizingMode, TimeInForce
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import (
    AddOrderResult,
    AssetBalance,
    ClosedOrdersPage,
    Order,
    OrderRequest,
    PairInfo,
    Ticker,
    TradeBalance,
)
from copytrader.ledger import CopyRecord, CopyState, Decision, Ledger, MasterOrderRecord
from tests.broker.conftest import SimAccount, accounts_toml, make_broker
from tests.copy.harness import wait_until
from tests.simproc import SimProcess, running_sim

USER = "alice"
MASTER_TXID = "OMASTR-AAAAA-BBBBBB"


class LaggingBroker:
    """A real broker that runs `before_read` (once set) when the open orders are read: lets
    a test change the ledger at that moment. Every call goes to the broker as it is."""

    def __init__(self, broker: KrakenBroker) -> None:
        self.broker = broker
        self.before_read: Callable[[], None] | None = None

    def open_orders(self, *, cl_ord_id: str | None = None) -> dict[str, Order]:
        if self.before_read is not None:
            self.before_read()
        return self.broker.open_orders(cl_ord_id=cl_ord_id)

    def closed_orders(
        self, *, start: float | None = None, ofs: int = 0, cl_ord_id: str | None = None
    ) -> ClosedOrdersPage:
        return self.broker.closed_orders(start=start, ofs=ofs, cl_ord_id=cl_ord_id)

    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> Order | None:
        return self.broker.find_order_by_cl_ord_id(cl_ord_id)

    def trade_balance(self, asset: str = "ZUSD") -> TradeBalance:
        return self.broker.trade_balance(asset)

    def balances_ex(self) -> dict[str, AssetBalance]:
        return self.broker.balances_ex()

    def pair(self, name: str) -> PairInfo:
        return self.broker.pair(name)

    def cached_pair(self, name: str) -> PairInfo | None:
        return self.broker.cached_pair(name)

    def ticker(self, pair: str) -> Ticker:
        return self.broker.ticker(pair)

    def add_order(self, request: OrderRequest) -> AddOrderResult:
        return self.broker.add_order(request)

    def cancel_order(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> int:
        return self.broker.cancel_order(txid=txid, cl_ord_id=cl_ord_id)

    def settle(self, seconds: float) -> None:
        self.broker.settle(seconds)

    def cooldown_remaining_s(self) -> float:
        return self.broker.cooldown_remaining_s()

    def cooldown_reason(self) -> str:
        return self.broker.cooldown_reason()


@pytest.fixture(name="user")
def _user() -> SimAccount:
    return SimAccount(name=USER, account_id=USER.upper())


@pytest.fixture(name="sim")
def _sim(user: SimAccount) -> Iterator[SimProcess]:
    with running_sim(accounts_toml(user)) as sim:
        yield sim


@pytest.fixture(name="broker")
def _broker(user: SimAccount, sim: SimProcess, tmp_path: Path) -> Iterator[LaggingBroker]:
    broker = make_broker(user, sim, tmp_path / "broker")
    yield LaggingBroker(broker)
    broker.close()


def master_order(now: float, opened_after_s: float = 60) -> MasterOrderRecord:
    return MasterOrderRecord(
        txid=MASTER_TXID, pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.01"), price=Decimal("50000"), price2=None, oflags=frozenset(),
        timeinforce=TimeInForce.GTC, expiretm=None, opentm=now + opened_after_s,
        status=OrderStatus.OPEN,
        vol_exec=Decimal("0"), avg_price=None, decision=Decision.COPY, skip_reason=None,
        master_equity=Decimal("100000"), master_base_before=Decimal("0"), first_seen_at=now,
    )  # fmt: skip


def order_lists_lag(sim: SimProcess) -> None:
    """From now on OpenOrders and ClosedOrders leave every order out of their replies."""
    sim.control("fault", {"endpoint": "OpenOrders", "kind": "mutate", "path": "open.*",
                          "delete": True, "count": -1})  # fmt: skip
    sim.control("fault", {"endpoint": "ClosedOrders", "kind": "mutate", "path": "closed.*",
                          "delete": True, "count": -1})  # fmt: skip


def user_orders(sim: SimProcess, cl_ord_id: str) -> list[dict[str, Any]]:
    """The user's open orders with this cl_ord_id, as the simulator holds them."""
    state = sim.control("state")["accounts"][USER]
    return [o for o in state["open_orders"].values() if o.get("cl_ord_id") == cl_ord_id]


def place_landed_order(broker: LaggingBroker, cl_ord_id: str) -> None:
    """The copy's order as an earlier attempt placed it on the exchange."""
    broker.add_order(
        OrderRequest(
            pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT, volume=Decimal("0.01"),
            price=Decimal("50000"), cl_ord_id=cl_ord_id,
        )
    )  # fmt: skip


@contextlib.contextmanager
def running_copier(ledger: Ledger, broker: LaggingBroker, tmp_path: Path) -> Iterator[Copier]:
    """A copier for the user; on exit it is stopped (its lanes must finish) and the ledger
    closed."""
    stop = threading.Event()
    account = UserAccount(USER, USER, broker, UserSizing())
    settings = CopierSettings(sizing_mode=SizingMode.MULTIPLIER, max_attempts=3)
    copier = Copier(ledger, {USER: account}, settings, KillSwitch(tmp_path), stop=stop)
    try:
        yield copier
    finally:
        stop.set()
        assert copier.shutdown(10)
        ledger.close()


def finished(ledger: Ledger) -> CopyRecord | None:
    copy = ledger.copy(MASTER_TXID, USER)
    return copy if copy.state not in (CopyState.PLANNED, CopyState.SUBMITTING) else None


def test_duplicate_reply_marks_the_copy_placed_and_its_cancel_goes_by_cl_ord_id(
    broker: LaggingBroker, sim: SimProcess, tmp_path: Path
) -> None:
    """When Kraken answers `Duplicate cl_ord_id` but lookups miss the order, the copy is
    recorded placed (not failed as "not on Kraken") and the master's cancel cancels it."""
    ledger = Ledger.in_data_dir(tmp_path)
    now = time.time()
    ledger.record_master_order(master_order(now), [USER])
    cl_ord_id = ledger.copy(MASTER_TXID, USER).cl_ord_id
    # An earlier attempt landed; the order lists do not show it yet.
    place_landed_order(broker, cl_ord_id)
    order_lists_lag(sim)
    with running_copier(ledger, broker, tmp_path) as copier:
        copier.kick()
        copy = wait_until(lambda: finished(ledger), 30, "the copy to finish")
        assert (copy.state, copy.txid) == (CopyState.PLACED, None)
        assert len(user_orders(sim, cl_ord_id)) == 1
        ledger.record_master_update(MASTER_TXID, OrderStatus.CANCELLED, Decimal("0"))
        copier.kick()
        wait_until(
            lambda: ledger.copy(MASTER_TXID, USER).state is CopyState.CANCELLED,
            30,
            "the copy to be cancelled",
        )
        assert user_orders(sim, cl_ord_id) == []


def test_copy_missed_by_its_lookup_is_cancelled_not_left_live_after_the_master_cancel(
    broker: LaggingBroker, sim: SimProcess, tmp_path: Path
) -> None:
    """A submitting copy whose order landed but is not visible yet, when the master order is
    cancelled meanwhile, is cancelled by cl_ord_id instead of being abandoned as not sent."""
    ledger = Ledger.in_data_dir(tmp_path)
    now = time.time()
    ledger.record_master_order(master_order(now), [USER])
    sub = ledger.mark_submitting(
        MASTER_TXID, USER, volume=Decimal("0.01"), price=Decimal("50000"), price2=None
    )
    place_landed_order(broker, sub.cl_ord_id)
    order_lists_lag(sim)
    ledger.schedule_retry(MASTER_TXID, USER, next_attempt_at=now, error="reply lost")
    ledger.record_master_update(MASTER_TXID, OrderStatus.CANCELLED, Decimal("0"))
    with running_copier(ledger, broker, tmp_path) as copier:
        copier.kick()
        ended = (CopyState.CANCELLED, CopyState.SKIPPED, CopyState.FAILED)
        copy = wait_until(
            lambda: (c := ledger.copy(MASTER_TXID, USER)).state in ended and c,
            30,
            "the copy to end",
        )
        assert copy.state is CopyState.CANCELLED
        assert user_orders(sim, sub.cl_ord_id) == []


def test_order_of_an_earlier_run_found_after_the_master_cancel_is_recorded_and_cancelled(
    broker: LaggingBroker, sim: SimProcess, tmp_path: Path
) -> None:
    """When the master's cancel skips a copy while its order (sent by an earlier run) is being
    found on the exchange, the order is recorded placed and then cancelled, not left live."""
    ledger = Ledger.in_data_dir(tmp_path)
    now = time.time()
    ledger.record_master_order(master_order(now, opened_after_s=-10), [USER])
    cl_ord_id = ledger.copy(MASTER_TXID, USER).cl_ord_id
    place_landed_order(broker, cl_ord_id)

    def master_cancelled_meanwhile() -> None:
        broker.before_read = None
        ledger.record_master_update(MASTER_TXID, OrderStatus.CANCELLED, Decimal("0"))

    broker.before_read = master_cancelled_meanwhile
    with running_copier(ledger, broker, tmp_path) as copier:
        copier.kick()
        wait_until(
            lambda: ledger.copy(MASTER_TXID, USER).state is CopyState.CANCELLED,
            30,
            "the copy to be cancelled",
        )
        assert user_orders(sim, cl_ord_id) == []
        assert broker.before_read is None  # the race really happened
