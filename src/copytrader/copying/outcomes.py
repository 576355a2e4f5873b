"""How a copy ends, or waits: each outcome is written to the ledger, logged as one event with
the latency from the master order, counted by the observer, and, once all copies of the master
order are done, summed up in one `copy.summary`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from copytrader.copying.accounts import CopyObserver
from copytrader.copying.snapshots import AccountSnapshots
from copytrader.domain import OrderType, Side
from copytrader.errors import KrakenError
from copytrader.kraken.models import Order
from copytrader.ledger import CopyRecord, CopyState, Ledger, LedgerError, MasterOrderRecord
from copytrader.ledger.summary import log_summary_once
from copytrader.logs import get_logger

log = get_logger(__name__)

# Waits between attempts at one copy double from FIRST_RETRY_S up to MAX_RETRY_S.
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 8.0


def error_text(error: BaseException) -> str:
    if isinstance(error, KrakenError) and error.errors:
        return ", ".join(error.errors)
    return f"{type(error).__name__}: {error}"


class CopyOutcomes:
    """Records and reports what became of each copy."""

    def __init__(
        self,
        ledger: Ledger,
        snapshots: Mapping[str, AccountSnapshots],
        *,
        observer: CopyObserver | None,
        clock: Callable[[], float],
    ) -> None:
        self._ledger = ledger
        self._snapshots = snapshots
        self._observer = observer
        self._clock = clock

    def schedule_retry(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        error: BaseException,
        *,
        immediate: bool = False,
        state: CopyState = CopyState.SUBMITTING,
    ) -> None:
        wait_s = (
            0.0 if immediate else min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** max(0, copy.attempts - 1))
        )
        text = error_text(error)
        try:
            self._ledger.schedule_retry(
                master.txid, copy.user_id, next_attempt_at=self._clock() + wait_s, error=text,
                state=state,
            )  # fmt: skip
        except LedgerError:
            return
        log.warning(
            "copy.retry",
            message=(
                f"copy of {master.txid} for {copy.user_id}: {text}; "
                f"checking Kraken and retrying in {wait_s:.1f} s"
            ),
            master_txid=master.txid,
            user=copy.user_id,
            cl_ord_id=copy.cl_ord_id,
            error=text,
            attempt=copy.attempts,
        )

    def _latency_fields(self, master: MasterOrderRecord, acked_at: float) -> dict[str, float]:
        return {
            "latency_ms": round((acked_at - master.opentm) * 1000, 1),
            "since_seen_ms": round((acked_at - master.first_seen_at) * 1000, 1),
        }

    def placed(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        txid: str | None,
        *,
        resolved: bool,
        notes: tuple[str, ...] = (),
    ) -> None:
        acked_at = self._clock()
        timing = self._latency_fields(master, acked_at)
        record = self._ledger.mark_placed(
            master.txid, copy.user_id, txid=txid, acked_at=acked_at,
            latency_ms=timing["latency_ms"], reason="; ".join(notes) or None,
        )  # fmt: skip
        # A market order fills at once (equity pays the fee, holdings change); any resting
        # sell holds base asset. A resting buy changes neither equity nor the holdings sizing
        # reads; its fills are noticed through the master's (refresh_user_snapshots).
        market = master.order_type is OrderType.MARKET
        self._snapshots[copy.user_id].invalidate(
            equity=market, balances=market or master.side is Side.SELL
        )
        log.info(
            "copy.placed",
            message=(
                f"copied {master.order_type.value if master.order_type else '?'} "
                f"{master.side.value} {record.volume} {master.pair} to {copy.user_id}"
            ),
            master_txid=master.txid,
            user=copy.user_id,
            txid=txid,
            cl_ord_id=copy.cl_ord_id,
            volume=str(record.volume),
            price=None if record.price is None else str(record.price),
            pair=master.pair,
            resolved_by_lookup=resolved,
            notes=list(notes),
            **timing,
        )
        if self._observer:
            self._observer.copy_placed()
        log_summary_once(self._ledger, master)

    def cancelled(self, master: MasterOrderRecord, copy: CopyRecord) -> None:
        """The copy's order was cancelled after the master order's cancel or expiry."""
        why = f"master order {master.status.value}"
        self._ledger.mark_cancelled(master.txid, copy.user_id, reason=why)
        # Its hold is released (and it may have filled in part before): whichever path cancelled
        # it, the user's cached balances are stale.
        self._snapshots[copy.user_id].invalidate()
        log.info(
            "copy.cancelled",
            message=f"copy of {master.txid} cancelled for {copy.user_id} ({why})",
            master_txid=master.txid,
            user=copy.user_id,
            txid=copy.txid,
            cl_ord_id=copy.cl_ord_id,
        )

    def found_after_skip(self, master: MasterOrderRecord, copy: CopyRecord, order: Order) -> None:
        """The copy was skipped (the master's cancel) while an earlier run's order for it is on
        the exchange: record that order, and have it cancelled if it is still open."""
        record = self._ledger.mark_found_after_skip(
            master.txid, copy.user_id, txid=order.txid, volume=order.volume, price=order.price,
            price2=order.price2, acked_at=self._clock(), cancel=order.is_open,
            reason=f"found on Kraken after being skipped ({copy.reason})",
        )  # fmt: skip
        self._snapshots[copy.user_id].invalidate()
        log.warning(
            "copy.found_after_skip",
            message=(
                f"copy of {master.txid} for {copy.user_id} was skipped but an earlier run had"
                f" placed it ({order.txid}, {order.status.value})"
                + ("; cancelling it" if record.cancel_requested else "")
            ),
            master_txid=master.txid,
            user=copy.user_id,
            txid=order.txid,
            cl_ord_id=copy.cl_ord_id,
            status=order.status.value,
        )

    def skip(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        reason: str,
        *,
        event: str = "copy.skipped",
    ) -> None:
        self._ledger.mark_skipped(master.txid, copy.user_id, reason=reason)
        self._report(
            log.info, event, f"skipped: {reason}", master, copy, {"reason": reason},
            self._observer.copy_skipped if self._observer else None,
        )  # fmt: skip

    def fail(self, master: MasterOrderRecord, copy: CopyRecord, error: str) -> None:
        self._ledger.mark_failed(master.txid, copy.user_id, error=error)
        self._report(
            log.warning, "copy.failed", f"failed: {error}", master, copy, {"error": error},
            self._observer.copy_failed if self._observer else None,
        )  # fmt: skip

    def _report(
        self,
        emit: Callable[..., Any],
        event: str,
        outcome: str,
        master: MasterOrderRecord,
        copy: CopyRecord,
        fields: dict[str, str],
        count: Callable[[], None] | None,
    ) -> None:
        """Log a copy that ended without being placed, count it, and sum up the master order."""
        emit(
            event,
            message=f"copy of {master.txid} for {copy.user_id} {outcome}",
            master_txid=master.txid,
            user=copy.user_id,
            cl_ord_id=copy.cl_ord_id,
            **fields,
            **self._latency_fields(master, self._clock()),
        )
        if count is not None:
            count()
        log_summary_once(self._ledger, master)
