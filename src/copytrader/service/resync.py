"""`copytrader resync [--apply] [--json] [--window S]`: the ledger compared with the exchange on
demand (the comparison is `service.ledger_check`, the same one every start of the daemon runs).

Without `--apply` it only reads: the ledger in SQLite's read-only mode, the exchange with the
daemon's keys through the same nonce files and locks as a running daemon (as `copytrader
check` does), so it is safe beside one; it lists missing, orphaned, doubled and unrecorded
copies. With `--apply` it takes the data folder (refused, exit 3, while a daemon holds it: two
processes writing one ledger and sending copies side by side could both send one copy), fixes
what it found as a start would, then runs the copier until the copies it planned are sent and
the cancels done (at most --timeout seconds).

Exit status: 0 nothing found (or, with --apply, all fixed), 1 findings listed (or work left
after --apply), 2 configuration or MASTER problem, 3 the data folder is held by a daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from copytrader.config.settings import load_settings
from copytrader.config.types import Settings
from copytrader.copying.accounts import CopierSettings
from copytrader.copying.kill_switch import KillSwitch
from copytrader.copying.lanes import Copier
from copytrader.errors import ConfigError, DataDirLockedError, RateLimitedError
from copytrader.feed import MasterFeed
from copytrader.feed.recorder import MasterRecorder
from copytrader.ledger import LEDGER_FILE_NAME, CopyRecord, Ledger, MasterState
from copytrader.ledger.baseline_file import read_baseline_file
from copytrader.ledger.view import LedgerView
from copytrader.logs import LEVELS, configure_logging
from copytrader.service.daemon import CopyDaemon
from copytrader.service.ledger_check import (
    Comparison,
    ExchangeRead,
    Fixed,
    LedgerSide,
    OrderReader,
    compare,
    inspect_data_folder,
    prepare_ledger_at_start,
    read_exchange,
    window_seconds,
)
from copytrader.service.lifecycle import (
    Heartbeat,
    StopSignal,
    acquire_data_dir_lock,
    ensure_writable_data_dir,
    read_lock_holder,
)
from copytrader.service.probe import make_broker

# Beside a running daemon, master orders opened or ended this recently are left out of the
# listing: the daemon's next poll (every few seconds) deals with them.
BESIDE_DAEMON_SETTLE_S = 30.0
LIST_TIMEOUT_S = 10.0
LIST_RATE_WAIT_S = 90.0
LIST_RATE_PAUSE_S = 5.0
EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3


def run_from_args(args: argparse.Namespace) -> int:
    """Entry of `copytrader resync [--apply] [--json]`; returns the exit status: 0 nothing
    found (or all fixed), 1 findings listed, 2 configuration or MASTER problem, 3 the data
    folder is held by a running daemon (`--apply`)."""

    try:
        settings = load_settings()
    except ConfigError as error:
        sys.stderr.write(f"copytrader: configuration error: {error}\n")
        return EXIT_CONFIG
    level = settings.log_level if LEVELS[settings.log_level] > LEVELS["info"] else "warning"
    configure_logging("info" if args.apply else level, settings.log_format, stream=sys.stderr)
    try:
        ensure_writable_data_dir(settings.data_dir)
        if args.apply:
            with acquire_data_dir_lock(settings.data_dir):
                return _apply(settings, args)
        return _list(settings, args)
    except DataDirLockedError as error:
        sys.stderr.write(
            f"copytrader resync --apply: {error}. Stop it first, or restart it: every start"
            " does the same comparison and fixes.\n"
        )
        return EXIT_LOCKED
    except ConfigError as error:
        sys.stderr.write(f"copytrader: {error}\n")
        return EXIT_CONFIG


def _list(settings: Settings, args: argparse.Namespace) -> int:
    """Read-only: no probe (its calls would spend the keys' rate budget, which a running daemon
    shares), just the reads the comparison needs, each key through its nonce file and lock."""
    if settings.master.credentials is None:
        sys.stderr.write(
            f"copytrader resync: MASTER has no credentials: set {settings.master.key_var}"
            f" and {settings.master.secret_var}\n"
        )
        return EXIT_CONFIG
    brokers = {
        spec.account_id: make_broker(spec, settings, timeout_s=LIST_TIMEOUT_S)
        for spec in settings.accounts
        if spec.enabled and spec.credentials is not None
    }
    try:
        master = brokers[settings.master.account_id]
        users: dict[str, OrderReader] = {
            spec.user.id: brokers[spec.account_id]
            for spec in settings.users
            if spec.user is not None and spec.account_id in brokers
        }
        path = settings.data_dir / LEDGER_FILE_NAME
        view: LedgerSide
        closer: Callable[[], None] = lambda: None  # noqa: E731
        if path.exists():
            ledger_view = LedgerView(path)
            view, closer = ledger_view, ledger_view.close
        else:
            view = _EmptyLedger()
        try:
            baseline_at = view.baseline_at() or read_baseline_file(settings.data_dir) or 0.0
            read = _patiently(
                lambda: read_exchange(
                    master, users,
                    window_s=args.window or window_seconds(settings.copy.max_signal_age_seconds),
                    now=time.time(),
                )
            )  # fmt: skip
            # Beside a running daemon, what it has not polled yet is not reported.
            beside_daemon = read_lock_holder(settings.data_dir) is not None
            comparison = compare(
                read, view, baseline_at=baseline_at,
                max_signal_age_s=settings.copy.max_signal_age_seconds,
                settle_s=BESIDE_DAEMON_SETTLE_S if beside_daemon else 0.0,
            )  # fmt: skip
        finally:
            closer()
        for spec in settings.users:
            if spec.enabled and spec.user is not None and spec.account_id not in brokers:
                read.not_read[spec.user.id] = "no credentials: set " + " and ".join(
                    spec.missing_vars or (spec.key_var, spec.secret_var)
                )
        _print(comparison, args.json, applied=None)
        return EXIT_FINDINGS if comparison.findings else EXIT_CLEAN
    finally:
        for broker in brokers.values():
            broker.close()


def _patiently(read: Callable[[], ExchangeRead]) -> ExchangeRead:
    """The read, tried again while the MASTER's rate budget is spent (a running daemon's polls
    use most of it), for at most LIST_RATE_WAIT_S."""
    deadline = time.monotonic() + LIST_RATE_WAIT_S
    while True:
        try:
            return read()
        except RateLimitedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(LIST_RATE_PAUSE_S)


def _apply(settings: Settings, args: argparse.Namespace) -> int:

    before = inspect_data_folder(settings.data_dir)
    stop = StopSignal("resync")
    daemon = CopyDaemon(settings, stop, Heartbeat(settings.data_dir))
    accounts = daemon.connect()
    if accounts.master is None:
        sys.stderr.write(f"copytrader resync: MASTER cannot be used: {accounts.master_problem}\n")
        return EXIT_CONFIG
    copy = settings.copy
    ledger = Ledger.in_data_dir(settings.data_dir)
    try:
        copier = Copier(
            ledger, accounts.users,
            CopierSettings(
                sizing_mode=copy.sizing, max_signal_age_s=copy.max_signal_age_seconds,
                dry_run=copy.dry_run, equity_asset=copy.equity_asset,
            ),
            KillSwitch(settings.data_dir, from_environment=settings.kill_switch_env),
            stop=stop.event,
        )  # fmt: skip
        recorder = MasterRecorder(
            ledger, accounts.master, list(accounts.users),
            unavailable_users=accounts.unavailable, sizing_mode=copy.sizing,
            equity_asset=copy.equity_asset,
        )  # fmt: skip
        feed = MasterFeed(accounts.master, ledger, max_signal_age_s=copy.max_signal_age_seconds)
        brokers = {user_id: account.broker for user_id, account in accounts.users.items()}
        result = prepare_ledger_at_start(
            before, settings.data_dir, ledger, feed, recorder, accounts.master, brokers,
            max_signal_age_s=copy.max_signal_age_seconds, window_s=args.window,
        )  # fmt: skip
        if result is None:
            sys.stdout.write("first start on this data folder: baseline recorded, nothing to fix\n")
            return EXIT_CLEAN
        comparison, fixed = result
        fixed = fixed or Fixed(0, 0, 0, 0, 0)
        copier.kick()
        done = _wait_for_copier(ledger, copier, stop.event, timeout_s=args.timeout)
        copier.shutdown(7.0)
        _print(comparison, args.json, applied=fixed, left=0 if done else _work_left(ledger))
        return EXIT_CLEAN if done else EXIT_FINDINGS
    finally:
        ledger.close()
        if accounts.master is not None:
            accounts.master.close()
        for account in accounts.users.values():
            with contextlib.suppress(Exception):
                account.broker.close()  # type: ignore[attr-defined]


def _work_left(ledger: Ledger) -> int:
    return sum(len(v) for v in ledger.pending_copies_by_user().values())


def _wait_for_copier(
    ledger: Ledger, copier: Any, stop: threading.Event, *, timeout_s: float
) -> bool:
    """Kick the copier until the ledger holds no pending work (True) or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        if not _work_left(ledger) and not copier.in_flight():
            return True
        copier.kick()
        stop.wait(0.2)
    return not _work_left(ledger)


class _EmptyLedger:
    """No ledger file at all: nothing recorded."""

    def baseline_at(self) -> float | None:
        return None

    def master_states(self, txids: Iterable[str]) -> dict[str, MasterState]:
        return {}

    def all_copies(self) -> list[CopyRecord]:
        return []


def _print(comparison: Comparison, as_json: bool, *, applied: Fixed | None, left: int = 0) -> None:
    read = comparison.read
    document: dict[str, Any] = {
        "counts": comparison.counts(),
        "findings": [asdict(f) for f in comparison.findings],
        "master_orders_read": len(read.master),
        "users_compared": sorted(read.users),
        "users_not_read": read.not_read,
        "complete": read.complete,
        "window_start": read.since,
    }
    if applied is not None:
        document["applied"] = asdict(applied) | {"copies_left_pending": left}
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    counts = comparison.counts()
    sys.stdout.write(
        f"compared {len(read.master)} recent master orders with {len(read.users)} users:"
        f" {counts['missing']} missing, {counts['orphaned']} orphaned,"
        f" {counts['doubled']} doubled, {counts['unrecorded']} unrecorded\n"
    )
    for f in comparison.findings:
        orders = ",".join(f.orders) or "-"
        sys.stdout.write(
            f"  {f.kind:<10} {f.user_id:<20} master {f.master_txid} ({f.master_status})"
            f"  orders {orders}  {f.detail}\n"
        )
    for user_id, why in read.not_read.items():
        sys.stdout.write(f"  not compared: {user_id}: {why}\n")
    if applied is not None:
        sys.stdout.write(
            f"applied: {applied.recorded_masters} master orders recorded, {applied.adopted}"
            f" copies recorded placed ({applied.to_cancel} cancelled), {applied.planned} copies"
            f" sent, {applied.doubles_cancelled} doubled copies cancelled;"
            f" {left} copies still pending\n"
        )
