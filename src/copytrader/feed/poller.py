"""The poller: reads the MASTER account's orders each poll (open, closed since the cursor,
and those last seen open that appear in neither) and derives the events; the ledger holds its
state (baseline, cursor, known orders)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from copytrader.domain import RateTier
from copytrader.feed.events import FeedEvent, OrderSnapshot, derive_events
from copytrader.kraken.models import ClosedOrdersPage, Order
from copytrader.kraken.ratelimit import REST_LIMITS
from copytrader.ledger import Decision, Ledger
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


def poll_interval_seconds(tier: RateTier, override: float | None = None) -> float:
    """Seconds between polls so that one poll's calls are repaid by the counter's decay.

    Starter: 2 calls / 0.33 per s = ~6.1 s; Intermediate 4 s; Pro 2 s. The counter's headroom
    (15 or 20) is left for bursts: extra ClosedOrders pages, QueryOrders, the master's balance
    reads for sizing. `override` (config `poll_interval_seconds`) wins when set.
    """
    if override is not None:
        return override
    return round(CALLS_PER_POLL / REST_LIMITS[tier].decay_per_s, 3)


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
