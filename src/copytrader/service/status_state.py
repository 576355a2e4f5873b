"""The daemon's live state for the status surface: one thread-safe `StatusBoard`.

The daemon tells it what happens (its phase, how the accounts connected, each read of MASTER's
orders); it reads the rest from the objects that already know: the Heartbeat (counts, who rests,
why the daemon rests), the kill switch. `/healthz`, `/status` and `/metrics` read one
`BoardSnapshot` from it; the health rule reads its `HealthFacts`.

Slots other parts fill (through the daemon's wiring; until they do, the page says "not
measured"):
- close-only: `set_close_only(user, on, reason)` (the risk guard: close-only mode per user);
- drift: `set_drift(user, summary, exceeded)` (the drift check: the user's positions against
  MASTER's, scaled).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from copytrader.config.types import USER_PREFIX
from copytrader.service.lifecycle import Heartbeat, HeartbeatSnapshot
from copytrader.service.probe import Reason
from copytrader.service.startup import StartupReport
from copytrader.service.status_verdict import HealthFacts, Phase, Verdict, decide


@dataclass(frozen=True)
class AccountLine:
    """One account as the page shows it: connected or not, and why."""

    account: str  # "MASTER" or the user's id
    name: str  # the display name from the config
    ready: bool
    detail: str  # "connected", or what is wrong and what happens next


@dataclass(frozen=True)
class CloseOnly:
    on: bool
    reason: str


@dataclass(frozen=True)
class Drift:
    summary: str  # e.g. "XBT 0.012 vs 0.010 expected (+20%)"
    exceeded: bool


@dataclass(frozen=True)
class BoardSnapshot:
    """Everything the page and the metrics show, read at one moment."""

    verdict: Verdict
    facts: HealthFacts
    master: AccountLine
    users: tuple[AccountLine, ...]
    heartbeat: HeartbeatSnapshot
    kill_switch: str | None
    # None: nothing fills this slot in this daemon ("not measured"); else per user.
    close_only: Mapping[str, CloseOnly] | None
    drift: Mapping[str, Drift] | None
    feed_reads: int
    feed_failures: int
    data_dir: Path
    dry_run: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)


class StatusBoard:
    def __init__(
        self,
        data_dir: Path,
        heartbeat: Heartbeat,
        *,
        dry_run: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        self.dry_run = dry_run
        self._heartbeat = heartbeat
        self._monotonic = monotonic
        # Re-entrant: `stopping()` runs from a signal handler, which may interrupt this thread
        # while it holds the lock.
        self._lock = threading.RLock()
        self._phase = Phase.STARTING
        self._master = AccountLine("MASTER", "MASTER", False, "connecting")
        self._users: dict[str, AccountLine] = {}
        self._poll_interval_s = 1.0
        self._last_read: float | None = None
        self._feed_error: str | None = None
        self._feed_reads = 0
        self._feed_failures = 0
        self._kill_switch: Callable[[], str | None] = lambda: None
        self._close_only: dict[str, CloseOnly] | None = None
        self._drift: dict[str, Drift] | None = None
        self._changed = threading.Event()

    # ---- what the daemon tells it ----------------------------------------------------------

    def nudge(self) -> None:
        """Something the health rule reads changed: the monitor decides again now."""
        self._changed.set()

    def wait_for_change(self, timeout_s: float) -> None:
        """Until `nudge()` or `timeout_s`, whichever is first (the monitor's wait)."""
        self._changed.wait(timeout_s)
        self._changed.clear()

    def set_phase(self, phase: Phase) -> None:
        with self._lock:
            # A stop is final: a late "running" from the loop never hides it.
            if self._phase is not Phase.STOPPING:
                self._phase = phase
        self.nudge()

    def stopping(self) -> None:
        """StopSignal callback: the daemon is draining and exits next."""
        self.set_phase(Phase.STOPPING)

    def record_connections(self, report: StartupReport) -> None:
        """How MASTER and the users came out of connecting (disabled users are left out)."""
        master = report.master
        lines: dict[str, AccountLine] = {}
        for outcome in report.users:
            if outcome.reason is Reason.DISABLED:
                continue
            user = outcome.account_id.removeprefix(USER_PREFIX)
            if outcome.connected:
                line = AccountLine(user, outcome.display_name, True, "connected")
            elif outcome.retryable and outcome.broker is not None:
                # Its copies are tried (and wait out a lockout): ready unless it rests.
                line = AccountLine(
                    user, outcome.display_name, True, f"not connected yet, retrying: "
                    f"{outcome.message}",
                )  # fmt: skip
            else:
                line = AccountLine(
                    user, outcome.display_name, False, f"gets no copies: {outcome.message}"
                )
            lines[user] = line
        with self._lock:
            self._master = AccountLine(
                "MASTER", master.display_name, master.connected,
                "connected" if master.connected else master.message.removeprefix("MASTER: "),
            )  # fmt: skip
            self._users = lines
        self.nudge()

    def master_usable(self) -> None:
        """MASTER, unusable at start, can be used now."""
        with self._lock:
            self._master = AccountLine("MASTER", self._master.name, True, "connected")
        self.nudge()

    def set_poll_interval(self, seconds: float) -> None:
        with self._lock:
            self._poll_interval_s = seconds

    def feed_read(self) -> None:
        """MASTER's orders were read and recorded: the feed is alive."""
        with self._lock:
            self._last_read = self._monotonic()
            self._feed_error = None
            self._feed_reads += 1

    def feed_failed(self, error: str) -> None:
        with self._lock:
            self._feed_error = error
            self._feed_failures += 1

    def watch_kill_switch(self, reason: Callable[[], str | None]) -> None:
        with self._lock:
            self._kill_switch = reason

    # ---- slots other parts fill ------------------------------------------------------------

    def set_close_only(self, user: str, on: bool, reason: str = "") -> None:
        with self._lock:
            self._close_only = {**(self._close_only or {}), user: CloseOnly(on, reason)}

    def set_drift(self, user: str, summary: str, exceeded: bool = False) -> None:
        with self._lock:
            self._drift = {**(self._drift or {}), user: Drift(summary, exceeded)}

    # ---- what readers get ------------------------------------------------------------------

    def facts(self) -> HealthFacts:
        return self.snapshot().facts

    def snapshot(self) -> BoardSnapshot:
        beat = self._heartbeat.snapshot()
        with self._lock:
            kill_switch_source = self._kill_switch
        try:
            kill_switch = kill_switch_source()
        except OSError:
            kill_switch = None
        resting = dict(beat.accounts_resting)
        with self._lock:
            now = self._monotonic()
            users = tuple(
                _with_rest(line, resting.get(line.account)) for line in self._users.values()
            )
            master = self._master
            if beat.resting_reason:
                master = AccountLine("MASTER", master.name, False, beat.resting_reason)
            master = _with_rest(master, resting.get("MASTER"))
            facts = HealthFacts(
                phase=self._phase.value,
                master_problem=beat.resting_reason,
                master_rest_s=float(resting.get("MASTER", 0.0)),
                feed_age_s=None if self._last_read is None else round(now - self._last_read, 3),
                feed_error=self._feed_error,
                poll_interval_s=self._poll_interval_s,
                users={line.account: None if line.ready else line.detail for line in users},
                kill_switch=kill_switch,
            )
            return BoardSnapshot(
                verdict=decide(facts),
                facts=facts,
                master=master,
                users=users,
                heartbeat=beat,
                kill_switch=kill_switch,
                close_only=None if self._close_only is None else dict(self._close_only),
                drift=None if self._drift is None else dict(self._drift),
                feed_reads=self._feed_reads,
                feed_failures=self._feed_failures,
                data_dir=self.data_dir,
                dry_run=self.dry_run,
            )


def _with_rest(line: AccountLine, rest_s: float | None) -> AccountLine:
    if not rest_s or rest_s <= 0:
        return line
    return AccountLine(
        line.account, line.name, False,
        f"resting {rest_s:.0f} s more (Kraken's lockout or rate limit); {line.detail}",
    )  # fmt: skip
