"""What the ledger stores, as the rest of the daemon sees it: master orders, copies and their
states, the copy id every copy carries, and the ledger's one error."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce

# Fixed namespace for copy ids; changing it would make a restarted daemon unable to recognise
# the copies an older version placed, so it must never change.
COPY_ID_NAMESPACE = uuid.UUID("5b0f6a8e-2c1d-5f0e-9a47-6b6f70797472")


def copy_client_order_id(master_txid: str, user_id: str) -> str:
    """The `cl_ord_id` of the copy of `master_txid` for `user_id`: a long (36-char) UUID.

    Kraken accepts a long UUID, a 32-hex short UUID or free text of at most 18 characters;
    a name-based UUID (uuid5) of both ids is deterministic, so any process can recompute it,
    and collision-free in practice, which free text of 18 characters could not be.
    """
    return str(uuid.uuid5(COPY_ID_NAMESPACE, f"{master_txid}\x1f{user_id}"))


class LedgerError(RuntimeError):
    """A ledger call that cannot be honoured (unknown row, illegal transition)."""


class Decision(StrEnum):
    """What the daemon decided about a master order when it first saw it."""

    COPY = "copy"  # copies planned for every user
    SKIP = "skip"  # seen after the baseline but not copied (too old, cancelled before seen...)
    BASELINE = "baseline"  # existed before the daemon first started: never copied


class CopyState(StrEnum):
    PLANNED = "planned"
    SUBMITTING = "submitting"
    PLACED = "placed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset(
    {CopyState.PLACED, CopyState.SKIPPED, CopyState.FAILED, CopyState.CANCELLED}
)
FINAL_MASTER_STATUSES = frozenset({OrderStatus.CLOSED, OrderStatus.CANCELLED, OrderStatus.EXPIRED})


@dataclass(frozen=True)
class MasterOrderRecord:
    """A master order as the copier needs it. `price`/`price2` follow Kraken's AddOrder meaning."""

    txid: str
    pair: str  # Kraken's altname, as the order's descr.pair gives it
    side: Side
    order_type: OrderType | None  # None: a Kraken type this project does not copy (skipped)
    volume: Decimal
    price: Decimal | None
    price2: Decimal | None
    oflags: frozenset[str]
    timeinforce: TimeInForce
    expiretm: float | None
    opentm: float
    status: OrderStatus
    vol_exec: Decimal
    avg_price: Decimal | None
    decision: Decision
    skip_reason: str | None = None
    first_seen_at: float = 0.0
    seq: int = 0  # order of first sight; the copier works through a user's copies in this order
    # Measured on the master when first seen, for equity_ratio sizing (None when not needed).
    master_equity: Decimal | None = None
    master_base_before: Decimal | None = None


@dataclass(frozen=True)
class MasterState:
    """What the feed last saw of a known master order."""

    txid: str
    status: OrderStatus
    vol_exec: Decimal
    decision: Decision


@dataclass(frozen=True)
class CopyRecord:
    master_txid: str
    user_id: str
    cl_ord_id: str
    state: CopyState
    seq: int
    volume: Decimal | None
    price: Decimal | None
    price2: Decimal | None
    txid: str | None
    reason: str | None
    error: str | None
    attempts: int
    next_attempt_at: float | None
    cancel_requested: bool
    created_at: float
    updated_at: float
    acked_at: float | None
    latency_ms: float | None
    written_by_run: str | None  # the run (process) that last wrote the row


@dataclass(frozen=True)
class CopySummary:
    """Counts of one master order's copies, once they are all terminal."""

    master_txid: str
    total: int
    placed: int
    skipped: int
    failed: int
    cancelled: int
    first_seen_at: float
    last_acked_at: float | None
    max_latency_ms: float | None

    @classmethod
    def of(cls, master_txid: str, first_seen_at: float, copies: list[CopyRecord]) -> CopySummary:
        """The counts of `copies`, all of them copies of `master_txid`."""
        acked = [copy.acked_at for copy in copies if copy.acked_at is not None]
        latencies = [copy.latency_ms for copy in copies if copy.latency_ms is not None]
        return cls(
            master_txid=master_txid,
            total=len(copies),
            placed=sum(copy.state is CopyState.PLACED for copy in copies),
            skipped=sum(copy.state is CopyState.SKIPPED for copy in copies),
            failed=sum(copy.state is CopyState.FAILED for copy in copies),
            cancelled=sum(copy.state is CopyState.CANCELLED for copy in copies),
            first_seen_at=first_seen_at,
            last_acked_at=max(acked) if acked else None,
            max_latency_ms=max(latencies) if latencies else None,
        )
