"""Resolving a copy left `submitting` (by a crash, a lost reply, a transient error): Kraken is
asked for its `cl_ord_id` first; found -> `placed`; not found -> sent again (same cl_ord_id,
same volume) while the signal still stands and attempts are left, else abandoned. While the
user's account rests (see `resting`) the copy waits, `submitting`, uncounted.

A lookup that fails transiently counts an attempt; once they are spent, the copy ends `failed`
marked "outcome unknown" (see `outcomes`), never sent again without a lookup. The same holds
after a bug (an unexpected exception) at any step of a copy: `after_unexpected_error` looks a
copy that may have been sent up once, and ends it by what that shows."""

from __future__ import annotations

from collections.abc import Callable

from copytrader.copying.accounts import CopierSettings, UserAccount
from copytrader.copying.exchange_index import EarlierRunOrders
from copytrader.copying.gates import CopyGates
from copytrader.copying.outcomes import CopyOutcomes, error_text
from copytrader.copying.placing import CopyPlacer
from copytrader.domain import OrderStatus
from copytrader.errors import AccountUnusableError, OrderRejectedError, TransientError
from copytrader.kraken.retry import OUTCOME_SETTLE_S
from copytrader.ledger import CopyRecord, CopyState, Ledger, MasterOrderRecord
from copytrader.logs import get_logger

log = get_logger(__name__)


class InFlightResolver:
    """Settles copies whose AddOrder may or may not have landed."""

    def __init__(
        self,
        ledger: Ledger,
        settings: CopierSettings,
        gates: CopyGates,
        earlier_run: EarlierRunOrders,
        placer: CopyPlacer,
        outcomes: CopyOutcomes,
        clock: Callable[[], float],
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._gates = gates
        self._earlier_run = earlier_run
        self._placer = placer
        self._outcomes = outcomes
        self._clock = clock

    def resolve(self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord) -> None:
        """A copy whose AddOrder may or may not have landed: ask Kraken before anything else.
        While the account rests nothing can be asked: the copy waits, still `submitting`."""
        if self._outcomes.wait_if_resting(account, master, copy, state=CopyState.SUBMITTING):
            return
        try:
            if copy.written_by_run != self._ledger.run_id:
                found = self._earlier_run.find(account, master, copy)  # left by a crash
            else:
                self._settle(account, copy)
                found = account.broker.find_order_by_cl_ord_id(copy.cl_ord_id)
        except TransientError as error:  # cannot tell yet: look again later
            self._outcomes.retry_or_give_up(master, copy, error)
            return
        except AccountUnusableError:
            if self._outcomes.wait_if_resting(account, master, copy, state=CopyState.SUBMITTING):
                return
            raise  # not resting (a missing permission): the lane ends the copy
        if found is not None:
            # A copy capped by max_slippage_bps: its fill is reported as on a direct send.
            sent = self._placer.request_from_row(master, copy)
            notes = self._gates.after_send(account.broker, master, copy, sent)
            self._outcomes.placed(master, copy, found.txid, resolved=True, notes=notes)
            return
        gate = self._gates.reason_not_to_send(master, copy.user_id)
        if gate:
            if not self._still_on_kraken(account, master, copy):
                self._abandon(master, copy, gate, state=CopyState.SKIPPED)
            return
        if copy.attempts >= self._settings.max_attempts:
            self._abandon(
                master, copy, f"not on Kraken after {copy.attempts} attempts ({copy.error})",
                state=CopyState.FAILED,
            )  # fmt: skip
            return
        assert copy.volume is not None  # written with the state, before the first attempt
        log.info(
            "copy.resend",
            message=(
                f"copy of {master.txid} for {copy.user_id} is not on Kraken after an "
                "interrupted attempt; sending it again with the same cl_ord_id"
            ),
            master_txid=master.txid,
            user=copy.user_id,
            cl_ord_id=copy.cl_ord_id,
            attempt=copy.attempts + 1,
        )
        sub = self._ledger.mark_submitting(
            master.txid, copy.user_id, volume=copy.volume, price=copy.price, price2=copy.price2
        )
        self._placer.send(account, master, sub, self._placer.request_from_row(master, sub))

    def _still_on_kraken(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord
    ) -> bool:
        """Before giving up on a copy one lookup missed, make sure it did not land after all
        (an order the lists do not show yet would otherwise stay live with no record). True if it
        was dealt with here (recorded, or retried later); False if nothing is on Kraken."""
        if master.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) or copy.cancel_requested:
            # The copy is to be cancelled anyway: CancelOrder by cl_ord_id asks the matching
            # engine itself; "Unknown order" confirms nothing carries this id.
            try:
                count = account.broker.cancel_order(cl_ord_id=copy.cl_ord_id)
            except OrderRejectedError:
                return False
            except TransientError as error:  # cannot tell yet: try again later
                self._outcomes.retry_or_give_up(master, copy, error)
                return True
            except AccountUnusableError:
                if self._outcomes.wait_if_resting(
                    account, master, copy, state=CopyState.SUBMITTING
                ):
                    return True
                raise
            self._outcomes.placed(
                master, copy, None, resolved=True, notes=("found by cancelling it",)
            )
            if count:
                self._outcomes.cancelled(master, copy)
            return True
        # Otherwise (signal too old, kill switch) a copy that landed stays: look once more,
        # after another settle, before deciding it is not there.
        try:
            account.broker.settle(OUTCOME_SETTLE_S)
            found = account.broker.find_order_by_cl_ord_id(copy.cl_ord_id)
        except TransientError as error:  # cannot tell yet: try again later
            self._outcomes.retry_or_give_up(master, copy, error)
            return True
        except AccountUnusableError:
            if self._outcomes.wait_if_resting(account, master, copy, state=CopyState.SUBMITTING):
                return True
            raise
        if found is None:
            return False
        self._outcomes.placed(master, copy, found.txid, resolved=True)
        return True

    def _settle(self, account: UserAccount, copy: CopyRecord) -> None:
        """Let the exchange finish the interrupted attempt before looking it up (as add_order
        does): a lookup too early could miss an order still landing, and a resend double it."""
        since_attempt = max(0.0, self._clock() - copy.updated_at)
        if since_attempt < OUTCOME_SETTLE_S:
            account.broker.settle(OUTCOME_SETTLE_S - since_attempt)

    def _abandon(
        self, master: MasterOrderRecord, copy: CopyRecord, why: str, *, state: CopyState
    ) -> None:
        """Give up on a copy whose sending was interrupted and that Kraken does not have:
        nothing was placed, and it is no longer right (or possible) to send it."""
        reason = f"abandoned: {why}"
        if state is CopyState.FAILED:
            self._outcomes.fail(master, copy, reason)
        else:
            self._outcomes.skip(master, copy, reason)

    def after_unexpected_error(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord, error: Exception
    ) -> None:
        """End the copy an unexpected error (a bug: not a transient error, not Kraken's refusal)
        happened in, whatever step it was at, with one error event carrying the traceback. It
        is not tried again (a bug would only recur, holding up the user's later copies).

        Planned: nothing was sent, `failed`. Submitting (the order may have been sent): looked
        up once first; found -> `placed`, not found -> `failed`, lookup impossible -> `failed`
        marked "outcome unknown". Placed with a cancel to do: the cancel is given up."""
        text = error_text(error)
        current = self._ledger.copy(copy.master_txid, copy.user_id)
        if current.state is CopyState.PLANNED:
            self._outcomes.fail(master, current, text, level="error", exc_info=error)
        elif current.state is CopyState.SUBMITTING:
            try:
                self._settle(account, current)
                found = account.broker.find_order_by_cl_ord_id(current.cl_ord_id)
            except Exception as lookup_error:  # noqa: BLE001 - reported with the copy's end
                why = f"{text}; then the lookup failed: {error_text(lookup_error)}"
                self._outcomes.fail_outcome_unknown(master, current, why, exc_info=error)
                return
            if found is None:
                why = f"{text} (not on Kraken: looked up by cl_ord_id)"
                self._outcomes.fail(master, current, why, level="error", exc_info=error)
                return
            log.error(
                "copy.unexpected_error",
                message=f"copy of {master.txid} for {current.user_id}: {text}; the order is on"
                " Kraken, recorded as placed",
                master_txid=master.txid,
                user=current.user_id,
                cl_ord_id=current.cl_ord_id,
                error=text,
                exc_info=error,
            )
            self._outcomes.placed(master, current, found.txid, resolved=True)
        elif current.state is CopyState.PLACED and current.cancel_requested:
            self._outcomes.cancel_failed(master, current, text, exc_info=error)
        else:
            log.error(
                "copy.unexpected_error",
                message=f"copy of {master.txid} for {current.user_id} ({current.state.value}):"
                f" {text}",
                master_txid=master.txid,
                user=current.user_id,
                error=text,
                exc_info=error,
            )
