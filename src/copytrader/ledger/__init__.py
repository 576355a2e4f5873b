"""The copy ledger: what the daemon has seen and done, in SQLite, so a restart loses nothing.

One file `copies.sqlite3` in the data folder (WAL journal), three tables (and the risk gates'
two, see `risk_state`):

- `master_orders`: each master order seen, recorded once, with what the feed last saw of it
  (status, executed volume), whether it is to be copied (`decision`) and the sizing inputs
  measured on the master when it was first seen (so a restart sizes the same way);
- `copies`: one row per (master order, user) with its state
  planned -> submitting -> placed | skipped | failed | cancelled, written before and after
  every call to Kraken, plus its deterministic `cl_ord_id`;
- `meta`: the feed's cursor and the baseline time of the very first start.

Durability: WAL with `synchronous=NORMAL`. A killed process loses nothing; a power cut or OS
crash can lose the commits since the last checkpoint (every few seconds). Every start compares
the ledger with the exchange (`copytrader.service.ledger_check`), which finds what such a loss hid.

The ledger is the copier's work queue: whatever is not terminal is picked up again after a
crash. Every public method is one transaction; a write runs on the calling thread, holding
the one write connection's lock. A full disk fails the write as `DiskFullError`, reported
once per episode (see `store`).

Its parts: `records` (what is stored), `schema` (tables and rows), `store` (connections, the
write lock, the full-disk watch), `master_orders` (master orders, baseline, cursor),
`copy_states` (copy state transitions and summaries), `copy_queries` (reads of the copies),
`recovery` (what a rebuild from the exchange writes), `risk_state` (equity marks, drawdown
stops and what the risk gates did), `baseline_file` (the baseline time kept
beside the ledger), `view` (a read-only view for `copytrader resync` beside a running daemon).

The file has a schema version (SQLite's `user_version`) and is migrated at open (`schema`).
"""

from __future__ import annotations

from copytrader.ledger.copy_queries import CopyQueries
from copytrader.ledger.copy_states import CopyStateMachine
from copytrader.ledger.master_orders import MasterOrderBook
from copytrader.ledger.records import (
    COPY_ID_NAMESPACE,
    FINAL_MASTER_STATUSES,
    TERMINAL_STATES,
    CopyRecord,
    CopyState,
    CopySummary,
    Decision,
    LedgerError,
    MasterOrderRecord,
    MasterState,
    copy_client_order_id,
)
from copytrader.ledger.recovery import LedgerRecovery
from copytrader.ledger.risk_state import RiskEvent, RiskRecords, RiskState
from copytrader.ledger.store import LEDGER_FILE_NAME

__all__ = [
    "COPY_ID_NAMESPACE",
    "FINAL_MASTER_STATUSES",
    "LEDGER_FILE_NAME",
    "TERMINAL_STATES",
    "CopyRecord",
    "CopyState",
    "CopySummary",
    "Decision",
    "Ledger",
    "LedgerError",
    "MasterOrderRecord",
    "MasterState",
    "RiskEvent",
    "RiskState",
    "copy_client_order_id",
]


class Ledger(MasterOrderBook, CopyStateMachine, CopyQueries, LedgerRecovery, RiskRecords):
    """The daemon's persistent memory. Thread-safe; every public method is one transaction."""
