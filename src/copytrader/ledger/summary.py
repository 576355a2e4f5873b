"""The one `copy.summary` event of a master order, once all its copies are done."""

from __future__ import annotations

from copytrader.ledger.copy_states import CopyStateMachine
from copytrader.ledger.records import MasterOrderRecord
from copytrader.logs import get_logger

log = get_logger(__name__)


def log_summary_once(ledger: CopyStateMachine, master: MasterOrderRecord) -> None:
    """Once all copies of the master order are done, log `copy.summary` ("copied to 2/2
    users"); the ledger makes sure that happens exactly once, whichever thread gets there."""
    summary = ledger.claim_summary(master.txid)
    if summary is None:
        return
    fields: dict[str, object] = {}
    if summary.last_acked_at is not None:
        fields["seen_to_all_acked_ms"] = round(
            (summary.last_acked_at - summary.first_seen_at) * 1000, 1
        )
        fields["max_latency_ms"] = summary.max_latency_ms
    log.info(
        "copy.summary",
        message=(
            f"master order {master.txid} copied to {summary.placed}/{summary.total} users"
            + (f" ({summary.skipped} skipped)" if summary.skipped else "")
            + (f" ({summary.failed} failed)" if summary.failed else "")
            + (f" ({master.skip_reason})" if master.skip_reason else "")
        ),
        master_txid=master.txid,
        pair=master.pair,
        side=master.side.value,
        order_type=master.order_type.value if master.order_type else None,
        users=summary.total,
        placed=summary.placed,
        skipped=summary.skipped,
        failed=summary.failed,
        cancelled=summary.cancelled,
        **fields,
    )
