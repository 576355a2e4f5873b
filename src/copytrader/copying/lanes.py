"""The copier: works through the ledger's pending copies, one lane per user, all users at once.

Each user has a lane: at most one task of the shared thread pool works on that user's copies,
in the order the master orders were seen (a buy's copy goes before the sell's that follows it),
through that user's own broker (own key, nonce, lock). Lanes never wait for each other, so one
user's failure, timeout or retry never delays another user.

For one copy the lane does:

- `planned` (see `placing`): gates (kill switch, master cancelled, signal too old) -> sizing
  -> write `submitting` -> AddOrder -> `placed` | `failed`; an unknown outcome or a transient
  error leaves it `submitting` with a retry time;
- `submitting` (see `resolving`; left by a crash, a lost reply, a transient error): look the
  `cl_ord_id` up on Kraken; found -> `placed`; not found -> send again (same cl_ord_id, same
  volume) if the signal still stands, else abandon it;
- `placed` with a cancel request (see `cancelling`; the master order was cancelled):
  CancelOrder -> `cancelled`, or left `placed` if the copy had already filled.

Every outcome is one log event (`copy.placed`, `copy.skipped`, `copy.failed`, `copy.cancelled`,
...) with the latency from the master order's open time, and once all copies of a master order
are done, one `copy.summary`.

While a user's account rests (a lockout or a bad key: see `resting`), that user's copies wait
for it, uncounted, in their order; the lane says so once per rest (`copy.account_resting`) and once
when the rest is over (`copy.account_rest_over`). Other users' lanes go on.

No copy holds its user's lane longer than its own attempts allow: transient errors are tried
again a bounded, counted number of times (`outcomes`), and any other error ends that one copy
(`InFlightResolver.after_unexpected_error`), so the user's next copies go on. A full data disk
(`DiskFullError`) is the exception: it stops every copy alike, so the lane waits for space
(looking again every `disk_full_retry_s`) without charging the copy an attempt; the ledger and
the nonce store report the condition once each way.

Time rules are `CopierSettings.timings`, read against the injected clocks: `clock` (wall time:
retry times, signal age, the start-up window) and `monotonic` (cache ages and waits).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from copytrader.copying.accounts import CopierSettings, CopyObserver, UserAccount
from copytrader.copying.batch import ReadyCopy, prepare_batch
from copytrader.copying.cancelling import CopyCanceller
from copytrader.copying.exchange_index import EarlierRunOrders
from copytrader.copying.gates import CopyGates
from copytrader.copying.kill_switch import KillSwitch
from copytrader.copying.outcomes import CopyOutcomes
from copytrader.copying.placing import CopyPlacer
from copytrader.copying.resolving import InFlightResolver
from copytrader.copying.resting import Rest, rest_of
from copytrader.copying.risk import RiskControls
from copytrader.copying.snapshots import AccountSnapshots
from copytrader.errors import DiskFullError
from copytrader.ledger import CopyRecord, CopyState, Ledger, LedgerError, MasterOrderRecord
from copytrader.logs import get_logger

log = get_logger(__name__)

# The pool has one thread per user (a lane uses one at a time), capped.
MAX_POOL_THREADS = 256


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
        monotonic: Callable[[], float] = time.monotonic,
        risk: RiskControls | None = None,
    ) -> None:
        self._ledger = ledger
        self._users = dict(users)
        self._stop = stop
        self._clock = clock
        self._monotonic = monotonic
        self._timings = settings.timings
        self._snapshots = {
            user_id: AccountSnapshots(
                account.broker,
                equity_asset=settings.equity_asset,
                ttl_s=settings.timings.snapshot_ttl_s,
                clock=monotonic,
            )
            for user_id, account in self._users.items()
        }
        run_started_at = clock()
        outcomes = CopyOutcomes(
            ledger, self._snapshots, settings, observer=observer, clock=clock, stop=stop
        )
        gates = CopyGates(kill_switch, settings, clock, risk)
        earlier_run = EarlierRunOrders(ledger, margin_s=settings.timings.index_margin_s)
        self._placer = CopyPlacer(
            ledger, settings, self._snapshots, gates, earlier_run, outcomes,
            run_started_at=run_started_at, monotonic=monotonic,
        )  # fmt: skip
        self._resolver = InFlightResolver(
            ledger, settings, gates, earlier_run, self._placer, outcomes, clock
        )
        self._canceller = CopyCanceller(ledger, outcomes)
        self._lock = threading.Lock()
        self._lanes_done = threading.Condition(self._lock)  # notified when no lane runs
        self._running: set[str] = set()  # users whose lane is working
        self._dirty: set[str] = set()  # users with work added since their lane last looked
        self._waiting: set[str] = set()  # running lanes idle, waiting to refresh balances
        self._wakeups: dict[str, threading.Event] = {u: threading.Event() for u in self._users}
        self._resting: set[str] = set()  # users whose account was last seen resting (lanes)
        # Copies the batch (batch.py) sized and wrote `submitting`, for their lanes to send.
        self._ready: dict[str, ReadyCopy] = {}
        workers = max(1, min(len(self._users), MAX_POOL_THREADS))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy-lane")
        self._ticker_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy-ticker")

    # ---- scheduling -------------------------------------------------------------------------

    def kick(self) -> None:
        """Start (or wake) the lane of every user with pending work in the ledger, after
        sizing together what can be (batch.py), so that those lanes only have to send."""
        pending = self._ledger.pending_copies_by_user()
        with self._lock:
            idle = {u for u in pending if u not in self._running and u not in self._ready}
        if idle and not self._stop.is_set():
            started = self._monotonic()
            try:
                ready = prepare_batch(
                    self._ledger, self._placer, self._users, pending, idle, self._warm_ticker,
                    self._monotonic,
                )  # fmt: skip
            except DiskFullError:  # reported by the ledger once; the lanes wait for space
                ready = {}
            except Exception as error:  # noqa: BLE001 - the lanes do it one by one instead
                log.warning(
                    "copy.batch_failed",
                    message=f"sizing copies together failed, each lane sizes its own: {error}",
                    error=f"{type(error).__name__}: {error}",
                )
                ready = {}
            if ready:
                masters = sorted({r.master.txid for r in ready.values()})
                log.info(
                    "copy.batched",
                    message=f"sized {len(ready)} copies of {', '.join(masters)} together",
                    master_txids=masters,
                    copies=len(ready),
                    duration_ms=round((self._monotonic() - started) * 1000, 1),
                )
            with self._lock:
                self._ready.update(ready)
        for user_id in pending:
            if user_id in self._users:
                self._wake(user_id)

    def _warm_ticker(self, account: UserAccount, master: MasterOrderRecord) -> None:
        """Read a market order's ticker for the batch, waiting `warm_ticker_wait_s` at most (on
        its own thread, so a hung read only leaves the copies to their lanes)."""
        if not self._placer.needs_ticker(account, master):
            return
        reading = self._ticker_reader.submit(self._placer.warm_ticker, account, master)
        with contextlib.suppress(FutureTimeout):
            reading.result(timeout=self._timings.warm_ticker_wait_s)

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
        with self._lanes_done:
            self._lanes_done.wait_for(lambda: not self._running, timeout=timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._ticker_reader.shutdown(wait=False, cancel_futures=True)
        return self.in_flight() == 0

    def _lane(self, user_id: str) -> None:
        wakeup = self._wakeups[user_id]
        try:
            while not self._stop.is_set():
                with self._lock:
                    self._dirty.discard(user_id)
                    wakeup.clear()
                    ready = self._ready.pop(user_id, None)
                if ready is not None:
                    # Sized and written `submitting` by the batch; it is this user's earliest
                    # pending copy, so it goes first.
                    self._send_ready(user_id, ready)
                    continue
                work = self._ledger.pending_copies(user_id)
                # With nothing to do, refresh what a fill made stale once the fan-out is over
                # (not competing with other users' copies), unless new work comes first. If
                # the refresh fails, the next copy reads them itself.
                if (
                    not work
                    and self._snapshots[user_id].stale()
                    and (self._wait_for_quiet(user_id, wakeup) or self._refresh_snapshots(user_id))
                ):
                    continue
                if not work:
                    with self._lock:
                        if user_id not in self._dirty:
                            self._running.discard(user_id)
                            self._release_if_quiet()
                            return
                    continue
                rest = self._note_rest(user_id, len(work))
                if rest is not None:
                    # Nothing of this user's can be asked or sent: wait for the account, in
                    # memory (a restart's new broker has no rest). A kick or the stop ends
                    # the wait early; other users' lanes are unaffected.
                    wakeup.wait(min(rest.remaining_s, 1.0))
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
            self._release_if_quiet()

    def _note_rest(self, user_id: str, pending: int) -> Rest | None:
        """The user's account's rest, if any; one event when it is found resting with copies to
        do, and one when the rest is over (its waiting copies then go on, each through its
        gates)."""
        rest = rest_of(self._users[user_id])
        with self._lock:
            was_resting = user_id in self._resting
            if (rest is not None) == was_resting:
                return rest
            if rest is None:
                self._resting.discard(user_id)
            else:
                self._resting.add(user_id)
        if rest is not None:
            log.warning(
                "copy.account_resting",
                message=(
                    f"{user_id}'s account is resting {rest.remaining_s:.0f} s more"
                    f" ({rest.reason or 'no private calls for now'}): its {pending} pending"
                    " copies wait, then go out if their master orders still allow it; other"
                    " users are not held up"
                ),
                user=user_id,
                rest_s=round(rest.remaining_s, 3),
                reason=rest.reason,
                pending=pending,
            )
        else:
            log.info(
                "copy.account_rest_over",
                message=(
                    f"{user_id}'s account rested long enough: its {pending} pending copies go"
                    " on (they wait again if Kraken still refuses the key)"
                ),
                user=user_id,
                pending=pending,
            )
        return rest

    def resting_users(self) -> dict[str, float]:
        """The users whose account rests now, with the seconds left (for the heartbeat)."""
        found: dict[str, float] = {}
        for user_id, account in self._users.items():
            rest = rest_of(account)
            if rest is not None:
                found[user_id] = round(rest.remaining_s, 1)
        return found

    def _wait_for_quiet(self, user_id: str, wakeup: threading.Event) -> bool:
        """Wait until every running lane is idle like this one (the fan-out is over) or
        `refresh_after_idle_s` passed; True if new work for this user (or the stop) came first.

        Waiters are woken once, when the last busy lane goes idle, not at every change (a
        hundred lanes waking each other would cost more than the refresh saves)."""
        deadline = self._monotonic() + self._timings.refresh_after_idle_s
        with self._lock:
            self._waiting.add(user_id)
            self._release_if_quiet()
        try:
            while True:
                left = deadline - self._monotonic()
                if left > 0:
                    wakeup.wait(left)
                with self._lock:
                    if user_id in self._dirty or self._stop.is_set():
                        return True
                    if left <= 0 or self._running <= self._waiting:
                        return False
                    wakeup.clear()  # not for us: `_dirty` says whether work came
        finally:
            with self._lock:
                self._waiting.discard(user_id)

    def _release_if_quiet(self) -> None:
        """Wake the waiting lanes if no other lane is busy, and `shutdown` once none runs (the
        caller holds `_lock`; every lane leaving `_running` calls this)."""
        if not self._running:
            self._lanes_done.notify_all()
        if self._waiting and self._running <= self._waiting:
            for waiting in self._waiting:
                self._wakeups[waiting].set()

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

    def _send_ready(self, user_id: str, ready: ReadyCopy) -> None:
        def send() -> None:
            fresh = (
                self._monotonic() - ready.prepared_at < self._timings.ready_fresh_s
                and self._ledger.master_updates == ready.master_updates
            )
            self._placer.send_presized(
                self._users[user_id], ready.master, ready.copy, ready.request, ready.notes,
                recheck=not fresh,
            )  # fmt: skip

        self._guarded(user_id, ready.copy, send, master=ready.master)

    def _process(self, user_id: str, copy: CopyRecord) -> None:
        account = self._users[user_id]

        def step() -> None:
            master = self._ledger.master_order(copy.master_txid)
            if copy.state is CopyState.PLACED:
                self._canceller.cancel(account, master, copy)
            elif copy.state is CopyState.SUBMITTING:
                self._resolver.resolve(account, master, copy)
            else:
                self._placer.plan_and_send(account, master, copy)

        self._guarded(user_id, copy, step)

    def _guarded(
        self,
        user_id: str,
        copy: CopyRecord,
        step: Callable[[], None],
        *,
        master: MasterOrderRecord | None = None,
    ) -> None:
        """Run one step of a copy; whatever it raises ends at most that copy, never the lane.

        LedgerError: the copy moved on underneath (the master's cancel), the lane reads it
        again. DiskFullError: nothing was written (nor sent); the lane waits and tries again,
        uncounted. Anything else is a bug or a value that cannot be used: that copy ends."""
        try:
            step()
        except LedgerError as error:
            _state_moved(copy.master_txid, user_id, error)
        except DiskFullError as error:
            self._wait_for_disk(user_id, copy, error)
        except Exception as error:  # noqa: BLE001 - ends this one copy, loudly
            self._end_after_bug(user_id, copy, error, master)

    def _end_after_bug(
        self,
        user_id: str,
        copy: CopyRecord,
        error: Exception,
        master: MasterOrderRecord | None,
    ) -> None:
        try:
            if master is None:
                master = self._ledger.master_order(copy.master_txid)
            self._resolver.after_unexpected_error(self._users[user_id], master, copy, error)
        except LedgerError as moved:
            _state_moved(copy.master_txid, user_id, moved)
        except DiskFullError as full:
            self._wait_for_disk(user_id, copy, full)

    def _wait_for_disk(self, user_id: str, copy: CopyRecord, error: DiskFullError) -> None:
        # Reported once by the ledger or the nonce store; every lane waits alike, uncounted.
        log.debug(
            "copy.waits_for_disk",
            message=f"copy of {copy.master_txid} for {user_id} waits for disk space: {error}",
            master_txid=copy.master_txid,
            user=user_id,
        )
        self._stop.wait(self._timings.disk_full_retry_s)


def _state_moved(master_txid: str, user_id: str, error: LedgerError) -> None:
    # The master's cancel moved this copy on meanwhile (planned -> skipped): the lane reads
    # the ledger again and carries on from the new state.
    log.info(
        "copy.state_moved",
        message=f"copy of {master_txid} for {user_id} changed underneath: {error}",
        master_txid=master_txid,
        user=user_id,
    )
