"""`copytrader run`: the copy-trading daemon.

    load settings -> logging -> stop signals -> data-folder lock -> heartbeat
    -> connect MASTER, then the users (staggered)
    -> MASTER unusable (wrong key or secret, missing permission, no credentials): stay up,
       resting, copying nothing, until it is fixed or the daemon is stopped (no exit, so no
       restart loop of failing calls)
    -> open the ledger
    -> the ledger step (service.ledger_check): first start: baseline (existing master orders are
       never copied); otherwise the ledger compared with the exchange, rebuilt when lost
    -> resume copies left unfinished by an earlier run (the ledger is the work queue)
    -> loop until stopped: poll the master feed -> record the events -> kick the copy lanes
    -> drain: lanes finish the call they are in; everything else stays in the ledger

Beside it all along: the status board and surface (service.status_*): health.json, the
not-copying alarm, and /healthz, /status, /metrics when a port is configured.

Every wait in the loop is on the stop event, so SIGTERM/SIGINT end it within one HTTP timeout.
The daemon holds no business rule of its own: the feed decides what is new, the copier what to
send, the ledger remembers.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from copytrader.config.settings import AccountSpec, Settings, load_settings
from copytrader.copying.accounts import CopierSettings, UserAccount, UserSizing
from copytrader.copying.kill_switch import KillSwitch
from copytrader.copying.lanes import Copier
from copytrader.copying.risk import RiskControls, UserRisk
from copytrader.copying.risk_monitor import RiskMonitor
from copytrader.copying.unknown_outcomes import UnknownOutcomes
from copytrader.errors import ConfigError, DataDirLockedError, DiskFullError
from copytrader.feed import MasterFeed, poll_interval_seconds
from copytrader.feed.recorder import MasterRecorder
from copytrader.kraken.broker import KrakenBroker
from copytrader.ledger import Ledger
from copytrader.logs import configure_logging, get_logger
from copytrader.service.deadman import DeadManSwitch
from copytrader.service.ledger_check import (
    DataFolderState,
    inspect_data_folder,
    prepare_ledger_at_start,
)
from copytrader.service.lifecycle import (
    Heartbeat,
    StopSignal,
    acquire_data_dir_lock,
    install_stop_signals,
)
from copytrader.service.probe import BrokerFactory, Reason, connect_account, make_broker
from copytrader.service.startup import connect_accounts
from copytrader.service.status_http import status_surface
from copytrader.service.status_state import StatusBoard
from copytrader.service.status_verdict import Phase

log = get_logger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2  # fix the configuration or the environment
EXIT_LOCKED = 3  # another daemon uses this data folder
# The lanes get this long after a stop to finish the call they are in, so the process exits
# within Railway's and Docker's 10 s between SIGTERM and SIGKILL.
DRAIN_TIMEOUT_S = 7.0
# The drawdown checks' thread gets this long to end after a stop (it is inside one TradeBalance
# at most; it writes nothing the next start needs).
RISK_MONITOR_JOIN_S = 0.5
# Copies given up with an unknown outcome are looked up again this often (see
# copying/unknown_outcomes.py); with none, a sweep is one query of the ledger.
UNKNOWN_OUTCOME_SWEEP_S = 60.0
# A failing poll is retried after interval x 2^failures, at most this long.
MAX_POLL_BACKOFF_S = 60.0
# A MASTER that cannot be used (a wrong key or secret, a missing permission) is probed again
# after these rests, then every last one: each probe is one or two private calls, far apart, so
# the key never runs into Kraken's lockout for failed calls. Only a fix on kraken.com (the key's
# permissions) is picked up this way; new variables need a restart (Railway redeploys on a
# variable change).
MASTER_REPROBE_S = (900.0, 1800.0, 3600.0, 7200.0, 14400.0)
# MASTER failures no probe can change: what the environment said (read once, at start).
_UNPROBED_REASONS = frozenset({Reason.NOT_CONFIGURED, Reason.BAD_CREDENTIALS, Reason.DISABLED})


def run_from_args(args: argparse.Namespace) -> int:
    """Entry of `copytrader run`; returns the process exit code."""
    try:
        settings = load_settings()
    except ConfigError as error:
        sys.stderr.write(f"copytrader: configuration error: {error}\n")
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format)
    stop = install_stop_signals()
    duration = getattr(args, "duration", None)
    if duration:
        timer = threading.Timer(duration, stop.request, args=("duration elapsed",))
        timer.daemon = True
        timer.start()
    try:
        with acquire_data_dir_lock(settings.data_dir):
            heartbeat = Heartbeat(settings.data_dir)
            board = StatusBoard(settings.data_dir, heartbeat, dry_run=settings.copy.dry_run)
            stop.add_callback(board.stopping)
            with heartbeat.running(stop.event), status_surface(board, settings.status):
                daemon = CopyDaemon(settings, stop, heartbeat, board=board)
                code = daemon.run()
            if not daemon.drained:
                # A copy lane is still inside a broker call (its retries can outlast the
                # drain). Its copy is `submitting` in the ledger, and the next start settles it
                # by looking it up on Kraken; waiting for the thread could take longer than the
                # platform's grace period, so the process ends now.
                sys.stdout.flush()
                os._exit(code)
            return code
    except DataDirLockedError as error:
        log.error("daemon.data_dir_locked", message=str(error), data_dir=str(settings.data_dir))
        return EXIT_LOCKED
    except ConfigError as error:
        log.error("daemon.config_error", message=str(error))
        return EXIT_CONFIG
    finally:
        stop.restore()


@dataclass(frozen=True)
class ConnectedAccounts:
    master: KrakenBroker | None
    master_problem: str | None
    users: dict[str, UserAccount]
    unavailable: dict[str, str]  # user id -> why it gets no copies
    master_reason: Reason = Reason.OK


def _user_sizing(spec: AccountSpec) -> UserSizing:
    user = spec.user
    assert user is not None
    return UserSizing(
        multiplier=user.multiplier,
        max_order_fraction=user.max_order_fraction,
        max_notional=user.max_notional,
        fixed_notional=user.fixed_notional,
        round_up_to_minimum=user.round_up_to_minimum,
    )


def _user_risk(spec: AccountSpec) -> UserRisk:
    user = spec.user
    assert user is not None
    return UserRisk(
        max_slippage_bps=user.max_slippage_bps,
        close_only=user.close_only,
        max_drawdown_pct=user.max_drawdown_pct,
        cancel_after_s=user.cancel_after_seconds,
    )


class CopyDaemon:
    def __init__(
        self,
        settings: Settings,
        stop: StopSignal,
        heartbeat: Heartbeat,
        *,
        master_reprobe_s: Sequence[float] = MASTER_REPROBE_S,
        broker_factory: BrokerFactory | None = None,
        board: StatusBoard | None = None,
    ) -> None:
        """`master_reprobe_s`: the rests between probes of an unusable MASTER (see
        MASTER_REPROBE_S); `broker_factory`: how accounts get their broker (default
        `probe.make_broker` with the stop event); `board`: what the status surface reads
        (default: one of its own)."""
        self._settings = settings
        self._stop = stop
        self._heartbeat = heartbeat
        self._master_reprobe_s = tuple(master_reprobe_s)
        self._broker_factory = broker_factory or functools.partial(make_broker, stop=stop.event)
        self.drained = True  # False when copy lanes were still busy at the end of the drain
        self._data_before = DataFolderState(False, (), None)
        self.board = board or StatusBoard(settings.data_dir, heartbeat)

    def connect(self) -> ConnectedAccounts:
        """MASTER first, then the users, staggered (`service.startup`). A user that cannot be
        used gets skipped copies with the reason; one that failed for a reason that may pass
        (network, lockout) keeps its broker: its copies retry, or wait for its rest to end."""
        report = connect_accounts(
            self._settings, stop=self._stop.event, broker_factory=self._broker_factory
        )
        specs = {spec.account_id: spec for spec in self._settings.users}
        users: dict[str, UserAccount] = {}
        unavailable: dict[str, str] = {}
        for outcome in report.users:
            spec = specs[outcome.account_id]
            assert spec.user is not None
            if outcome.reason is Reason.DISABLED:
                continue
            if outcome.broker is not None and (outcome.connected or outcome.retryable):
                users[spec.user.id] = UserAccount(
                    user_id=spec.user.id,
                    display_name=spec.display_name,
                    broker=outcome.broker,
                    sizing=_user_sizing(spec),
                )
            else:
                unavailable[spec.user.id] = f"account not connected: {outcome.message}"
        self.board.record_connections(report)
        master = report.master
        usable_master = master.broker if (master.connected or master.retryable) else None
        self._heartbeat.set_accounts(
            connected=sum(o.connected for o in report.all),
            total=1 + len(users) + len(unavailable),
        )
        return ConnectedAccounts(
            master=usable_master,
            master_problem=None if usable_master else master.message,
            users=users,
            unavailable=unavailable,
            master_reason=master.reason,
        )

    # ---- running ------------------------------------------------------------------------

    def run(self) -> int:
        settings = self._settings
        copy_settings = settings.copy
        log.info(
            "daemon.starting",
            message=f"starting: MASTER and {len(settings.enabled_users)} enabled users",
            data_dir=str(settings.data_dir),
            api_url=settings.api_url,
            dry_run=copy_settings.dry_run,
            sizing=copy_settings.sizing.value,
        )
        # Read before connecting, which creates the nonce files: a first start is told apart
        # from a lost ledger by what the folder held before this start (service.ledger_check).
        self._data_before = inspect_data_folder(settings.data_dir)
        accounts = self.connect()
        if self._stop.event.is_set():
            # Stopped while connecting: nothing was read or sent yet, so there is nothing to drain.
            log.info(
                "daemon.stopped",
                message=f"stopped ({self._stop.reason}) while connecting; nothing was in flight",
                drained=True,
                reason=self._stop.reason,
            )
            return EXIT_OK
        master = accounts.master
        if master is None:
            master = self._rest_until_master_usable(accounts)
            if master is None:  # stopped while resting
                return EXIT_OK
        ledger = Ledger.in_data_dir(settings.data_dir)
        try:
            return self._run_with(master, accounts, ledger)
        finally:
            ledger.close()

    def _run_with(self, master: KrakenBroker, accounts: ConnectedAccounts, ledger: Ledger) -> int:
        settings = self._settings
        copy_settings = settings.copy
        sizing_mode = copy_settings.sizing
        kill_switch = KillSwitch(settings.data_dir, from_environment=settings.kill_switch_env)
        specs = {spec.user.id: spec for spec in settings.users if spec.user is not None}
        risk = RiskControls(
            settings.data_dir,
            {user_id: _user_risk(specs[user_id]) for user_id in accounts.users},
            ledger,
            close_only_env=settings.close_only_env,
        )
        risk_monitor = RiskMonitor(
            risk,
            {user_id: account.broker for user_id, account in accounts.users.items()},
            equity_asset=copy_settings.equity_asset,
            interval_s=copy_settings.risk_check_seconds,
            stop=self._stop.event,
        )
        dead_man = DeadManSwitch(
            {
                user_id: account.broker
                for user_id, account in accounts.users.items()
                if isinstance(account.broker, KrakenBroker)
            },
            {user_id: _user_risk(specs[user_id]).cancel_after_s for user_id in accounts.users},
            stop=self._stop.event,
            on_stop=copy_settings.dead_man_on_stop,
        )
        copier = Copier(
            ledger,
            accounts.users,
            CopierSettings(
                sizing_mode=sizing_mode,
                max_signal_age_s=copy_settings.max_signal_age_seconds,
                dry_run=copy_settings.dry_run,
                equity_asset=copy_settings.equity_asset,
            ),
            kill_switch,
            stop=self._stop.event,
            observer=self._heartbeat,
            risk=risk,
        )

        def resting_accounts() -> dict[str, float]:
            found = copier.resting_users()
            if (master_rest := master.cooldown_remaining_s()) > 0:
                found["MASTER"] = round(master_rest, 1)
            return found

        self._heartbeat.watch_resting_accounts(resting_accounts)
        self.board.watch_kill_switch(kill_switch.reason)
        feed = MasterFeed(master, ledger, max_signal_age_s=copy_settings.max_signal_age_seconds)
        recorder = MasterRecorder(
            ledger,
            master,
            list(accounts.users),
            unavailable_users=accounts.unavailable,
            sizing_mode=sizing_mode,
            equity_asset=copy_settings.equity_asset,
            observer=self._heartbeat,
            on_master_fill=copier.refresh_user_snapshots,
        )
        interval = poll_interval_seconds(
            copy_settings.master_tier, copy_settings.poll_interval_seconds
        )
        self.board.set_poll_interval(interval)
        if not self._until_done(
            lambda: self._prepare_ledger(ledger, feed, recorder, master, accounts),
            "ledger.check_failed",
            interval,
        ):
            return self._drain(copier, ledger)
        dead_man.start()  # armed before the first copy
        risk_monitor.start()
        copier.kick()  # copies an earlier run left planned or submitting are resumed first
        kill_switch.reason()  # says so at start when it is on
        log.info(
            "daemon.running",
            message=(
                f"copying MASTER to {len(accounts.users)} users, polling every {interval:g} s"
                + (" (dry run: orders are only validated)" if copy_settings.dry_run else "")
            ),
            users=sorted(accounts.users),
            unavailable=sorted(accounts.unavailable),
            poll_interval_s=interval,
            dry_run=copy_settings.dry_run,
        )
        self.board.set_phase(Phase.RUNNING)
        failures = 0
        unknown_outcomes = UnknownOutcomes(ledger, accounts.users, time.time)
        next_sweep = time.monotonic() + UNKNOWN_OUTCOME_SWEEP_S
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                poll = feed.poll()
                recorder.record(poll.events)
                feed.commit(poll)
                self.board.feed_read()
                failures = 0
            except DiskFullError as error:
                # Reported once by the ledger or the nonce store when the disk filled up; the
                # cursor did not move, so the next poll after space returns records it all.
                log.debug("feed.poll_waits_for_disk", message=str(error))
            except Exception as error:  # noqa: BLE001 - logged; the loop keeps going
                failures += 1
                self.board.feed_failed(f"{type(error).__name__}: {error}")
                log.warning(
                    "feed.poll_failed",
                    message=f"reading the MASTER's orders failed ({error}); retrying",
                    error=f"{type(error).__name__}: {error}",
                    failures=failures,
                )
            try:
                copier.kick()
            except DiskFullError as error:
                log.debug("copy.kick_waits_for_disk", message=str(error))
            except Exception as error:  # noqa: BLE001 - the ledger keeps the work; next poll
                log.error(
                    "copy.kick_failed",
                    message=f"could not hand pending copies to the users' lanes ({error});"
                    " trying again at the next poll",
                    error=f"{type(error).__name__}: {error}",
                )
            if started >= next_sweep:
                next_sweep = started + UNKNOWN_OUTCOME_SWEEP_S
                self._sweep_unknown_outcomes(unknown_outcomes, copier)
            wait = interval * 2 ** min(failures, 6) if failures else interval
            self._stop.wait(max(0.0, min(wait, MAX_POLL_BACKOFF_S) - (time.monotonic() - started)))
        dead_man.finish()
        risk_monitor.join(RISK_MONITOR_JOIN_S)
        return self._drain(copier, ledger)

    @staticmethod
    def _sweep_unknown_outcomes(unknown_outcomes: UnknownOutcomes, copier: Copier) -> None:
        try:
            if unknown_outcomes.sweep():
                copier.kick()  # a found copy whose master was cancelled is cancelled now
        except DiskFullError as error:
            log.debug("copy.sweep_waits_for_disk", message=str(error))
        except Exception as error:
            log.exception(
                "copy.sweep_failed",
                message=f"looking up copies with an unknown outcome failed ({error})",
            )

    def _prepare_ledger(
        self,
        ledger: Ledger,
        feed: MasterFeed,
        recorder: MasterRecorder,
        master: KrakenBroker,
        accounts: ConnectedAccounts,
    ) -> None:
        """First start: the baseline. Otherwise the ledger compared with the exchange, and
        rebuilt or caught up when it was lost or behind (service.ledger_check)."""
        prepare_ledger_at_start(
            self._data_before, self._settings.data_dir, ledger, feed, recorder, master,
            {user_id: account.broker for user_id, account in accounts.users.items()},
            max_signal_age_s=self._settings.copy.max_signal_age_seconds,
        )  # fmt: skip

    # ---- an unusable MASTER ---------------------------------------------------------------

    def _rest_until_master_usable(self, accounts: ConnectedAccounts) -> KrakenBroker | None:
        """MASTER cannot be used for a reason a restart cannot fix (a wrong key or secret, a
        missing permission, no credentials): stay up, copying nothing, instead of exiting for a
        restart policy to start again, where every start sends one more failing call until
        Kraken locks the key out. One error event says why and what to do; the heartbeat and
        the health check say so until it is fixed. MASTER is probed again only after long,
        growing rests (MASTER_REPROBE_S), which picks up a permission added on kraken.com; a
        failure of the environment itself (no or malformed credentials) is never probed again.
        Returns MASTER's broker once usable, or None when stopped first (the stop is logged)."""
        problem = (accounts.master_problem or "not connected").removeprefix("MASTER: ")
        probing = accounts.master_reason not in _UNPROBED_REASONS and bool(self._master_reprobe_s)
        rests = iter(self._master_reprobe_s)
        rest_s = next(rests, None) if probing else None
        fix = (
            "Fix the MASTER variables (Railway: changing a variable redeploys the service), or"
            " the key's permissions on kraken.com (Settings > API)"
        )
        log.error(
            "daemon.master_unavailable",
            message=(
                f"MASTER cannot be used, nothing is copied: {problem}. The daemon stays up,"
                " resting, because a restart cannot fix this and every restart would send one"
                f" more failing call (Kraken locks a key out after a few). {fix}; "
                + (
                    f"MASTER is checked again in {rest_s / 60:.0f} min, or at once on a restart"
                    if rest_s is not None
                    else "then restart the daemon"
                )
            ),
            reason=accounts.master_reason.value,
            next_probe_s=rest_s,
        )
        self._heartbeat.set_resting(f"MASTER cannot be used: {problem}")
        self._heartbeat.beat()  # the health check sees it now, not a minute later
        self.board.nudge()
        while True:
            if self._stop.wait(rest_s):  # None: until stopped
                log.info(
                    "daemon.stopped",
                    message=f"stopped ({self._stop.reason}) while resting: MASTER was unusable,"
                    " nothing was copied",
                    drained=True,
                    reason=self._stop.reason,
                )
                return None
            assert rest_s is not None
            outcome = connect_account(
                self._settings.master, self._settings, broker_factory=self._broker_factory
            )
            if outcome.broker is not None and (outcome.connected or outcome.retryable):
                log.info(
                    "daemon.master_usable",
                    message=f"MASTER can be used again ({outcome.message}); starting to copy",
                    state=outcome.state.value,
                    reason=outcome.reason.value,
                )
                snap = self._heartbeat.snapshot()
                self._heartbeat.set_accounts(
                    connected=snap.accounts_connected + int(outcome.connected),
                    total=snap.accounts_total,
                )
                self._heartbeat.set_resting(None)
                self.board.master_usable()
                return outcome.broker
            rest_s = next(rests, rest_s)
            problem = outcome.message.removeprefix("MASTER: ")
            self._heartbeat.set_resting(f"MASTER cannot be used: {problem}")
            log.warning(
                "daemon.master_still_unavailable",
                message=f"MASTER still cannot be used ({problem}); checking again in"
                f" {rest_s / 60:.0f} min",
                reason=outcome.reason.value,
                next_probe_s=rest_s,
            )

    def _until_done(self, step: Callable[[], object], failure_event: str, interval: float) -> bool:
        """Run `step()` until it succeeds (True) or a stop is requested (False)."""
        failures = 0
        while not self._stop.is_set():
            try:
                step()
                return True
            except Exception as error:  # noqa: BLE001 - logged; retried with backoff
                failures += 1
                log.warning(
                    failure_event,
                    message=f"{error}; retrying",
                    error=f"{type(error).__name__}: {error}",
                    failures=failures,
                )
                self._stop.wait(min(interval * 2**failures, MAX_POLL_BACKOFF_S))
        return False

    def _drain(self, copier: Copier, ledger: Ledger) -> int:
        in_flight = copier.in_flight()
        log.info(
            "daemon.draining",
            message=f"stopping ({self._stop.reason}): {in_flight} copy lanes finishing their call",
            in_flight=in_flight,
            reason=self._stop.reason,
        )
        finished = copier.shutdown(DRAIN_TIMEOUT_S)
        self.drained = finished
        counts = ledger.state_counts()
        log.info(
            "daemon.stopped",
            message=(
                "stopped; copies placed {placed}, skipped {skipped}, failed {failed}, "
                "left for the next start {left}".format(
                    left=counts["planned"] + counts["submitting"], **counts
                )
            ),
            drained=finished,
            **counts,
        )
        return EXIT_OK
