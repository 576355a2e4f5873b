"""The master feed turns order snapshots into ordered, de-duplicated events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from copytrader.domain import OrderStatus, OrderType, RateTier, Side, TimeInForce
from copytrader.feed import (
    MasterFillProgress,
    MasterOrderCancelled,
    MasterOrderExpired,
    MasterStatusChanged,
    NewMasterOrder,
    OrderSnapshot,
    derive_events,
    poll_interval_seconds,
)
from copytrader.ledger import Decision, MasterState

NOW = 10_000.0
BASELINE = 5_000.0


def snap(
    txid: str,
    *,
    opentm: float = 9_990.0,
    status: OrderStatus = OrderStatus.OPEN,
    vol_exec: str = "0",
    order_type: OrderType | None = OrderType.LIMIT,
    closetm: float | None = None,
    oflags: frozenset[str] = frozenset(),
) -> OrderSnapshot:
    return OrderSnapshot(
        txid=txid, pair="XBTUSD", side=Side.BUY, order_type=order_type,
        order_type_raw=order_type.value if order_type else "iceberg", volume=Decimal("1"),
        vol_exec=Decimal(vol_exec), price=Decimal("60000"), price2=None, avg_price=None,
        oflags=oflags, timeinforce=TimeInForce.GTC, expiretm=None, opentm=opentm,
        closetm=closetm, status=status,
    )  # fmt: skip


def derive(orders: list[OrderSnapshot], known: dict[str, MasterState] | None = None) -> list[Any]:
    """Events as Any: the tests read each event kind's own fields."""
    return derive_events(orders, known or {}, baseline_at=BASELINE, now=NOW, max_signal_age_s=60)


def known(txid: str, status: OrderStatus = OrderStatus.OPEN, vol_exec: str = "0") -> MasterState:
    return MasterState(txid, status, Decimal(vol_exec), Decision.COPY)


def test_new_orders_come_oldest_first_and_once() -> None:
    """Two new orders, one listed twice, give two NewMasterOrder events in opentm order."""
    late, early = snap("B", opentm=9_995.0), snap("A", opentm=9_991.0)
    events = derive([late, early, snap("B", opentm=9_995.0, status=OrderStatus.CLOSED,
                                       vol_exec="1", closetm=9_996.0)])  # fmt: skip
    assert [type(e) for e in events] == [NewMasterOrder, NewMasterOrder]
    assert [e.order.txid for e in events] == ["A", "B"]
    assert events[1].order.status is OrderStatus.CLOSED  # the most advanced view wins
    assert all(e.decision is Decision.COPY for e in events)


def test_filled_market_order_seen_late_is_copied_only_when_young() -> None:
    """A market order already filled is copied if under max_signal_age, else skipped."""
    young = snap("Y", opentm=NOW - 5, status=OrderStatus.CLOSED, vol_exec="1",
                 order_type=OrderType.MARKET, closetm=NOW - 5)  # fmt: skip
    old = snap("O", opentm=NOW - 600, status=OrderStatus.CLOSED, vol_exec="1",
               order_type=OrderType.MARKET, closetm=NOW - 600)  # fmt: skip
    by_txid = {e.order.txid: e for e in derive([young, old])}
    assert by_txid["Y"].decision is Decision.COPY
    assert by_txid["O"].decision is Decision.SKIP
    assert "signal too old" in by_txid["O"].skip_reason


def test_resting_order_is_copied_whatever_its_age_but_not_before_baseline() -> None:
    """An open order placed while the daemon was down is copied; one before the first start not."""
    events = derive([snap("R", opentm=NOW - 3_000), snap("P", opentm=BASELINE - 1)])
    by_txid = {e.order.txid: e for e in events}
    assert by_txid["R"].decision is Decision.COPY
    assert by_txid["P"].decision is Decision.BASELINE


def test_orders_cancelled_before_seen_and_unsupported_types_are_skipped() -> None:
    """Cancelled-before-seen, unmodelled order types and viqc orders are recorded as skipped."""
    events = derive([
        snap("C", status=OrderStatus.CANCELLED, closetm=NOW - 1),
        snap("I", order_type=None),
        snap("V", oflags=frozenset({"viqc"})),
    ])  # fmt: skip
    reasons = {e.order.txid: (e.decision, e.skip_reason) for e in events}
    assert reasons["C"] == (Decision.SKIP, "master order was already cancelled when first seen")
    assert reasons["I"] == (Decision.SKIP, "order type 'iceberg' is not copied")
    assert reasons["V"][0] is Decision.SKIP


def test_fill_progress_cancel_and_expiry_of_known_orders() -> None:
    """Known orders yield fill progress, cancel and expiry events; unchanged ones nothing."""
    orders = [
        snap("F", vol_exec="0.4"),
        snap("X", status=OrderStatus.CANCELLED, vol_exec="0.2", closetm=NOW - 2),
        snap("E", status=OrderStatus.EXPIRED, closetm=NOW - 1),
        snap("U"),
        snap("D", status=OrderStatus.CLOSED, vol_exec="1", closetm=NOW - 3),
    ]
    states = {t: known(t) for t in "FXEUD"}
    states["F"] = known("F", vol_exec="0.1")
    events = derive(orders, states)
    kinds = [(type(e).__name__, e.order.txid) for e in events]
    assert ("MasterFillProgress", "F") in kinds
    assert ("MasterFillProgress", "X") in kinds
    assert ("MasterOrderCancelled", "X") in kinds
    assert ("MasterOrderExpired", "E") in kinds
    assert ("MasterFillProgress", "D") in kinds
    assert not any(txid == "U" for _, txid in kinds)
    fill = next(e for e in events if isinstance(e, MasterFillProgress) and e.order.txid == "F")
    assert fill.previous_vol_exec == Decimal("0.1")
    # the partial fill of X is reported before its cancel
    x_events = [type(e) for e in events if e.order.txid == "X"]
    assert x_events == [MasterFillProgress, MasterOrderCancelled]
    assert not any(isinstance(e, MasterOrderExpired | MasterStatusChanged) and e.order.txid == "D"
                   for e in events)  # fmt: skip


def test_pending_to_open_is_a_status_change() -> None:
    """A pending order that becomes open is reported as a status change only."""
    events = derive([snap("P")], {"P": known("P", status=OrderStatus.PENDING)})
    assert [type(e) for e in events] == [MasterStatusChanged]


def test_poll_interval_is_derived_from_the_tier() -> None:
    """Two calls per poll repaid by decay: ~6 s Starter, 4 s Intermediate, 2 s Pro."""
    assert poll_interval_seconds(RateTier.STARTER) == 6.061
    assert poll_interval_seconds(RateTier.INTERMEDIATE) == 4.0
    assert poll_interval_seconds(RateTier.PRO) == 2.0
    assert poll_interval_seconds(RateTier.STARTER, override=0.25) == 0.25
