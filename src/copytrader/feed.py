"""The master feed: the MASTER account's orders, turned into ordered, de-duplicated events.

Every poll reads `OpenOrders` and `ClosedOrders` (from a persisted cursor, page by page), and
`QueryOrders` for orders last seen open that appear in neither. Each order is compared with
what the ledger last recorded of it:

- unknown order -> `NewMasterOrder` with a decision: COPY, SKIP (with the reason) or BASELINE;
- more volume executed (or filled) -> `MasterFillProgress`;
- cancelled / expired -> `MasterOrderCancelled` / `MasterOrderExpired`;
- any other status change (pending -> open) -> `MasterStatusChanged`.

Rules for new orders (issue 5):
- orders that existed before the daemon FIRST started on this data folder are never copied:
  the first start records them as BASELINE;
- an order still open (a resting limit, an untriggered stop) is copied whatever its age;
- an order that is already finished when first seen (a market order filled at once, a limit
  that filled while the daemon was down) is copied only if younger than
  `max_signal_age_seconds`; one cancelled or expired before it was seen is not copied.

The feed only reads; the daemon records the events in the ledger, and only then moves the
cursor (`commit`), so a crash between the two re-reads the same orders, which the ledger
de-duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.kraken.models import ClosedOrdersPage, Order
from copytrader.kraken.ratelimit import REST_LIMITS, RateTier
from copytrader.ledger import Decision, Ledger, MasterOrderRecord, MasterState
from copytrader.logs import get_logger

log = get_logger(__name__)

# ClosedOrders is read from this far before the newest close time already processed: an order
# closed just before the previous poll may become visible a little later; the ledger
# de-duplicates whatever is read twice.
CURSOR_OVERLAP_S = 30.0
# At most this many ClosedOrders pages (50 orders each) per poll; after a long outage the
# newest pages matter (older finished orders are past max_signal_age anyway).
MAX_CLOSED_PAGES = 10
CLOSED_PAGE_SIZE = 50
# One poll = OpenOrders + ClosedOrders, each +1 on the key's REST counter.
CALLS_PER_POLL = 2
QUERY_ORDERS_BATCH = 50

RESTING_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PENDING})


def poll_interval_seconds(tier: RateTier, override: float | None = None) -> float:
    """Seconds between polls so that one poll's calls are repaid by the counter's decay.

    Starter: 2 calls / 0.33 per s = ~6.1 s; Intermediate 4 s; Pro 2 s. The counter's headroom
    (15 or 20) is left for bursts: extra ClosedOrders pages, QueryOrders, the master's balance
    reads for sizing. `override` (config `poll_interval_seconds`) wins when set.
    """
    if override is not None:
        return override
    return round(CALLS_PER_POLL / REST_LIMITS[tier].decay_per_s, 3)


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
    if order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
        return Decision.SKIP, f"master order was already {order.status.value} when first seen"
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
        if order.status is OrderStatus.CANCELED:
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
    OrderStatus.CANCELED: 2,
    OrderStatus.EXPIRED: 2,
}


def _more_advanced(candidate: OrderSnapshot, current: OrderSnapshot) -> bool:
    return (_STATUS_RANK[candidate.status], candidate.vol_exec) > (
        _STATUS_RANK[current.status],
        current.vol_exec,
    )


# ---- the poller -----------------------------------------------------------------------------


class MasterOrderSource(Protocol):
    """What the feed needs from the MASTER account's broker (KrakenBroker has it)."""

    def open_orders(self) -> dict[str, Order]: ...

    def closed_orders(
        self, *, start: float | None = None, ofs: int = 0, cl_ord_id: str | None = None
    ) -> ClosedOrdersPage: ...

    def query_orders(self, txids: Sequence[str]) -> dict[str, Order]: ...


@dataclass(frozen=True)
class FeedPoll:
    """One poll's events and the cursor to store once they are recorded."""

    events: tuple[FeedEvent, ...]
    cursor: float
    orders_read: int


class MasterFeed:
    """Reads the master's orders; the ledger holds its state (baseline, cursor, known orders)."""

    def __init__(
        self,
        source: MasterOrderSource,
        ledger: Ledger,
        *,
        max_signal_age_s: float,
        clock: Callable[[], float] = time.time,
        max_closed_pages: int = MAX_CLOSED_PAGES,
    ) -> None:
        self._source = source
        self._ledger = ledger
        self._max_signal_age_s = max_signal_age_s
        self._clock = clock
        self._max_closed_pages = max_closed_pages

    def ensure_baseline(self) -> bool:
        """On the very first start, record every existing master order as not-to-copy.

        Returns True if this call set the baseline, False if an earlier start had."""
        if self._ledger.baseline_at() is not None:
            return False
        baseline_at = self._clock()
        snapshot = [OrderSnapshot.from_order(o) for o in self._source.open_orders().values()]
        page = self._source.closed_orders()
        snapshot += [OrderSnapshot.from_order(o) for o in page.orders.values()]
        existing = {o.txid: o for o in snapshot if o.opentm < baseline_at}
        records = [
            o.to_record(decision=Decision.BASELINE, skip_reason=None, seen_at=baseline_at)
            for o in existing.values()
        ]
        self._ledger.record_baseline(baseline_at, records, cursor=baseline_at - CURSOR_OVERLAP_S)
        log.info(
            "feed.baseline",
            message=(
                f"first start: {len(records)} existing master orders will not be copied; "
                "orders placed from now on will"
            ),
            baseline_at=baseline_at,
            existing_orders=len(records),
        )
        return True

    def poll(self) -> FeedPoll:
        """Read the master's orders once and derive the events (nothing is stored here)."""
        baseline_at = self._ledger.baseline_at()
        if baseline_at is None:
            raise RuntimeError("ensure_baseline() must run before the first poll")
        cursor = self._ledger.feed_cursor() or baseline_at - CURSOR_OVERLAP_S
        seen: list[OrderSnapshot] = [
            OrderSnapshot.from_order(o) for o in self._source.open_orders().values()
        ]
        seen += self._closed_since(cursor)
        listed = {o.txid for o in seen}
        vanished = [t for t in self._ledger.unfinished_master_txids() if t not in listed]
        for start in range(0, len(vanished), QUERY_ORDERS_BATCH):
            batch = vanished[start : start + QUERY_ORDERS_BATCH]
            seen += [OrderSnapshot.from_order(o) for o in self._source.query_orders(batch).values()]
        known = self._ledger.master_states(o.txid for o in seen)
        now = self._clock()
        events = derive_events(
            seen,
            known,
            baseline_at=baseline_at,
            now=now,
            max_signal_age_s=self._max_signal_age_s,
        )
        newest_close = max((o.closetm for o in seen if o.closetm is not None), default=None)
        next_cursor = cursor
        if newest_close is not None:
            next_cursor = max(cursor, newest_close - CURSOR_OVERLAP_S)
        return FeedPoll(events=tuple(events), cursor=next_cursor, orders_read=len(seen))

    def commit(self, poll: FeedPoll) -> None:
        """Store the cursor: call only after every event of `poll` is in the ledger."""
        if poll.cursor != self._ledger.feed_cursor():
            self._ledger.set_feed_cursor(poll.cursor)

    def _closed_since(self, cursor: float) -> list[OrderSnapshot]:
        found: list[OrderSnapshot] = []
        offset = 0
        for _ in range(self._max_closed_pages):
            page = self._source.closed_orders(start=cursor, ofs=offset)
            found += [OrderSnapshot.from_order(o) for o in page.orders.values()]
            offset += len(page.orders)
            if not page.orders or offset >= page.count:
                return found
        log.warning(
            "feed.closed_orders_truncated",
            message=(
                f"more than {self._max_closed_pages} pages of closed master orders since the "
                "cursor; only the newest were read"
            ),
            cursor=cursor,
        )
        return found
