"""The daemon's first minute: connect every account, one broker each, and say how each ended.

MASTER connects first. Then the USER connections start one after another, each
`[copy] connect_stagger_seconds` after the previous one started; they run side by side, so a slow
or hanging account delays no one (every broker call has a timeout, and the broker's own
nonce-jump retries handle `EAPI:Invalid nonce`). Each account ends in exactly one state with one
log event:

    account.connected   info     with its equity
    account.skipped     warning  disabled, or credentials not set (naming the two variables)
    account.failed      error    bad key or secret, missing permission (naming what a
                                 copy-trading key needs), nonce trouble, unreachable, ...

and once all have settled, one `startup.summary` event: MASTER's state and how many users are
ready.

A stop request (SIGTERM) ends every wait here at once: the stagger, and the wait for connections
still inside the broker's timeouts and retries. Those are left to their daemon threads and end as
`account.skipped` with reason `stopped`; their late result is dropped, so each account still has
exactly one event. The brokers built here (for `copytrader run`) get the same stop event, so their
retry waits end at once too, during start-up and for as long as the daemon uses them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from copytrader.config.types import AccountSpec, Settings
from copytrader.kraken.broker import KrakenBroker
from copytrader.logs import get_logger
from copytrader.service.probe import (
    AccountOutcome,
    AccountState,
    BrokerFactory,
    ProbeDepth,
    Reason,
    connect_account,
    make_broker,
    not_connectable,
)

log = get_logger(__name__)

# An account's connection is bounded by its broker's timeouts and retries (well under this);
# this is only the backstop after which it is reported as failed and no longer waited for.
ACCOUNT_DEADLINE_S = 180.0
# How often a wait for a connection looks at the stop event (SIGTERM must end start-up at once).
STOP_POLL_S = 0.05


@dataclass(frozen=True)
class StartupReport:
    """How every account ended, MASTER first, users in config order."""

    master: AccountOutcome
    users: tuple[AccountOutcome, ...]

    @property
    def ready_users(self) -> tuple[AccountOutcome, ...]:
        return tuple(outcome for outcome in self.users if outcome.connected)

    @property
    def all(self) -> tuple[AccountOutcome, ...]:
        return (self.master, *self.users)


def connect_accounts(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    stagger_s: float | None = None,
    broker_factory: BrokerFactory | None = None,
    depth: ProbeDepth = ProbeDepth.STARTUP,
    emit_log: bool = True,
    deadline_s: float = ACCOUNT_DEADLINE_S,
) -> StartupReport:
    """Connect MASTER, then every configured user with the stagger; never raises for an account.

    `depth`: STARTUP (the default, `copytrader run`) probes only what starting needs; FULL
    (`copytrader check`) every permission. `stop` (set by SIGTERM) ends every wait at once:
    accounts not started yet are skipped, and connections still under way (in the broker's
    timeouts and retries) are left to their daemon threads and reported as stopped, with their
    broker. `broker_factory` defaults to `make_broker` with that `stop`, so the brokers' own
    retry waits end on it too. `emit_log=False` returns the report without the per-account and
    summary events.
    """
    if broker_factory is None:
        broker_factory = functools.partial(make_broker, stop=stop)
    stop = stop or threading.Event()
    stagger = settings.copy.connect_stagger_seconds if stagger_s is None else stagger_s
    on_settled = log_outcome if emit_log else _ignore

    if emit_log:
        for note in settings.notes:  # e.g. legacy variable names, a user listed twice
            log.warning("config.note", message=note)
    master_attempt = _Attempt.start(
        settings.master, settings, broker_factory, depth, on_settled, stop
    )
    master = master_attempt.outcome_by(time.monotonic() + deadline_s, stop, deadline_s)

    attempts: dict[str, _Attempt] = {}
    settled: dict[str, AccountOutcome] = {}
    for spec in settings.users:
        early = not_connectable(spec)
        if early is not None:  # disabled or no credentials: settled at once, nothing to wait for
            settled[spec.account_id] = early
            on_settled(early)
            continue
        if attempts and stagger > 0:
            stop.wait(stagger)
        if stop.is_set():  # not started: reported as stopped below, after the others
            continue
        attempts[spec.account_id] = _Attempt.start(
            spec, settings, broker_factory, depth, on_settled, stop
        )

    deadline = time.monotonic() + deadline_s
    users: list[AccountOutcome] = []
    for spec in settings.users:
        outcome = settled.get(spec.account_id)
        if outcome is None:
            attempt = attempts.get(spec.account_id)
            if attempt is None:
                outcome = _stopped(spec, None)
                on_settled(outcome)
            else:
                outcome = attempt.outcome_by(deadline, stop, deadline_s)
        users.append(outcome)
    report = StartupReport(master=master, users=tuple(users))
    if emit_log:
        log_summary(report)
    return report


def _ignore(_outcome: AccountOutcome) -> None:
    pass


class _Attempt:
    """One account's connection in its own daemon thread (a stuck call must never keep the
    process alive), and the decision, made once under a lock, of how it ended: by itself, or
    abandoned by the waiter (stop requested, deadline passed). Whichever comes first is the
    account's one outcome and its one log event; a later result is dropped."""

    def __init__(self, spec: AccountSpec, on_settled: Callable[[AccountOutcome], None]) -> None:
        self.spec = spec
        self._on_settled = on_settled
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._outcome: AccountOutcome | None = None
        self._broker: KrakenBroker | None = None  # once created: handed out if abandoned

    @classmethod
    def start(
        cls,
        spec: AccountSpec,
        settings: Settings,
        factory: BrokerFactory,
        depth: ProbeDepth,
        on_settled: Callable[[AccountOutcome], None],
        stop: threading.Event,
    ) -> _Attempt:
        attempt = cls(spec, on_settled)

        def recorded_factory(spec: AccountSpec, settings: Settings) -> KrakenBroker:
            broker = factory(spec, settings)
            with attempt._lock:
                attempt._broker = broker
            return broker

        def connect(spec: AccountSpec) -> AccountOutcome:
            return connect_account(spec, settings, broker_factory=recorded_factory, depth=depth)

        def run() -> None:
            outcome = _guarded(connect, spec)
            if stop.is_set() and outcome.state is AccountState.FAILED:
                # Reported as when the waiter gives up on it first: stopped, not failed. The
                # broker's waits end on the stop, so the failure is most likely the stop's doing,
                # and the stopping daemon will not use the account either way.
                outcome = _stopped(spec, outcome.broker)
            attempt._settle(outcome)

        thread = threading.Thread(
            target=run,
            name=f"connect-{spec.account_id}",
            daemon=True,
        )
        thread.start()
        return attempt

    def _settle(self, outcome: AccountOutcome) -> AccountOutcome:
        with self._lock:
            if self._outcome is None:
                self._outcome = outcome
                first = True
            else:
                first = False
        if first:  # logged before `done`, so MASTER's event comes before any user's
            self._on_settled(outcome)
        self._done.set()
        return self._outcome

    def outcome_by(
        self, deadline: float, stop: threading.Event, deadline_s: float
    ) -> AccountOutcome:
        """The outcome once the connection ends; at `deadline` or on `stop`, an abandoned one."""
        while not self._done.is_set() and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Two things can end the wait (done, stop); a short slice keeps a stop prompt.
            self._done.wait(min(remaining, STOP_POLL_S))
        if self._done.is_set():
            assert self._outcome is not None
            return self._outcome
        with self._lock:
            broker = self._broker
        if stop.is_set():
            return self._settle(_stopped(self.spec, broker))
        return self._settle(_timed_out(self.spec, broker, deadline_s))


def _guarded(connect: Callable[[AccountSpec], AccountOutcome], spec: AccountSpec) -> AccountOutcome:
    """One account's bug must not take the others down: an unexpected error is its failure."""
    try:
        return connect(spec)
    except Exception as exc:  # noqa: BLE001 - reported as this account's failure, not raised
        return AccountOutcome(
            spec.account_id,
            spec.display_name,
            AccountState.FAILED,
            Reason.ERROR,
            f"{spec.account_id}: unexpected {type(exc).__name__} while connecting: {exc}",
        )


def _timed_out(spec: AccountSpec, broker: KrakenBroker | None, deadline_s: float) -> AccountOutcome:
    return AccountOutcome(
        spec.account_id,
        spec.display_name,
        AccountState.FAILED,
        Reason.UNREACHABLE,
        f"{spec.account_id}: no answer within {deadline_s:g} s",
        broker=broker,
    )


def _stopped(spec: AccountSpec, broker: KrakenBroker | None) -> AccountOutcome:
    """Not connected because a stop was requested (before or while connecting)."""
    return AccountOutcome(
        spec.account_id,
        spec.display_name,
        AccountState.SKIPPED,
        Reason.STOPPED,
        f"{spec.account_id}: not connected, the daemon is stopping",
        broker=broker,
    )


def log_outcome(outcome: AccountOutcome) -> None:
    """The one event that says how this account ended."""
    fields: dict[str, object] = {
        "message": outcome.message,
        "account": outcome.account_id,
        "name": outcome.display_name,
        "state": outcome.state.value,
        "reason": outcome.reason.value,
        "elapsed_s": outcome.elapsed_s,
    }
    if outcome.missing_permissions:
        fields["missing_permissions"] = list(outcome.missing_permissions)
    if outcome.warnings:
        fields["warnings"] = list(outcome.warnings)
    if outcome.state is AccountState.CONNECTED:
        log.info(
            "account.connected",
            equity=str(outcome.equity) if outcome.equity is not None else None,
            equity_asset=outcome.equity_asset,
            **fields,
        )
    elif outcome.state is AccountState.SKIPPED:
        log.warning("account.skipped", **fields)
    else:
        log.error("account.failed", retryable=outcome.retryable, **fields)


def log_summary(report: StartupReport) -> None:
    """One line once every account has settled: MASTER's state and how many users are ready."""
    users_total = len(report.users)
    enabled = [o for o in report.users if o.reason is not Reason.DISABLED]
    ready = len(report.ready_users)
    healthy = report.master.connected and ready == len(enabled)
    message = (
        f"MASTER {report.master.state.value}; {ready} of {len(enabled)} enabled users ready"
        + (f" ({users_total - len(enabled)} disabled)" if users_total != len(enabled) else "")
    )
    (log.info if healthy else log.warning)(
        "startup.summary",
        message=message,
        master_state=report.master.state.value,
        users_ready=ready,
        users_enabled=len(enabled),
        users_total=users_total,
        skipped=[o.account_id for o in report.users if o.state is AccountState.SKIPPED],
        failed=[o.account_id for o in report.users if o.state is AccountState.FAILED],
    )
