"""The ledger compared with the exchange: at every start of the daemon, and on demand as
`copytrader resync [--apply]`.

What is compared. The MASTER's recent orders (open ones, and those opened or closed within the
window: `max_signal_age_seconds`, at least an hour) against each user's orders, looked up by
the `cl_ord_id` every copy carries (`copy_client_order_id(master txid, user id)`, derivable by
any process), and against what the ledger says of both. A user's open order that matches no
master order read widens the master's read back to that order's age, so a live copy of a
master order cancelled long ago is still found. Each (master order, user) is then one of:

- missing: the master order still stands (open, or filled within the signal-age window), the
  ledger has no record of it, and the user holds no copy;
- orphaned: the user's copy is open, and its master order was cancelled or expired;
- doubled: more than one order carries the copy's `cl_ord_id` (open or executed);
- unrecorded: the copy is on the exchange, and the ledger has no `placed` record of it.

What fixing does (at start, and `resync --apply`): the master orders the ledger lacks are
recorded as the feed would (copies planned for the missing ones); every copy found on the
exchange is recorded `placed`, never sent again; a found copy of an ended master order is
marked for cancelling; an open extra of a doubled copy is cancelled. The copier then sends the
planned copies (each looked up by `cl_ord_id` once more first: the master order is older than
the run) and carries out the cancels, through its one send path.

A first start is told apart from a lost or damaged ledger: no ledger (or one that cannot be
read, moved aside as `copies.sqlite3.damaged-<time>`) while the data folder holds its
`ledger_baseline.txt`, or while the exchange holds copies carrying this daemon's ids, is a lost
ledger: `ledger.lost`, then the rebuild (`ledger.rebuilt`), whose evidence also lists the nonce
files. Nonce files alone (`copytrader check` leaves them before a first run) are a first start,
as is a folder with none of these (`feed.baseline`). A ledger that is there is compared too:
one that is behind (restored from an older backup, or missing the last commits after a power
cut) is `ledger.behind`, and fixed the same way.

`resync` without `--apply` only reads (the ledger in SQLite's read-only mode, the exchange with
the daemon's keys, through the same nonce files and locks as a running daemon): safe beside it.
`--apply` refuses while a daemon holds the data folder (exit 3): two processes writing one
ledger and sending copies side by side could both send one copy; stop the daemon, or simply
restart it, whose start does the same comparison and fixes. The command itself is
`service.resync`; this module is the comparison both use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from copytrader.domain import OrderStatus
from copytrader.errors import ConfigError
from copytrader.feed import (
    CURSOR_OVERLAP_S,
    FeedEvent,
    MasterFeed,
    NewMasterOrder,
    OrderSnapshot,
    derive_events,
    new_order_decision,
)
from copytrader.feed.recorder import MasterRecorder
from copytrader.kraken.models import ClosedOrdersPage, Order
from copytrader.ledger import (
    LEDGER_FILE_NAME,
    CopyRecord,
    CopyState,
    Decision,
    Ledger,
    LedgerError,
    MasterState,
    copy_client_order_id,
)
from copytrader.ledger.baseline_file import read_baseline_file, write_baseline_file
from copytrader.ledger.schema import SCHEMA_VERSION
from copytrader.ledger.view import LedgerView
from copytrader.logs import get_logger

log = get_logger(__name__)

# The comparison reads at least this far back (seconds), whatever the signal-age window.
MIN_WINDOW_S = 3600.0
# A master order opens before its copies: how far before a user's open order its master's
# read reaches.
MASTER_MARGIN_S = 300.0
# Users whose orders are read at once.
MAX_READERS = 16
# ClosedOrders pages (50 orders each) read per account and comparison.
MAX_PAGES = 20
ENDED = (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
LIVE = (OrderStatus.OPEN, OrderStatus.PENDING)


class OrderReader(Protocol):
    """What the comparison reads of one account (KrakenBroker has it)."""

    def open_orders(self, *, cl_ord_id: str | None = None) -> dict[str, Order]: ...

    def closed_orders(
        self, *, start: float | None = None, ofs: int = 0, cl_ord_id: str | None = None
    ) -> ClosedOrdersPage: ...


class OrderCanceller(OrderReader, Protocol):
    def cancel_order(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> int: ...


class LedgerSide(Protocol):
    """What the comparison reads of the ledger (Ledger, or LedgerView beside a daemon)."""

    def baseline_at(self) -> float | None: ...
    def master_states(self, txids: Iterable[str]) -> dict[str, MasterState]: ...
    def all_copies(self) -> list[CopyRecord]: ...


# ---- the data folder before the start ----------------------------------------------------


@dataclass(frozen=True)
class DataFolderState:
    """What the data folder held before this start touched it (read before any account
    connects: connecting creates the nonce files)."""

    ledger_has_baseline: bool
    nonce_files: tuple[str, ...]
    baseline_file: float | None
    damaged: str | None = None  # why the ledger could not be read (it was moved aside)


def inspect_data_folder(
    data_dir: Path, *, clock: Callable[[], float] = time.time
) -> DataFolderState:
    """Read the data folder's state; a ledger that cannot be read is moved aside (with its
    journal files) and reported as `ledger.damaged`, so the start rebuilds it."""
    nonce_files = tuple(sorted(p.name for p in data_dir.glob("kraken_nonce_*.txt")))
    baseline_file = read_baseline_file(data_dir)
    path = data_dir / LEDGER_FILE_NAME
    if not path.exists():
        return DataFolderState(False, nonce_files, baseline_file)
    try:
        view = LedgerView(path)
        try:
            if view.schema_version() > SCHEMA_VERSION:
                raise ConfigError(
                    f"{path} has ledger schema version {view.schema_version()}, newer than this"
                    f" copytrader's {SCHEMA_VERSION}: run the newer version (it was written by"
                    " one), or move the file away to have it rebuilt from the exchange"
                )
            check = view.integrity()
            if check != "ok":
                raise LedgerError(f"integrity check: {check}")
            has_baseline = view.baseline_at() is not None
        finally:
            view.close()
    except (LedgerError, sqlite3.Error, ValueError) as error:
        aside = path.with_name(f"{path.name}.damaged-{int(clock())}")
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                source.replace(aside.with_name(aside.name + suffix))
        log.error(
            "ledger.damaged",
            message=f"{path.name} cannot be read ({error}); moved aside as {aside.name}, the"
            " ledger is rebuilt from the exchange",
            path=str(path),
            moved_to=str(aside),
            error=str(error),
        )
        return DataFolderState(False, nonce_files, baseline_file, damaged=str(error))
    return DataFolderState(has_baseline, nonce_files, baseline_file)


# ---- reading the exchange ------------------------------------------------------------------


def _read_since(reader: OrderReader, since: float) -> tuple[list[Order], bool]:
    """Open orders and the closed ones after `since`; False if the pages ran out first."""
    orders = list(reader.open_orders().values())
    offset = 0
    for _ in range(MAX_PAGES):
        page = reader.closed_orders(start=since, ofs=offset)
        orders += page.orders.values()
        offset += len(page.orders)
        if not page.orders or offset >= page.count:
            return orders, True
    return orders, False


@dataclass
class ExchangeRead:
    """The master's orders and each user's orders by `cl_ord_id`, as read once."""

    now: float
    since: float
    master: dict[str, OrderSnapshot]
    users: dict[str, dict[str, list[Order]]]  # user -> cl_ord_id -> orders
    not_read: dict[str, str] = field(default_factory=dict)  # user -> why
    complete: bool = True


def read_exchange(
    master: OrderReader,
    users: Mapping[str, OrderReader],
    *,
    window_s: float,
    now: float,
) -> ExchangeRead:
    """Read the master's and the users' orders (a user whose read fails is left out, named in
    `not_read`; a failed master read raises)."""
    since = now - window_s
    complete = True
    by_user: dict[str, dict[str, list[Order]]] = {}
    not_read: dict[str, str] = {}
    oldest_live = since

    def read_user(reader: OrderReader) -> tuple[list[Order], bool]:
        return _read_since(reader, since)

    # Each user has a key, nonce file and lock of its own: their reads go side by side.
    with ThreadPoolExecutor(
        max_workers=max(1, min(len(users), MAX_READERS)), thread_name_prefix="ledger-check"
    ) as pool:
        futures = {user_id: pool.submit(read_user, reader) for user_id, reader in users.items()}
    for user_id, future in futures.items():
        try:
            orders, whole = future.result()
        except Exception as error:  # noqa: BLE001 - one user's failure never stops the others
            not_read[user_id] = f"{type(error).__name__}: {error}"
            continue
        complete &= whole
        index: dict[str, list[Order]] = {}
        for order in orders:
            same_id = index.setdefault(order.cl_ord_id or "", [])
            if order.cl_ord_id and all(o.txid != order.txid for o in same_id):
                same_id.append(order)
                if order.status in LIVE:
                    oldest_live = min(oldest_live, order.opentm - MASTER_MARGIN_S)
        by_user[user_id] = index
    orders, whole = _read_since(master, oldest_live)
    complete &= whole
    snapshots: dict[str, OrderSnapshot] = {}
    for order in orders:
        snap = OrderSnapshot.from_order(order)
        seen = snapshots.get(snap.txid)
        if seen is None or seen.status in LIVE:
            snapshots[snap.txid] = snap
    return ExchangeRead(now, since, snapshots, by_user, not_read, complete)


# ---- the comparison ------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    kind: str  # missing | orphaned | doubled | unrecorded
    master_txid: str
    user_id: str
    cl_ord_id: str
    master_status: str
    orders: tuple[str, ...]  # the copy's orders on the exchange (txids)
    detail: str


@dataclass(frozen=True)
class Comparison:
    baseline_at: float
    read: ExchangeRead
    events: tuple[FeedEvent, ...]
    findings: tuple[Finding, ...]

    def counts(self) -> dict[str, int]:
        counts = {"missing": 0, "orphaned": 0, "doubled": 0, "unrecorded": 0}
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts


def _counted(orders: Sequence[Order]) -> list[Order]:
    """The orders that are a copy in effect: open, or executed at least in part."""
    return [o for o in orders if o.status in LIVE or o.volume_exec > 0]


def _classify(
    master: OrderSnapshot,
    orders: Sequence[Order],
    row: CopyRecord | None,
    *,
    known: bool,
    decision: Decision,
) -> list[tuple[str, str, Sequence[Order]]]:
    """What is wrong with one (master order, user) copy: (kind, detail, its orders) each."""
    found: list[tuple[str, str, Sequence[Order]]] = []
    counted = _counted(orders)
    if len(counted) > 1:
        found.append(("doubled", f"{len(counted)} orders carry the copy's cl_ord_id", counted))
    live = [o for o in orders if o.status in LIVE]
    cancelling = row is not None and row.state is CopyState.PLACED and row.cancel_requested
    if live and master.status in ENDED and not cancelling:
        found.append(
            ("orphaned", f"copy open while the master order is {master.status.value}", live)
        )
    elif orders and (row is None or row.state in (CopyState.SKIPPED, CopyState.FAILED)):
        recorded = "no record" if row is None else f"recorded {row.state.value}"
        found.append(("unrecorded", f"copy on the exchange, ledger has {recorded}", orders))
    elif not orders and row is None and not known and decision is Decision.COPY:
        found.append(
            ("missing", f"master order {master.status.value}, no copy on the exchange", ())
        )
    return found


def compare(
    read: ExchangeRead,
    ledger: LedgerSide,
    *,
    baseline_at: float,
    max_signal_age_s: float,
    settle_s: float = 0.0,
) -> Comparison:
    """Classify every (recent master order, user). `settle_s`: a master order opened or ended
    less than this long ago is not reported missing or orphaned (beside a running daemon,
    whose next poll has not seen it yet)."""
    known = ledger.master_states(read.master)
    rows = {(c.master_txid, c.user_id): c for c in ledger.all_copies()}
    events = derive_events(
        read.master.values(), known, baseline_at=baseline_at, now=read.now,
        max_signal_age_s=max_signal_age_s,
    )  # fmt: skip
    findings: list[Finding] = []
    for master in sorted(read.master.values(), key=lambda o: (o.opentm, o.txid)):
        if master.opentm < baseline_at:
            continue
        settling = read.now - max(master.opentm, master.closetm or 0.0) < settle_s
        decision, _ = new_order_decision(
            master, baseline_at=baseline_at, now=read.now, max_signal_age_s=max_signal_age_s
        )
        for user_id, index in sorted(read.users.items()):
            cl_ord_id = copy_client_order_id(master.txid, user_id)
            orders = index.get(cl_ord_id, [])
            row = rows.get((master.txid, user_id))
            for kind, detail, found in _classify(
                master, orders, row, known=master.txid in known, decision=decision
            ):
                if settling and kind in ("missing", "orphaned"):
                    continue
                findings.append(Finding(
                    kind, master.txid, user_id, cl_ord_id, master.status.value,
                    tuple(o.txid for o in found), detail,
                ))  # fmt: skip
    return Comparison(baseline_at, read, tuple(events), tuple(findings))


# ---- fixing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixed:
    recorded_masters: int
    planned: int
    adopted: int
    to_cancel: int
    doubles_cancelled: int


def apply_comparison(
    comparison: Comparison,
    ledger: Ledger,
    recorder: MasterRecorder,
    users: Mapping[str, OrderCanceller],
) -> Fixed:
    """Write what the comparison found into the ledger (see the module's docstring). Run only
    while no copy lane works on this ledger."""
    read = comparison.read
    new = [e for e in comparison.events if isinstance(e, NewMasterOrder)]
    recorder.record(comparison.events)
    ledger.mark_recorded_by_rebuild(e.order.txid for e in new)
    planned = 0
    for event in new:
        if event.decision is Decision.COPY:
            planned += sum(
                1 for c in ledger.copies_of(event.order.txid) if c.state is CopyState.PLANNED
            )
    recorded = ledger.master_states(read.master)
    adopted = to_cancel = doubles = 0
    for master in read.master.values():
        state = recorded.get(master.txid)
        if state is None or state.decision is Decision.BASELINE:
            continue
        for user_id, index in read.users.items():
            orders = index.get(copy_client_order_id(master.txid, user_id), [])
            if not orders:
                continue
            live = [o for o in orders if o.status in LIVE]
            executed = sorted(orders, key=lambda o: (-o.volume_exec, o.opentm))
            keep = executed[0] if executed[0].volume_exec > 0 else (live or executed)[0]
            cancel = master.status in ENDED and keep.status in LIVE
            changed = ledger.adopt_found_copy(
                master.txid, user_id, txid=keep.txid, volume=keep.volume, price=keep.price,
                price2=keep.price2, cancel=cancel,
                reason="found on the exchange by the ledger's comparison",
            )  # fmt: skip
            if changed is not None:
                adopted += 1
                to_cancel += int(cancel)
                log.info(
                    "ledger.copy_found",
                    message=f"copy of {master.txid} for {user_id} is on the exchange"
                    f" ({keep.txid}, {keep.status.value}): recorded placed"
                    + (", to be cancelled (master order ended)" if cancel else ""),
                    master_txid=master.txid,
                    user=user_id,
                    txid=keep.txid,
                    status=keep.status.value,
                    cancel=cancel,
                )
            for extra in live:
                if extra.txid == keep.txid:
                    continue
                users[user_id].cancel_order(txid=extra.txid)
                doubles += 1
                log.warning(
                    "ledger.double_cancelled",
                    message=f"copy of {master.txid} for {user_id} was on the exchange twice;"
                    f" the open extra {extra.txid} was cancelled (kept {keep.txid})",
                    master_txid=master.txid,
                    user=user_id,
                    cancelled_txid=extra.txid,
                    kept_txid=keep.txid,
                )
    return Fixed(len(new), planned, adopted, to_cancel, doubles)


# ---- the daemon's start --------------------------------------------------------------------


def window_seconds(max_signal_age_s: float) -> float:
    return max(max_signal_age_s, MIN_WINDOW_S)


def prepare_ledger_at_start(
    before: DataFolderState,
    data_dir: Path,
    ledger: Ledger,
    feed: MasterFeed,
    recorder: MasterRecorder,
    master: OrderReader,
    users: Mapping[str, OrderCanceller],
    *,
    max_signal_age_s: float,
    clock: Callable[[], float] = time.time,
    window_s: float | None = None,
) -> tuple[Comparison, Fixed | None] | None:
    """The daemon's ledger step before copying starts: first start (baseline; returns None),
    lost ledger (rebuild), or a ledger that is there (compared, fixed if behind); returns the
    comparison and what was fixed. Safe to run again after a failure: each step is
    idempotent."""
    now = clock()
    started = time.monotonic()
    read = read_exchange(
        master, users, window_s=window_s or window_seconds(max_signal_age_s), now=now
    )
    for user_id, why in read.not_read.items():
        log.warning(
            "ledger.user_not_compared",
            message=f"{user_id}'s orders could not be read ({why}); its copies are looked up"
            " one by one before any is sent",
            user=user_id,
            error=why,
        )
    baseline_at = ledger.baseline_at()
    if baseline_at is None:
        evidence = _lost_evidence(before, read)
        if evidence == _nonce_files_evidence(before):
            # Nonce files alone are left by `copytrader check` before a first run as much as by
            # an earlier daemon; with no baseline file and no copy of ours on the exchange, a
            # rebuild would baseline at "now" anyway, so this is a first start, said gently.
            log.info(
                "ledger.first_start_with_nonce_files",
                message="first start on this data folder (its nonce files are from `check` or an"
                " earlier run; no ledger, baseline file or copy of this daemon exists)",
                nonce_files=list(before.nonce_files),
            )
            evidence = []
        if not evidence:
            feed.ensure_baseline()
            stored = ledger.baseline_at()
            assert stored is not None
            write_baseline_file(data_dir, stored)
            return None
        baseline_at = before.baseline_file or _earliest_copied(read) or now
        log.error(
            "ledger.lost",
            message="the ledger is missing but this is not a first start ("
            + "; ".join(evidence)
            + "): rebuilding it from the exchange",
            evidence=evidence,
            baseline_at=baseline_at,
            damaged=before.damaged,
        )
        ledger.record_baseline(baseline_at, [], cursor=now - CURSOR_OVERLAP_S)
        comparison = compare(
            read, ledger, baseline_at=baseline_at, max_signal_age_s=max_signal_age_s
        )
        fixed = apply_comparison(comparison, ledger, recorder, users)
        _log_fixed(
            "ledger.rebuilt", "rebuilt the ledger from the exchange", comparison, fixed, started
        )
    else:
        if before.baseline_file is None:
            write_baseline_file(data_dir, baseline_at)
        comparison = compare(
            read, ledger, baseline_at=baseline_at, max_signal_age_s=max_signal_age_s
        )
        if not comparison.findings:
            log.info(
                "ledger.checked",
                message=f"the ledger agrees with the exchange ({len(read.master)} recent master"
                f" orders, {len(read.users)} users compared)",
                master_orders=len(read.master),
                users=len(read.users),
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
            return comparison, None
        fixed = apply_comparison(comparison, ledger, recorder, users)
        _log_fixed(
            "ledger.behind", "the ledger was behind the exchange; fixed", comparison, fixed,
            started,
        )  # fmt: skip
    write_baseline_file(data_dir, baseline_at)
    return comparison, fixed


def _lost_evidence(before: DataFolderState, read: ExchangeRead) -> list[str]:
    evidence: list[str] = []
    if before.damaged:
        evidence.append(f"the ledger file was damaged ({before.damaged})")
    if before.baseline_file is not None:
        evidence.append("the data folder holds the baseline file of an earlier start")
    evidence.extend(_nonce_files_evidence(before))
    copies = _copies_on_exchange(read)
    if copies:
        evidence.append(f"the users hold {len(copies)} copies carrying this daemon's ids")
    return evidence


def _nonce_files_evidence(before: DataFolderState) -> list[str]:
    if not before.nonce_files:
        return []
    return ["the data folder holds nonce files: " + ", ".join(before.nonce_files)]


def _copies_on_exchange(read: ExchangeRead) -> list[tuple[str, str]]:
    return [
        (master.txid, user_id)
        for master in read.master.values()
        for user_id, index in read.users.items()
        if copy_client_order_id(master.txid, user_id) in index
    ]


def _earliest_copied(read: ExchangeRead) -> float | None:
    """With no baseline kept anywhere: the open time of the oldest master order that has a
    copy on the exchange (older master orders count as existing before the first start)."""
    copied = {txid for txid, _ in _copies_on_exchange(read)}
    times = [read.master[txid].opentm for txid in copied]
    return min(times) if times else None


def _log_fixed(event: str, what: str, comparison: Comparison, fixed: Fixed, started: float) -> None:
    counts = comparison.counts()
    log.warning(
        event,
        message=(
            f"{what}: {fixed.recorded_masters} master orders recorded, {fixed.adopted} copies"
            f" found on the exchange recorded placed ({fixed.to_cancel} to cancel),"
            f" {fixed.planned} copies to send, {fixed.doubles_cancelled} doubled copies"
            " cancelled"
        ),
        **counts,
        **{f"fixed_{k}": v for k, v in asdict(fixed).items()},
        findings=[asdict(f) for f in comparison.findings[:50]],
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
