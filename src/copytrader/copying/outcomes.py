"""How a copy ends, or waits: each outcome is written to the ledger, logged as one event with
the latency from the master order, counted by the observer, and, once all copies of the master
order are done, summed up in one `copy.summary`.

Waiting is bounded: a transient failure is tried again after a backoff, and each try counts
against `CopierSettings.max_attempts` (a send counts itself when it writes `submitting`; a
failed sizing read, lookup or CancelOrder counts here). When the attempts are spent the copy
ends: `failed` if nothing can have been sent; for a copy that may be on Kraken (`submitting`),
`failed` with `outcome_unknown` in its event and "outcome unknown" in its ledger error, so the
operator knows to look its `cl_ord_id` up; a cancel that cannot be done leaves the copy
`placed`, its cancel request dropped, with a `copy.cancel_failed` error event.

A user's account that rests (the broker sends no private call for a while after a lockout, a
bad key or signature: `KrakenBroker.cooldown_remaining_s`) is not the copy's failure: the copy
waits, in the state it is in and without being charged an attempt, until the rest ends
(`wait_if_resting`, one `copy.waiting` event). Then it goes through its gates again: a copy of a
master order that still stands goes out, one of a filled market order only within
`max_signal_age_seconds`, and a copy that may be on Kraken is looked up by its cl_ord_id first."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from copytrader.copying.accounts import CopierSettings, CopyObserver, UserAccount
from copytrader.copying.resting import rest_of
from copytrader.copying.snapshots import AccountSnapshots
from copytrader.domain import OrderType, Side
from copytrader.errors import KrakenError
from copytrader.kraken.models import Order
from copytrader.ledger import CopyRecord, CopyState, Ledger, LedgerError, MasterOrderRecord
from copytrader.ledger.summary import log_summary_once
from copytrader.logs import get_logger

log = get_logger(__name__)

# Marks, in the ledger's error and in the reason, a copy given up while it may be on Kraken.
OUTCOME_UNKNOWN = "outcome unknown"


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
        settings: CopierSettings,
        *,
        observer: CopyObserver | None,
        clock: Callable[[], float],
        stop: threading.Event | None = None,
    ) -> None:
        self._ledger = ledger
        self._snapshots = snapshots
        self._settings = settings
        self._observer = observer
        self._clock = clock
        self._stop = stop

    def retry_or_give_up(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        error: BaseException,
        *,
        state: CopyState = CopyState.SUBMITTING,
        counted: bool = True,
    ) -> None:
        """After a transient failure: try again later, or end the copy once its attempts are
        spent. `counted=False` for a send, which counted itself when it wrote `submitting`;
        such a copy is always looked up once more (its next try) before anything ends it."""
        text = error_text(error)
        # A try cut short by the daemon's stop is the stop's doing, not the copy's.
        counted = counted and not (self._stop is not None and self._stop.is_set())
        attempts = copy.attempts + (1 if counted else 0)
        if counted and attempts >= self._settings.max_attempts:
            why = f"gave up after {attempts} attempts: {text}"
            if state is CopyState.PLANNED:
                self.fail(master, copy, why, level="error")
            elif state is CopyState.SUBMITTING:
                self.fail_outcome_unknown(master, copy, why)
            else:
                self.cancel_failed(master, copy, why)
            return
        timings = self._settings.timings
        if state is CopyState.PLANNED:
            wait_s = timings.planned_retry_s
        else:
            backoff = timings.first_retry_s * 2 ** max(0, attempts - 1)
            wait_s = min(timings.max_retry_s, backoff)
        try:
            self._ledger.schedule_retry(
                master.txid, copy.user_id, next_attempt_at=self._clock() + wait_s, error=text,
                state=state, count_attempt=counted,
            )  # fmt: skip
        except LedgerError:
            return
        then = "checking Kraken and " if state is CopyState.SUBMITTING else ""
        log.warning(
            "copy.retry",
            message=(
                f"copy of {master.txid} for {copy.user_id}: {text}; "
                f"{then}trying again in {wait_s:.1f} s (attempt {attempts} of "
                f"{self._settings.max_attempts})"
            ),
            master_txid=master.txid,
            user=copy.user_id,
            cl_ord_id=copy.cl_ord_id,
            state=state.value,
            error=text,
            attempt=attempts,
            max_attempts=self._settings.max_attempts,
        )

    def wait_if_resting(
        self,
        account: UserAccount,
        master: MasterOrderRecord,
        copy: CopyRecord,
        *,
        state: CopyState,
        fallback_why: str = "",
    ) -> bool:
        """False if the user's account may trade. Else (True) the copy waits for the account's
        rest: it keeps its state, uncounted, with the reason (what started the rest, or
        `fallback_why` when the broker recorded none) in the ledger, and its lane waits until
        the rest is over (the rest lives in the broker, not in the ledger: after a restart the
        copy goes on at once). `submitting` stays so: its next step looks the cl_ord_id up on
        Kraken before anything is sent again."""
        rest = rest_of(account)
        if rest is None:
            return False
        why = rest.reason or fallback_why
        wait_s = max(rest.remaining_s, 0.0)
        error = f"account resting: {why}" if why else "account resting"
        try:
            self._ledger.schedule_retry(
                master.txid, copy.user_id, next_attempt_at=self._clock(), error=error,
                state=state, count_attempt=False,
            )  # fmt: skip
        except LedgerError:
            return True  # the master's cancel moved it on meanwhile: the lane reads it again
        step = {
            CopyState.PLANNED: "it is sent",
            CopyState.SUBMITTING: "it is looked up on Kraken and, if not there, sent",
            CopyState.PLACED: "it is cancelled",
        }.get(state, "it goes on")
        log.info(
            "copy.waiting",
            message=(
                f"copy of {master.txid} for {copy.user_id} waits {wait_s:.0f} s: the account"
                f" is resting ({why or 'no private calls for now'}); then {step} if the master"
                " order's rules still allow it"
            ),
            master_txid=master.txid,
            user=copy.user_id,
            cl_ord_id=copy.cl_ord_id,
            state=state.value,
            wait_s=round(wait_s, 3),
            reason=why,
        )
        return True

    def fail_outcome_unknown(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        why: str,
        *,
        exc_info: BaseException | None = None,
    ) -> None:
        """End a copy that may be on Kraken without knowing (its lookups failed): `failed`,
        never sent again, and marked so that the operator looks its cl_ord_id up."""
        self.fail(
            master, copy,
            f"{OUTCOME_UNKNOWN}: {why}; the order may be on Kraken, look up cl_ord_id "
            f"{copy.cl_ord_id}",
            level="error", exc_info=exc_info, outcome_unknown=True,
        )  # fmt: skip

    def cancel_failed(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        why: str,
        *,
        exc_info: BaseException | None = None,
    ) -> None:
        """Stop trying to cancel a placed copy: it stays `placed` (and may still be open on
        Kraken), its cancel request dropped, with one error event that says so."""
        self._ledger.clear_cancel_request(
            master.txid, copy.user_id, reason=f"cancel failed: {why}", error=why
        )
        log.error(
            "copy.cancel_failed",
            message=(
                f"could not cancel the copy of {master.txid} for {copy.user_id} ({why}); it "
                f"may still be open on Kraken: cancel txid {copy.txid or '?'} / cl_ord_id "
                f"{copy.cl_ord_id} by hand"
            ),
            master_txid=master.txid,
            user=copy.user_id,
            txid=copy.txid,
            cl_ord_id=copy.cl_ord_id,
            error=why,
            exc_info=exc_info,
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

    def fail(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        error: str,
        *,
        level: str = "warning",
        exc_info: BaseException | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        """End the copy `failed`. A refusal by Kraken (funds, minimums, a bad key) is a
        warning; a bug, or attempts spent, an error (`exc_info`: with the traceback)."""
        self._ledger.mark_failed(master.txid, copy.user_id, error=error)
        fields: dict[str, object] = {"error": error}
        if outcome_unknown:
            fields["outcome_unknown"] = True
        if exc_info is not None:
            fields["exc_info"] = exc_info
        self._report(
            log.error if level == "error" else log.warning, "copy.failed", f"failed: {error}",
            master, copy, fields, self._observer.copy_failed if self._observer else None,
        )  # fmt: skip

    def _report(
        self,
        emit: Callable[..., Any],
        event: str,
        outcome: str,
        master: MasterOrderRecord,
        copy: CopyRecord,
        fields: Mapping[str, object],
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
