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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from copytrader.account_probe import (
    AccountOutcome,
    AccountState,
    BrokerFactory,
    Reason,
    connect_account,
    make_broker,
    not_connectable,
)
from copytrader.config_types import AccountSpec, Settings
from copytrader.logs import get_logger

log = get_logger(__name__)

# An account's connection is bounded by its broker's timeouts and retries (well under this);
# this is only the backstop after which it is reported as failed and no longer waited for.
ACCOUNT_DEADLINE_S = 180.0


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
    broker_factory: BrokerFactory = make_broker,
    probe_writes: bool = True,
    emit_log: bool = True,
    deadline_s: float = ACCOUNT_DEADLINE_S,
) -> StartupReport:
    """Connect MASTER, then every configured user with the stagger; never raises for an account.

    `stop` (set by SIGTERM) ends the waiting early: accounts not started yet are skipped.
    `emit_log=False` returns the report without the per-account and summary events.
    """
    stop = stop or threading.Event()
    stagger = settings.copy.connect_stagger_seconds if stagger_s is None else stagger_s

    def connect(spec: AccountSpec) -> AccountOutcome:
        return connect_account(
            spec, settings, broker_factory=broker_factory, probe_writes=probe_writes
        )

    if emit_log:
        for note in settings.notes:  # e.g. legacy variable names, a user listed twice
            log.warning("config.note", message=note)
    master = _bounded(connect, settings.master, deadline_s)
    if emit_log:
        log_outcome(master)

    results: dict[str, AccountOutcome] = {}
    lock = threading.Lock()
    threads: list[tuple[AccountSpec, threading.Thread]] = []

    def run_now(spec: AccountSpec, outcome: AccountOutcome) -> None:
        with lock:
            results[spec.account_id] = outcome
        if emit_log:
            log_outcome(outcome)

    def run(spec: AccountSpec) -> None:
        run_now(spec, _guarded(connect, spec))

    for spec in settings.users:
        early = not_connectable(spec)
        if early is not None:  # disabled or no credentials: settled at once, nothing to wait for
            run_now(spec, early)
            continue
        if threads and stagger > 0 and stop.wait(stagger):
            break
        if stop.is_set():
            break
        thread = threading.Thread(target=run, args=(spec,), name=f"connect-{spec.account_id}")
        thread.daemon = True  # a stuck connection must never keep the process alive
        thread.start()
        threads.append((spec, thread))

    deadline = time.monotonic() + deadline_s
    for _spec, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))

    users: list[AccountOutcome] = []
    for spec in settings.users:
        with lock:
            outcome = results.get(spec.account_id)
        if outcome is None:
            started = any(started_spec is spec for started_spec, _ in threads)
            outcome = _unfinished(spec, started, deadline_s)
            with lock:
                results[spec.account_id] = outcome
            if emit_log:
                log_outcome(outcome)
        users.append(outcome)
    report = StartupReport(master=master, users=tuple(users))
    if emit_log:
        log_summary(report)
    return report


def _bounded(
    connect: Callable[[AccountSpec], AccountOutcome], spec: AccountSpec, deadline_s: float
) -> AccountOutcome:
    """Run one connection in a thread and wait at most `deadline_s` for it."""
    box: list[AccountOutcome] = []
    thread = threading.Thread(
        target=lambda: box.append(_guarded(connect, spec)),
        name=f"connect-{spec.account_id}",
        daemon=True,
    )
    thread.start()
    thread.join(deadline_s)
    return box[0] if box else _unfinished(spec, True, deadline_s)


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


def _unfinished(spec: AccountSpec, started: bool, deadline_s: float) -> AccountOutcome:
    if started:
        return AccountOutcome(
            spec.account_id,
            spec.display_name,
            AccountState.FAILED,
            Reason.UNREACHABLE,
            f"{spec.account_id}: no answer within {deadline_s:g} s",
        )
    return AccountOutcome(
        spec.account_id,
        spec.display_name,
        AccountState.SKIPPED,
        Reason.STOPPED,
        f"{spec.account_id}: not connected, the daemon is stopping",
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
