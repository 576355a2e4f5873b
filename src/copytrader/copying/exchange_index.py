"""Finding copies an earlier run may have sent: each user's orders on the exchange, read once
per run and indexed by `cl_ord_id`."""

from __future__ import annotations

from copytrader.copying.accounts import CopyBroker, UserAccount
from copytrader.kraken.models import Order
from copytrader.ledger import CopyRecord, Ledger, MasterOrderRecord

# ClosedOrders pages (50 orders each) read for one index; beyond that, copies are looked up
# one by one.
INDEX_MAX_PAGES = 20


class ExchangeOrderIndex:
    """One user's orders on the exchange by `cl_ord_id`, read once: open orders plus the closed
    ones opened or closed after `since`.

    It settles copies an earlier run may have sent (a crash between AddOrder and writing
    `placed`, or a power cut that lost the ledger's last writes). Read after this run started,
    it holds every order an earlier (dead) run placed since `since`; and each of its reads is
    signed with a higher nonce than any request of that run, so a request of that run still on
    its way is refused by Kraken afterwards.
    """

    def __init__(self, broker: CopyBroker, since: float) -> None:
        self.since = since
        self.complete = True
        self._orders: dict[str, Order] = {}
        for order in broker.open_orders().values():
            self._add(order)
        offset = 0
        for _ in range(INDEX_MAX_PAGES):
            page = broker.closed_orders(start=since, ofs=offset)
            for order in page.orders.values():
                self._add(order)
            offset += len(page.orders)
            if not page.orders or offset >= page.count:
                return
        self.complete = False

    def _add(self, order: Order) -> None:
        if order.cl_ord_id:
            self._orders[order.cl_ord_id] = order

    def find(self, cl_ord_id: str) -> Order | None:
        return self._orders.get(cl_ord_id)


class EarlierRunOrders:
    """Per user, the index of orders on the exchange, read when a copy first needs it (each
    index is used by its user's lane only). It reaches `margin_s` before the oldest master
    order it must cover."""

    def __init__(self, ledger: Ledger, *, margin_s: float) -> None:
        self._ledger = ledger
        self._margin_s = margin_s
        self._indexes: dict[str, ExchangeOrderIndex] = {}

    def find(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord
    ) -> Order | None:
        """The copy's order if it is on the exchange, from the user's index of orders read once
        in this run (read again only if this master order is older than what it covers)."""
        needed_since = master.opentm - self._margin_s
        index = self._indexes.get(account.user_id)
        if index is None or index.since > needed_since:
            since = min([needed_since, *self._pending_opentms(account.user_id)])
            index = ExchangeOrderIndex(account.broker, since - self._margin_s)
            self._indexes[account.user_id] = index
        found = index.find(copy.cl_ord_id)
        if found is None and not index.complete:
            found = account.broker.find_order_by_cl_ord_id(copy.cl_ord_id)
        return found

    def _pending_opentms(self, user_id: str) -> list[float]:
        return [
            self._ledger.master_order(copy.master_txid).opentm
            for copy in self._ledger.pending_copies(user_id)
        ]
