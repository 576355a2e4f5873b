"""The copier: works through the ledger's pending copies, one lane per user, all users at once.

Each user has a lane: at most one task of the shared thread pool works on that user's copies,
in the order the master orders were seen (a buy's copy goes before the sell's that follows it),
through that user's own broker (own key, nonce, lock). Lanes never wait for each other, so one
user's failure, timeout or retry never delays another user.

For one copy the lane does:

- `planned`: gates (kill switch, master cancelled, signal too old) -> sizing -> write
  `submitting` -> AddOrder -> `placed` | `failed`; an unknown outcome or a transient error
  leaves it `submitting` with a retry time;
- `submitting` (left by a crash, a lost reply, a transient error): look the `cl_ord_id` up on
  Kraken; found -> `placed`; not found -> send again (same cl_ord_id, same volume) if the
  signal still stands, else abandon it (see `_abandon`);
- `placed` with a cancel request (the master order was cancelled): CancelOrder -> `cancelled`,
  or left `placed` if the copy had already filled.

Every outcome is one log event (`copy.placed`, `copy.skipped`, `copy.failed`, `copy.cancelled`,
...) with the latency from the master order's open time, and once all copies of a master order
are done, one `copy.summary`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from copytrader.copy_support import (
    AccountSnapshots,
    CopierSettings,
    CopyObserver,
    ExchangeOrderIndex,
    KillSwitch,
    UserAccount,
    build_request,
    copy_prices,
    limit_price_of,
    log_summary_once,
    pair_rules,
)
from copytrader.domain import OrderStatus, OrderType, Side
from copytrader.errors import AccountUnusableError, KrakenError, OrderRejectedError
from copytrader.kraken.models import Order, OrderRequest, PairInfo
from copytrader.ledger import CopyRecord, CopyState, Ledger, LedgerError, MasterOrderRecord
from copytrader.logs import get_logger
from copytrader.sizing import SizingMode, SizingRequest, Skipped, size_copy

log = get_logger(__name__)

# Public ticker prices (market orders' reference price) are shared by all users this long.
TICKER_TTL_S = 2.0
# A lane with nothing to do waits this long before re-reading balances a fill made stale.
REFRESH_AFTER_IDLE_S = 0.5
# Waits between attempts at one copy double from FIRST_RETRY_S up to MAX_RETRY_S.
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 8.0
# A planned copy whose balance reads failed is sized again after this long.
PLANNED_RETRY_S = 2.0
# Copies of master orders opened before this run started (plus this margin for the difference
# between Kraken's clock and ours) are checked against the exchange before being sent, in case
# an earlier run sent them.
CLOCK_SKEW_S = 5.0
# The user's order index reaches this far before the oldest master order it must cover.
INDEX_MARGIN_S = 60.0
# The pool has one thread per user (a lane uses one at a time), capped.
MAX_POOL_THREADS = 256


def _error_text(error: BaseException) -> str:
    if isinstance(error, KrakenError) and error.errors:
        return ", ".join(error.errors)
    return f"{type(error).__name__}: {error}"


class Copier:
    """Fan-out of the ledger's pending copies to every user, in parallel, each in order."""

    def __init__(
        self,
        ledger: Ledger,
        users: Mapping[str, UserAccount],
        settings: CopierSettings,
        kill_switch: KillSwitch,
        *,
        stop: threading.Event,
        observer: CopyObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._users = dict(users)
        self._settings = settings
        self._kill_switch = kill_switch
        self._stop = stop
        self._observer = observer
        self._clock = clock
        self._snapshots = {
            user_id: AccountSnapshots(
                account.broker,
                equity_asset=settings.equity_asset,
                ttl_s=settings.snapshot_ttl_s,
            )
            for user_id, account in self._users.items()
        }
        self._tickers: dict[str, tuple[float, Decimal]] = {}
        self._run_started_at = clock()
        # Per user, read once when first needed (each is used by its user's lane only).
        self._indexes: dict[str, ExchangeOrderIndex] = {}
        self._lock = threading.Lock()
        self._running: set[str] = set()  # users whose lane is working
        self._dirty: set[str] = set()  # users with work added since their lane last looked
        self._wakeups: dict[str, threading.Event] = {u: threading.Event() for u in self._users}
        workers = max(1, min(len(self._users), MAX_POOL_THREADS))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy-lane")

    # ---- scheduling -------------------------------------------------------------------------

    def kick(self) -> None:
        """Start (or wake) the lane of every user with pending work in the ledger."""
        for user_id in self._ledger.users_with_pending_work():
            if user_id in self._users:
                self._wake(user_id)

    def _wake(self, user_id: str) -> None:
        with self._lock:
            self._dirty.add(user_id)
            self._wakeups[user_id].set()
            if user_id in self._running or self._stop.is_set():
                return
            self._running.add(user_id)
        self._pool.submit(self._lane, user_id)

    def in_flight(self) -> int:
        """Lanes working right now (the daemon's drain waits for 0)."""
        with self._lock:
            return len(self._running)

    def refresh_user_snapshots(self) -> None:
        """Forget every user's equity and balances (after master fills, prices moved...)."""
        for snapshots in self._snapshots.values():
            snapshots.invalidate()

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop taking work and wait up to `timeout_s` for lanes; True if all finished."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return self.in_flight() == 0

    def _lane(self, user_id: str) -> None:
        wakeup = self._wakeups[user_id]
        try:
            while not self._stop.is_set():
                with self._lock:
                    self._dirty.discard(user_id)
                    wakeup.clear()
                work = self._ledger.pending_copies(user_id)
                # With nothing to do, refresh what a fill made stale once the fan-out has had
                # time to finish (not competing with other users' copies), unless new work
                # comes first. If the refresh fails, the next copy reads them itself.
                if (
                    not work
                    and self._snapshots[user_id].stale()
                    and (wakeup.wait(REFRESH_AFTER_IDLE_S) or self._refresh_snapshots(user_id))
                ):
                    continue
                if not work:
                    with self._lock:
                        if user_id not in self._dirty:
                            self._running.discard(user_id)
                            return
                    continue
                copy = work[0]
                wait_s = (copy.next_attempt_at or 0.0) - self._clock()
                if wait_s > 0:
                    # Keeps this user's order (buy before the sell that follows it); other
                    # users' lanes are unaffected. A kick or the stop ends the wait early.
                    wakeup.wait(min(wait_s, 1.0))
                    continue
                self._process(user_id, copy)
        except Exception as error:  # a bug must not kill the lane silently
            log.exception(
                "copy.lane_crashed",
                message=f"copy lane of {user_id} stopped on an unexpected error: {error}",
                user=user_id,
            )
        with self._lock:
            self._running.discard(user_id)

    def _refresh_snapshots(self, user_id: str) -> bool:
        """With nothing else to do, read again the balances a fill made stale, so the next
        copy does not wait for them. False if that failed."""
        try:
            self._snapshots[user_id].refresh_stale()
        except Exception as error:  # noqa: BLE001 - the next copy reads them itself
            log.debug(
                "copy.snapshot_refresh_failed",
                message=f"could not refresh {user_id}'s balances: {error}",
                user=user_id,
            )
            return False
        return True

    # ---- one copy -----------------------------------------------------------------------

    def _process(self, user_id: str, copy: CopyRecord) -> None:
        account = self._users[user_id]
        master = self._ledger.master_order(copy.master_txid)
        try:
            if copy.state is CopyState.PLACED:
                self._cancel(account, master, copy)
            elif copy.state is CopyState.SUBMITTING:
                self._resolve(account, master, copy)
            else:
                self._plan_and_send(account, master, copy)
        except LedgerError as error:
            # The master's cancel moved this copy on meanwhile (planned -> skipped): the
            # lane reads the ledger again and carries on from the new state.
            log.info(
                "copy.state_moved",
                message=f"copy of {master.txid} for {user_id} changed underneath: {error}",
                master_txid=master.txid,
                user=user_id,
            )

    def _gate(self, master: MasterOrderRecord) -> str | None:
        """Why no copy should be sent now, or None."""
        kill = self._kill_switch.reason()
        if kill:
            return kill
        if master.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            return f"master order {master.status.value} before the copy was sent"
        if master.status not in (OrderStatus.OPEN, OrderStatus.PENDING):
            age = self._clock() - master.opentm
            if age > self._settings.max_signal_age_s:
                return (
                    f"signal too old: master order filled {age:.0f} s ago, more than "
                    f"max_signal_age_seconds {self._settings.max_signal_age_s:g}"
                )
        if master.expiretm and master.expiretm <= self._clock():
            return "master order's expiry time has passed"
        return None

    def _plan_and_send(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord
    ) -> None:
        user_id = account.user_id
        if (
            master.first_seen_at < self._run_started_at
            or master.opentm < self._run_started_at + CLOCK_SKEW_S
        ):
            # An earlier run saw this master order, or could have (it is older than this run):
            # it may have sent this copy and lost the record of it (a crash right after
            # AddOrder; a power cut can undo the ledger's last writes).
            try:
                found = self._earlier_run_order(account, master, copy)
            except AccountUnusableError as error:
                self._fail(master, copy, _error_text(error))
                return
            except Exception as error:  # noqa: BLE001 - any failure: try again later
                self._retry_planned_later(master, copy, error)
                return
            if found is not None:
                sub = self._ledger.mark_submitting(
                    master.txid, user_id, volume=found.volume, price=found.price,
                    price2=found.price2,
                )  # fmt: skip
                self._placed(master, sub, found.txid, resolved=True)
                return
        gate = self._gate(master)
        if gate:
            self._skip(master, copy, gate)
            return
        try:
            request_or_skip = self._size(account, master, copy)
        except (AccountUnusableError, OrderRejectedError) as error:  # e.g. unknown pair
            self._fail(master, copy, _error_text(error))
            return
        except Exception as error:  # noqa: BLE001 - balance reads failed: try again later
            self._retry_planned_later(master, copy, error)
            return
        if isinstance(request_or_skip, Skipped):
            self._skip(master, copy, request_or_skip.reason)
            return
        request, notes = request_or_skip
        sub = self._ledger.mark_submitting(
            master.txid, user_id, volume=request.volume, price=request.price,
            price2=request.price2,
        )  # fmt: skip
        self._send(account, master, sub, request, notes)

    def _earlier_run_order(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord
    ) -> Order | None:
        """The copy's order if it is on the exchange, from the user's index of orders read once
        in this run (read again only if this master order is older than what it covers)."""
        needed_since = master.opentm - INDEX_MARGIN_S
        index = self._indexes.get(account.user_id)
        if index is None or index.since > needed_since:
            since = min([needed_since, *self._pending_opentms(account.user_id)])
            index = ExchangeOrderIndex(account.broker, since - INDEX_MARGIN_S)
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

    def _retry_planned_later(
        self, master: MasterOrderRecord, copy: CopyRecord, error: BaseException
    ) -> None:
        # Nothing was sent, so the row stays `planned` (a restart sizes it afresh) and the
        # lane waits here; the gates (kill switch, cancel, signal age) still end it.
        log.warning(
            "copy.retry",
            message=f"copy of {master.txid} for {copy.user_id} waits: {_error_text(error)}",
            master_txid=master.txid,
            user=copy.user_id,
            error=_error_text(error),
        )
        self._stop.wait(PLANNED_RETRY_S)

    def _size(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord
    ) -> tuple[OrderRequest, tuple[str, ...]] | Skipped:
        if master.order_type is None:
            return Skipped("order type is not copied")
        info = account.broker.pair(master.pair)
        rules = pair_rules(info)
        snapshots = self._snapshots[account.user_id]
        mode = self._settings.sizing_mode
        sizing = account.sizing
        side = master.side
        reference = limit_price_of(master) or self._ticker_price(account, info, side)
        need_equity = (mode is SizingMode.EQUITY_RATIO and side is Side.BUY) or (
            sizing.max_order_fraction is not None
        )
        user_equity = snapshots.equity() if need_equity else None
        holding: Decimal | None = None
        available: Decimal | None = None
        if side is Side.SELL:
            balance = snapshots.balances().get(info.base)
            holding = balance.balance if balance else Decimal(0)
            available = balance.available if balance else Decimal(0)
        result = size_copy(
            SizingRequest(
                mode=mode,
                side=side,
                master_volume=master.volume,
                reference_price=reference,
                rules=rules,
                multiplier=sizing.multiplier,
                fixed_notional=sizing.fixed_notional,
                master_equity=master.master_equity,
                user_equity=user_equity,
                master_base_before=master.master_base_before,
                user_base_holding=holding,
                user_base_available=available,
                max_order_fraction=sizing.max_order_fraction,
                max_notional=sizing.max_notional,
                round_up_to_minimum=sizing.round_up_to_minimum,
            )
        )
        if isinstance(result, Skipped):
            return result
        price, price2 = copy_prices(master, info.tick_size)
        request = build_request(
            master, copy.cl_ord_id, result.volume, price, price2, validate=self._settings.dry_run
        )
        return request, result.notes

    def _ticker_price(self, account: UserAccount, info: PairInfo, side: Side) -> Decimal | None:
        now = time.monotonic()
        with self._lock:
            cached = self._tickers.get(info.pair_id)
        if cached is not None and now - cached[0] < TICKER_TTL_S:
            return cached[1]
        ticker = account.broker.ticker(info.pair_id)
        price = ticker.ask if side is Side.BUY else ticker.bid
        price = price if price > 0 else ticker.last
        if price <= 0:
            return None
        with self._lock:
            self._tickers[info.pair_id] = (now, price)
        return price

    def _request_from_row(self, master: MasterOrderRecord, copy: CopyRecord) -> OrderRequest:
        """The same AddOrder again, from what was written before the first attempt."""
        assert copy.volume is not None  # written with `submitting`, before the first attempt
        return build_request(
            master, copy.cl_ord_id, copy.volume, copy.price, copy.price2,
            validate=self._settings.dry_run,
        )  # fmt: skip

    def _send(
        self,
        account: UserAccount,
        master: MasterOrderRecord,
        copy: CopyRecord,
        request: OrderRequest,
        notes: tuple[str, ...] = (),
    ) -> None:
        try:
            result = account.broker.add_order(request)
        except (OrderRejectedError, AccountUnusableError) as error:
            if isinstance(error, OrderRejectedError) and any(
                "Duplicate cl_ord_id" in text for text in error.errors
            ):
                # An open order already carries this copy's id: it landed earlier.
                self._schedule_retry(master, copy, error, immediate=True)
                return
            self._fail(master, copy, _error_text(error))
            return
        except Exception as error:  # noqa: BLE001 - outcome unknown or transient: look it up
            self._schedule_retry(master, copy, error)
            return
        if request.validate:
            self._skip(master, copy, f"dry run: validated by Kraken ({result.description})",
                       event="copy.validated")  # fmt: skip
            return
        txid = result.txids[0] if result.txids else None
        self._placed(master, copy, txid, resolved=result.resolved_by_lookup, notes=notes)

    def _resolve(self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord) -> None:
        """A copy whose AddOrder may or may not have landed: ask Kraken before anything else."""
        try:
            if copy.written_by_run != self._ledger.run_id:
                found = self._earlier_run_order(account, master, copy)  # left by a crash
            else:
                found = account.broker.find_order_by_cl_ord_id(copy.cl_ord_id)
        except Exception as error:  # noqa: BLE001 - cannot tell yet: try again later
            self._schedule_retry(master, copy, error)
            return
        if found is not None:
            self._placed(master, copy, found.txid, resolved=True)
            return
        gate = self._gate(master)
        if gate:
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
        self._send(account, master, sub, self._request_from_row(master, sub))

    def _abandon(
        self, master: MasterOrderRecord, copy: CopyRecord, why: str, *, state: CopyState
    ) -> None:
        """Give up on a copy whose sending was interrupted and that Kraken does not have:
        nothing was placed, and it is no longer right (or possible) to send it."""
        reason = f"abandoned: {why}"
        if state is CopyState.FAILED:
            self._fail(master, copy, reason)
        else:
            self._skip(master, copy, reason)

    def _cancel(self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord) -> None:
        why = f"master order {master.status.value}"
        if copy.txid is None:
            self._ledger.mark_cancelled(master.txid, copy.user_id, reason=why)
            return
        try:
            count = account.broker.cancel_order(txid=copy.txid)
        except OrderRejectedError:
            count = 0
        except Exception as error:  # noqa: BLE001 - transient: the lane tries again
            self._schedule_retry(master, copy, error, state=CopyState.PLACED)
            return
        if count == 0:
            try:
                found = account.broker.find_order_by_cl_ord_id(copy.cl_ord_id)
            except Exception as error:  # noqa: BLE001
                self._schedule_retry(master, copy, error, state=CopyState.PLACED)
                return
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
        self._ledger.mark_cancelled(master.txid, copy.user_id, reason=why)
        # Its hold is released (and it may have filled in part before).
        self._snapshots[copy.user_id].invalidate()
        log.info(
            "copy.cancelled",
            message=f"copy of {master.txid} cancelled for {copy.user_id} ({why})",
            master_txid=master.txid,
            user=copy.user_id,
            txid=copy.txid,
            cl_ord_id=copy.cl_ord_id,
        )

    # ---- outcomes -----------------------------------------------------------------------

    def _schedule_retry(
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
        text = _error_text(error)
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

    def _placed(
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
        self._summarise(master)

    def _skip(
        self,
        master: MasterOrderRecord,
        copy: CopyRecord,
        reason: str,
        *,
        event: str = "copy.skipped",
    ) -> None:
        self._ledger.mark_skipped(master.txid, copy.user_id, reason=reason)
        log.info(
            event,
            message=f"copy of {master.txid} for {copy.user_id} skipped: {reason}",
            master_txid=master.txid,
            user=copy.user_id,
            cl_ord_id=copy.cl_ord_id,
            reason=reason,
            **self._latency_fields(master, self._clock()),
        )
        if self._observer:
            self._observer.copy_skipped()
        self._summarise(master)

    def _fail(self, master: MasterOrderRecord, copy: CopyRecord, error: str) -> None:
        self._ledger.mark_failed(master.txid, copy.user_id, error=error)
        log.warning(
            "copy.failed",
            message=f"copy of {master.txid} for {copy.user_id} failed: {error}",
            master_txid=master.txid,
            user=copy.user_id,
            cl_ord_id=copy.cl_ord_id,
            error=error,
            **self._latency_fields(master, self._clock()),
        )
        if self._observer:
            self._observer.copy_failed()
        self._summarise(master)

    def _summarise(self, master: MasterOrderRecord) -> None:
        log_summary_once(self._ledger, master)
