"""The copies of a new master order sized together, and written `submitting` in one
transaction, before any lane runs: the lanes then only send.

Why: the daemon is one Python process, so the copy lanes share the GIL. When a hundred lanes
woke at once, each reading its work, sizing and writing its own `submitting` row, every one of
those steps had to win the GIL back from ninety-nine others (and the ledger's write lock
passed between threads a hundred times), so the last lane sent its AddOrder ~130 ms after the
first. Sizing is pure arithmetic once balances, pair and ticker are cached, and one thread does
it for all users in a few ms; one transaction records them all; each lane is then left with
the network call and its outcome.

Only the simple case is batched: the user's lane is idle, this copy is the user's earliest
pending work (only that one: a later copy may depend on an earlier one's fill, so the lane
sizes those after it), it is `planned`, for a master order this run saw (no earlier run can
have sent it), the gates pass and everything sizing needs is cached. Anything else goes to the
lane as before, which then also reports skips and errors. A batched row is `submitting`
before anything is sent, as the state machine requires: if the daemon stops before the lane
sends, the next start looks the cl_ord_id up on Kraken and sends it then if it is not there
and the signal still stands.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from copytrader.copying.accounts import UserAccount
from copytrader.copying.placing import CopyPlacer
from copytrader.kraken.models import OrderRequest
from copytrader.ledger import CopyRecord, CopyState, Ledger, MasterOrderRecord


@dataclass(frozen=True)
class ReadyCopy:
    """A copy written `submitting` by the batch, with the AddOrder its lane sends."""

    master: MasterOrderRecord
    copy: CopyRecord
    request: OrderRequest
    notes: tuple[str, ...]
    prepared_at: float  # the copier's monotonic clock when the batch passed the gates
    master_updates: int  # the ledger's count of master order updates then


def prepare_batch(
    ledger: Ledger,
    placer: CopyPlacer,
    users: Mapping[str, UserAccount],
    pending: Mapping[str, list[CopyRecord]],
    idle: Collection[str],
    warm_ticker: Callable[[UserAccount, MasterOrderRecord], None],
    monotonic: Callable[[], float],
) -> dict[str, ReadyCopy]:
    """Size what can be sized without a call, write it `submitting`; by user id.
    `warm_ticker` is called once per master order (it may fill the ticker cache that sizing a
    market order's copies needs, within a bounded time)."""
    masters: dict[str, MasterOrderRecord] = {}
    sized: list[tuple[str, MasterOrderRecord, CopyRecord, OrderRequest, tuple[str, ...]]] = []
    for user_id, copies in pending.items():
        account = users.get(user_id)
        if account is None or user_id not in idle or not copies:
            continue
        copy = copies[0]
        if copy.state is not CopyState.PLANNED:
            continue
        master = masters.get(copy.master_txid)
        if master is None:
            master = masters[copy.master_txid] = ledger.master_order(copy.master_txid)
            warm_ticker(account, master)
        prepared = placer.presize(account, master, copy)
        if prepared is not None:
            sized.append((user_id, master, copy, *prepared))
    if not sized:
        return {}
    prepared_at, master_updates = monotonic(), ledger.master_updates
    moved = ledger.mark_submitting_many(
        [(m.txid, user_id, r.volume, r.price, r.price2) for user_id, m, _c, r, _n in sized]
    )
    return {
        user_id: ReadyCopy(master, record, request, notes, prepared_at, master_updates)
        for (user_id, master, _copy, request, notes), record in zip(sized, moved, strict=True)
        if record is not None  # the master's cancel moved it meanwhile: the lane sees that
    }
