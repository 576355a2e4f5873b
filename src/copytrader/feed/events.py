"""Master orders as a poll sees them, and the events derived from what changed since the
ledger's view: new order (with the decision to copy it or not), fill progress, cancel, expiry,
other status changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.kraken.models import Order
from copytrader.ledger import Decision, MasterOrderRecord, MasterState

RESTING_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PENDING})


@dataclass(frozen=True)
class OrderSnapshot:
    """One master order as a poll saw it (the feed's view of the broker's `Order`)."""

    txid: str
    pair: str  # altname
    side: Side
    order_type: OrderType | None  # None: a Kraken type this project does not copy
    order_type_raw: str
    volume: Decimal
    vol_exec: Decimal
    price: Decimal | None
    price2: Decimal | None
    avg_price: Decimal | None
    oflags: frozenset[str]
    timeinforce: TimeInForce
    expiretm: float | None
    opentm: float
    closetm: float | None
    status: OrderStatus

    @classmethod
    def from_order(cls, order: Order) -> OrderSnapshot:
        return cls(
            txid=order.txid,
            pair=order.pair_altname,
            side=order.side,
            order_type=order.order_type,
            order_type_raw=order.order_type_raw or str(order.order_type or ""),
            volume=order.volume,
            vol_exec=order.volume_exec,
            price=order.price,
            price2=order.price2,
            avg_price=order.avg_price if order.avg_price > 0 else None,
            oflags=frozenset(order.oflags),
            # Kraken's order objects do not show the time-in-force: an expiry time means GTD
            # (an IOC order is over by the time it is seen, and is copied as GTC).
            timeinforce=order.timeinforce
            or (TimeInForce.GTD if order.expiretm else TimeInForce.GTC),
            expiretm=order.expiretm,
            opentm=order.opentm,
            closetm=order.closetm,
            status=order.status,
        )

    @property
    def resting(self) -> bool:
        return self.status in RESTING_STATUSES

    def to_record(
        self,
        *,
        decision: Decision,
        skip_reason: str | None,
        seen_at: float,
        master_equity: Decimal | None = None,
        master_base_before: Decimal | None = None,
    ) -> MasterOrderRecord:
        return MasterOrderRecord(
            txid=self.txid,
            pair=self.pair,
            side=self.side,
            order_type=self.order_type,
            volume=self.volume,
            price=self.price,
            price2=self.price2,
            oflags=self.oflags,
            timeinforce=self.timeinforce,
            expiretm=self.expiretm,
            opentm=self.opentm,
            status=self.status,
            vol_exec=self.vol_exec,
            avg_price=self.avg_price,
            decision=decision,
            skip_reason=skip_reason,
            first_seen_at=seen_at,
            master_equity=master_equity,
            master_base_before=master_base_before,
        )


# ---- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMasterOrder:
    order: OrderSnapshot
    decision: Decision
    skip_reason: str | None
    seen_at: float


@dataclass(frozen=True)
class MasterFillProgress:
    order: OrderSnapshot
    previous_vol_exec: Decimal
    seen_at: float


@dataclass(frozen=True)
class MasterOrderCancelled:
    order: OrderSnapshot
    seen_at: float


@dataclass(frozen=True)
class MasterOrderExpired:
    order: OrderSnapshot
    seen_at: float


@dataclass(frozen=True)
class MasterStatusChanged:
    order: OrderSnapshot
    previous_status: OrderStatus
    seen_at: float


FeedEvent = (
    NewMasterOrder | MasterFillProgress | MasterOrderCancelled | MasterOrderExpired
    | MasterStatusChanged
)  # fmt: skip


def _event_time(event: FeedEvent) -> tuple[float, float, str]:
    order = event.order
    when = order.opentm if isinstance(event, NewMasterOrder) else (order.closetm or event.seen_at)
    return (when, order.opentm, order.txid)


def new_order_decision(
    order: OrderSnapshot, *, baseline_at: float, now: float, max_signal_age_s: float
) -> tuple[Decision, str | None]:
    """Whether a master order seen for the first time is copied, and if not, why."""
    if order.opentm < baseline_at:
        return Decision.BASELINE, "existed before the daemon first started"
    if order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        ended = "cancelled" if order.status is OrderStatus.CANCELLED else "expired"
        return Decision.SKIP, f"master order was already {ended} when first seen"
    if order.order_type is None:
        return Decision.SKIP, f"order type {order.order_type_raw!r} is not copied"
    if "viqc" in order.oflags:
        return Decision.SKIP, "volume in quote currency (viqc) orders are not copied"
    if order.resting:
        return Decision.COPY, None
    age = now - order.opentm
    if age > max_signal_age_s:
        return Decision.SKIP, (
            f"signal too old: master order filled {age:.0f} s ago, more than "
            f"max_signal_age_seconds {max_signal_age_s:g}"
        )
    return Decision.COPY, None


def derive_events(
    orders: Iterable[OrderSnapshot],
    known: Mapping[str, MasterState],
    *,
    baseline_at: float,
    now: float,
    max_signal_age_s: float,
) -> list[FeedEvent]:
    """Events for what changed since the ledger's view, oldest first, one per change.

    The same order listed twice (open and closed pages overlap during a poll) counts once, in
    its most advanced state.
    """
    latest: dict[str, OrderSnapshot] = {}
    for order in orders:
        seen = latest.get(order.txid)
        if seen is None or _more_advanced(order, seen):
            latest[order.txid] = order
    events: list[FeedEvent] = []
    for order in latest.values():
        before = known.get(order.txid)
        if before is None:
            decision, reason = new_order_decision(
                order, baseline_at=baseline_at, now=now, max_signal_age_s=max_signal_age_s
            )
            events.append(NewMasterOrder(order, decision, reason, now))
            continue
        if order.vol_exec > before.vol_exec or (
            order.status is OrderStatus.CLOSED and before.status is not OrderStatus.CLOSED
        ):
            events.append(MasterFillProgress(order, before.vol_exec, now))
        if order.status is before.status:
            continue
        if order.status is OrderStatus.CANCELLED:
            events.append(MasterOrderCancelled(order, now))
        elif order.status is OrderStatus.EXPIRED:
            events.append(MasterOrderExpired(order, now))
        elif order.status is not OrderStatus.CLOSED and before.status in RESTING_STATUSES:
            events.append(MasterStatusChanged(order, before.status, now))
    events.sort(key=_event_time)
    return events


_STATUS_RANK = {
    OrderStatus.PENDING: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.CLOSED: 2,
    OrderStatus.CANCELLED: 2,
    OrderStatus.EXPIRED: 2,
}


def _more_advanced(candidate: OrderSnapshot, current: OrderSnapshot) -> bool:
    return (_STATUS_RANK[candidate.status], candidate.vol_exec) > (
        _STATUS_RANK[current.status],
        current.vol_exec,
    )
