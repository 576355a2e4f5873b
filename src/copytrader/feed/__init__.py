"""The master feed: the MASTER account's orders, turned into ordered, de-duplicated events.

Every poll reads `OpenOrders` and `ClosedOrders` (from a persisted cursor, page by page), and
`QueryOrders` for orders last seen open that appear in neither. Each order is compared with
what the ledger last recorded of it:

- unknown order -> `NewMasterOrder` with a decision: COPY, SKIP (with the reason) or BASELINE;
- more volume executed (or filled) -> `MasterFillProgress`;
- cancelled / expired -> `MasterOrderCancelled` / `MasterOrderExpired`;
- any other status change (pending -> open) -> `MasterStatusChanged`.

Rules for new orders:
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

from copytrader.feed.events import (
    RESTING_STATUSES,
    FeedEvent,
    MasterFillProgress,
    MasterOrderCancelled,
    MasterOrderExpired,
    MasterStatusChanged,
    NewMasterOrder,
    OrderSnapshot,
    derive_events,
    new_order_decision,
)
from copytrader.feed.poller import (
    CALLS_PER_POLL,
    CLOSED_PAGE_SIZE,
    CURSOR_OVERLAP_S,
    MAX_CLOSED_PAGES,
    QUERY_ORDERS_BATCH,
    FeedPoll,
    MasterFeed,
    MasterOrderSource,
    poll_interval_seconds,
)

__all__ = [
    "CALLS_PER_POLL",
    "CLOSED_PAGE_SIZE",
    "CURSOR_OVERLAP_S",
    "MAX_CLOSED_PAGES",
    "QUERY_ORDERS_BATCH",
    "RESTING_STATUSES",
    "FeedEvent",
    "FeedPoll",
    "MasterFeed",
    "MasterFillProgress",
    "MasterOrderCancelled",
    "MasterOrderExpired",
    "MasterOrderSource",
    "MasterStatusChanged",
    "NewMasterOrder",
    "OrderSnapshot",
    "derive_events",
    "new_order_decision",
    "poll_interval_seconds",
]
