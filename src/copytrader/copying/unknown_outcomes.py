"""Copies that ended `failed` with an unknown outcome, looked up again later.

Such a copy was given up while it may have reached Kraken (its lookups kept failing), and it is
never sent again. If it did land, it is a live order the ledger does not know: the master's
cancel would not cancel it. So the copier looks these copies up again by their cl_ord_id from
time to time (`UnknownOutcomes.sweep`, run by the daemon between polls): one found on the
exchange is recorded `placed` (with a cancel request when its master order was cancelled or
expired), and the
lanes then treat it as any placed copy. One not found stays as it is. Nothing is ever sent here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from copytrader.copying.accounts import UserAccount
from copytrader.domain import OrderStatus
from copytrader.errors import TransientError
from copytrader.ledger import Ledger
from copytrader.logs import get_logger

log = get_logger(__name__)

# How far back a failed copy is looked up again: long enough for any order Kraken could still
# show late, short enough that a sweep stays a handful of calls.
SWEEP_WINDOW_S = 24 * 3600.0


class UnknownOutcomes:
    def __init__(
        self,
        ledger: Ledger,
        accounts: Mapping[str, UserAccount],
        clock: Callable[[], float],
        *,
        window_s: float = SWEEP_WINDOW_S,
    ) -> None:
        self._ledger = ledger
        self._accounts = accounts
        self._clock = clock
        self._window_s = window_s

    def sweep(self) -> int:
        """Look every recent unknown-outcome copy up once; returns how many were found (and
        are now `placed`). A lookup that fails is tried at the next sweep."""
        found = 0
        since = self._clock() - self._window_s
        for copy in self._ledger.copies_failed_with_unknown_outcome(since):
            account = self._accounts.get(copy.user_id)
            if account is None:
                continue
            try:
                order = account.broker.find_order_by_cl_ord_id(copy.cl_ord_id)
            except TransientError:
                continue
            if order is None:
                continue
            master = self._ledger.master_order(copy.master_txid)
            ended = master.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
            adopted = self._ledger.adopt_found_copy(
                copy.master_txid,
                copy.user_id,
                txid=order.txid,
                volume=order.volume,
                price=order.price,
                price2=order.price2,
                cancel=ended and order.is_open,
                reason="found on the exchange after its outcome was unknown",
            )
            if adopted is None:
                continue
            found += 1
            log.warning(
                "copy.found_after_unknown_outcome",
                message=(
                    f"copy of {copy.master_txid} for {copy.user_id} was on Kraken after all"
                    f" ({order.txid}); recorded as placed"
                    + (", and cancelled since its master order ended" if adopted.cancel_requested
                       else "")
                ),
                master_txid=copy.master_txid,
                user=copy.user_id,
                txid=order.txid,
                cancel=bool(adopted.cancel_requested),
            )
        return found
