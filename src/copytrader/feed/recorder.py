"""Writes the master feed's events into the ledger, with what sizing needs from the master.

For a new master order to be copied under `equity_ratio` sizing, the master's side of the ratio
is measured here, once, and stored with the order, so that a restart sizes the copies exactly as
the first attempt would have:

- buys: the master's equity (TradeBalance `e` in the configured asset);
- sells: the master's holding of the base asset BEFORE the sell. Balances are read after the
  poll, so the sell (and any later master order on the pair) may already have changed them:
  holding_before = balance_now + sum over this order and the later-opened master orders on the
  same pair of their executed volume (sells added back, buys taken off). Fees charged in the
  base asset (`fcib`) and earlier orders that fill later are not corrected for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from copytrader.domain import Side, SizingMode
from copytrader.feed import (
    FeedEvent,
    MasterFillProgress,
    MasterOrderCancelled,
    MasterOrderExpired,
    NewMasterOrder,
    OrderSnapshot,
)
from copytrader.kraken.models import AssetBalance, PairInfo, TradeBalance
from copytrader.ledger import Decision, Ledger
from copytrader.ledger.summary import log_summary_once
from copytrader.logs import get_logger

log = get_logger(__name__)


class MasterBalances(Protocol):
    """What the recorder reads on the MASTER account (KrakenBroker has it)."""

    def trade_balance(self, asset: str = "ZUSD") -> TradeBalance: ...
    def balances_ex(self) -> dict[str, AssetBalance]: ...
    def pair(self, name: str) -> PairInfo: ...


class FeedObserver(Protocol):
    """Told when the feed shows life (the lifecycle's Heartbeat)."""

    def master_event(self) -> None: ...
    def master_order_seen(self) -> None: ...


@dataclass(frozen=True)
class RecordOutcome:
    new_orders: int
    to_copy: int
    fills: int
    cancels: int


def _describe(order: OrderSnapshot) -> str:
    kind = order.order_type.value if order.order_type else order.order_type_raw
    price = f" @ {order.price}" if order.price is not None else ""
    return f"{order.side.value} {order.volume} {order.pair} {kind}{price}"


class MasterRecorder:
    """Records feed events; the users' copy rows are created with each new master order."""

    def __init__(
        self,
        ledger: Ledger,
        master: MasterBalances,
        user_ids: Sequence[str],
        *,
        unavailable_users: Mapping[str, str] | None = None,
        sizing_mode: SizingMode,
        equity_asset: str,
        observer: FeedObserver | None = None,
        on_master_fill: Callable[[], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._master = master
        self._user_ids = tuple(user_ids) + tuple(unavailable_users or ())
        self._unavailable = dict(unavailable_users or {})
        self._sizing_mode = sizing_mode
        self._equity_asset = equity_asset
        self._observer = observer
        self._on_master_fill = on_master_fill

    def record(self, events: Sequence[FeedEvent]) -> RecordOutcome:
        """Store every event. Master balances are read first, so a failed read stores nothing
        (and the feed, whose cursor did not move, shows the same events again)."""
        to_copy = [
            e for e in events if isinstance(e, NewMasterOrder) and e.decision is Decision.COPY
        ]
        equity, base_before = self._measure_master(to_copy, events)
        new_orders = fills = cancels = 0
        for event in events:
            order = event.order
            if isinstance(event, NewMasterOrder):
                new_orders += 1
                record = order.to_record(
                    decision=event.decision,
                    skip_reason=event.skip_reason,
                    seen_at=event.seen_at,
                    master_equity=equity if order.side is Side.BUY else None,
                    master_base_before=base_before.get(order.txid),
                )
                if self._ledger.record_master_order(
                    record, self._user_ids, unavailable=self._unavailable
                ):
                    self._log_new(event)
                    if event.decision is not Decision.BASELINE:
                        # Not copied (or no user to copy to): the summary is due right away.
                        log_summary_once(self._ledger, record)
                continue
            ended = isinstance(event, MasterOrderCancelled | MasterOrderExpired)
            # Read before the update, for the cancel's log line only (not on every fill).
            status_before = (
                self._ledger.master_states([order.txid]).get(order.txid) if ended else None
            )
            flagged = self._ledger.record_master_update(order.txid, order.status, order.vol_exec)
            if self._observer:
                self._observer.master_event()
            if isinstance(event, MasterFillProgress):
                fills += 1
                log.info(
                    "feed.master_fill",
                    message=f"master order {order.txid} executed {order.vol_exec}/{order.volume}",
                    master_txid=order.txid,
                    vol_exec=str(order.vol_exec),
                    previous_vol_exec=str(event.previous_vol_exec),
                    status=order.status.value,
                )
            elif ended:
                cancels += 1
                log.info(
                    "feed.master_cancelled"
                    if isinstance(event, MasterOrderCancelled)
                    else "feed.master_expired",
                    message=(
                        f"master order {order.txid} {order.status.value}: cancelling "
                        f"{len(flagged)} copies"
                    ),
                    master_txid=order.txid,
                    copies_to_cancel=len(flagged),
                    was=None if status_before is None else status_before.status.value,
                )
        if fills and self._on_master_fill:
            self._on_master_fill()
        return RecordOutcome(new_orders, len(to_copy), fills, cancels)

    def _log_new(self, event: NewMasterOrder) -> None:
        order = event.order
        if event.decision is Decision.BASELINE:
            return
        if self._observer:
            self._observer.master_order_seen()
        log.info(
            "feed.master_order",
            message=(
                f"master order {order.txid}: {_describe(order)}"
                + ("" if event.decision is Decision.COPY else f" (not copied: {event.skip_reason})")
            ),
            master_txid=order.txid,
            pair=order.pair,
            side=order.side.value,
            order_type=order.order_type_raw,
            volume=str(order.volume),
            price=None if order.price is None else str(order.price),
            status=order.status.value,
            decision=event.decision.value,
            reason=event.skip_reason,
            age_ms=round((event.seen_at - order.opentm) * 1000, 1),
        )

    def _measure_master(
        self, to_copy: Sequence[NewMasterOrder], events: Sequence[FeedEvent]
    ) -> tuple[Decimal | None, dict[str, Decimal]]:
        if self._sizing_mode is not SizingMode.EQUITY_RATIO or not to_copy:
            return None, {}
        equity: Decimal | None = None
        if any(e.order.side is Side.BUY for e in to_copy):
            equity = self._master.trade_balance(self._equity_asset).equity
        sells = [e.order for e in to_copy if e.order.side is Side.SELL]
        if not sells:
            return equity, {}
        balances = self._master.balances_ex()
        polled = {e.order.txid: e.order for e in events}
        before: dict[str, Decimal] = {}
        for sell in sells:
            base = self._master.pair(sell.pair).base
            holding = balances.get(base)
            now = holding.balance if holding else Decimal(0)
            # Known master orders on the pair opened after the sell, then this poll's newer view.
            later = {
                record.txid: (record.side, record.vol_exec)
                for record in self._ledger.newer_master_orders(sell.pair, sell.opentm)
            }
            for order in polled.values():
                if order.pair == sell.pair and order.opentm >= sell.opentm:
                    later[order.txid] = (order.side, order.vol_exec)
            delta = sum(
                (vol if side is Side.SELL else -vol for side, vol in later.values()), Decimal(0)
            )
            before[sell.txid] = now + delta
        return equity, before
