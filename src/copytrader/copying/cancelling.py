"""Cancelling a placed copy after the master order was cancelled or expired: CancelOrder, or,
when there is nothing to cancel, the copy is looked up and left `placed` if it had filled.

A transient failure is tried again, counted; when the attempts are spent, or on any other
error, the cancel is given up loudly (`copy.cancel_failed`) and the copy stays `placed`. While
the user's account rests (see `resting`) the cancel waits for it, uncounted."""

from __future__ import annotations

from copytrader.copying.accounts import UserAccount
from copytrader.copying.outcomes import CopyOutcomes
from copytrader.domain import OrderStatus
from copytrader.errors import AccountUnusableError, OrderRejectedError, TransientError
from copytrader.ledger import CopyRecord, CopyState, Ledger, MasterOrderRecord
from copytrader.logs import get_logger

log = get_logger(__name__)


class CopyCanceller:
    """Carries out the cancel requests the master's cancels left on placed copies."""

    def __init__(self, ledger: Ledger, outcomes: CopyOutcomes) -> None:
        self._ledger = ledger
        self._outcomes = outcomes

    def cancel(self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord) -> None:
        if self._outcomes.wait_if_resting(account, master, copy, state=CopyState.PLACED):
            return
        try:
            if copy.txid is None:  # known to exist by its cl_ord_id only (a duplicate reply)
                count = account.broker.cancel_order(cl_ord_id=copy.cl_ord_id)
            else:
                count = account.broker.cancel_order(txid=copy.txid)
        except OrderRejectedError:
            count = 0
        except TransientError as error:  # the lane tries again (counted)
            self._outcomes.retry_or_give_up(master, copy, error, state=CopyState.PLACED)
            return
        except AccountUnusableError:
            if self._outcomes.wait_if_resting(account, master, copy, state=CopyState.PLACED):
                return
            raise  # not resting (a missing permission): the lane gives the cancel up
        if count == 0:
            try:
                found = account.broker.find_order_by_cl_ord_id(copy.cl_ord_id)
            except TransientError as error:
                self._outcomes.retry_or_give_up(master, copy, error, state=CopyState.PLACED)
                return
            except AccountUnusableError:
                if self._outcomes.wait_if_resting(account, master, copy, state=CopyState.PLACED):
                    return
                raise
            if found is not None and found.status is OrderStatus.CLOSED:
                self._ledger.clear_cancel_request(
                    master.txid, copy.user_id, reason="copy had already filled; nothing to cancel"
                )
                log.info(
                    "copy.cancel_skipped",
                    message=f"copy of {master.txid} for {copy.user_id} had already filled",
                    master_txid=master.txid,
                    user=copy.user_id,
                    txid=copy.txid,
                )
                return
        self._outcomes.cancelled(master, copy)

