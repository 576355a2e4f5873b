"""The dead-man switch: Kraken's CancelAllOrdersAfter kept armed on each user key while the
daemon runs, so that if the daemon dies (killed, the machine gone) Kraken cancels the users'
resting copies after `cancel_after_seconds` instead of leaving them to fill while nobody copies
the master's cancels.

Armed at start, then re-armed every third of the timeout (each call is one point on the key's
REST counter: 3 points a minute at 60 s), so two re-arms can fail before Kraken's timer runs
out. A clean stop disarms it (`dead_man_on_stop = "disarm"`, the default: the resting copies
stay, and the next start carries on with them) or leaves it running (`"leave"`: if the daemon
is not back within the timeout, Kraken cancels them). Kraken's timer covers every open order of
the account, the user's own manual orders too.

Events: `deadman.armed` (per user, once), `deadman.rearm_failed` (the first of a run of re-arms
that did not go through; each next one is tried at its time) and `deadman.rearmed` when one goes
through again, `deadman.disarmed` / `deadman.left_armed` at a clean stop, each with the number
of calls made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from copytrader.config.types import USER_PREFIX
from copytrader.logs import get_logger

log = get_logger(__name__)

REARM_FRACTION = 3  # re-armed every timeout / REARM_FRACTION seconds
# A clean stop waits this long at most for the re-arm thread and the disarms (all users at
# once), so the drain still ends within the platform's grace period after SIGTERM.
JOIN_TIMEOUT_S = 1.0
FINISH_TIMEOUT_S = 2.0


class DeadManBroker(Protocol):
    def cancel_all_orders_after(self, timeout_s: int) -> str: ...


@dataclass
class _Timer:
    broker: DeadManBroker
    timeout_s: int
    due: float = 0.0  # monotonic time of the next call
    calls: int = 0
    failing: bool = False  # the last re-arm failed (reported once, until one goes through)
    armed_once: bool = False
    last_trigger: str = ""


class DeadManSwitch:
    """CancelAllOrdersAfter on every user key that asks for it, kept armed by a thread."""

    def __init__(
        self,
        brokers: Mapping[str, DeadManBroker],
        timeouts: Mapping[str, int],
        *,
        stop: threading.Event,
        on_stop: str = "disarm",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timers = {
            user_id: _Timer(brokers[user_id], timeout)
            for user_id, timeout in timeouts.items()
            if timeout > 0 and user_id in brokers
        }
        self._stop = stop
        self._on_stop = on_stop
        self._monotonic = monotonic
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return bool(self._timers)

    def start(self) -> None:
        """Arm every key now (before the first copy), then keep them armed on a thread."""
        if not self._timers:
            return
        for user_id in self._timers:
            self._arm(user_id)
        self._thread = threading.Thread(target=self._run, name="dead-man", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._monotonic()
            for user_id, timer in self._timers.items():
                if timer.due <= now and not self._stop.is_set():
                    self._arm(user_id)
            next_due = min(timer.due for timer in self._timers.values())
            self._stop.wait(max(0.05, next_due - self._monotonic()))

    def _arm(self, user_id: str) -> None:
        timer = self._timers[user_id]
        rearm_s = timer.timeout_s / REARM_FRACTION
        timer.due = self._monotonic() + rearm_s
        timer.calls += 1
        try:
            trigger = timer.broker.cancel_all_orders_after(timer.timeout_s)
        except Exception as error:  # noqa: BLE001 - tried again at the next re-arm
            if timer.failing:
                return
            timer.failing = True
            log.warning(
                "deadman.rearm_failed",
                message=(
                    f"{user_id}: could not arm Kraken's dead-man switch ({error}); trying again"
                    f" in {rearm_s:.0f} s. If it stays unarmed past {timer.timeout_s} s since"
                    " the last arm, Kraken cancels every open order of the account"
                ),
                account=f"{USER_PREFIX}{user_id}",
                user=user_id,
                error=f"{type(error).__name__}: {error}",
                calls=timer.calls,
            )
            return
        timer.last_trigger = trigger
        if timer.failing:
            timer.failing = False
            log.info(
                "deadman.rearmed",
                message=f"{user_id}: dead-man switch armed again (Kraken fires it at {trigger})",
                account=f"{USER_PREFIX}{user_id}",
                user=user_id,
                trigger_time=trigger,
                calls=timer.calls,
            )
        if not timer.armed_once:
            timer.armed_once = True
            log.info(
                "deadman.armed",
                message=(
                    f"{user_id}: dead-man switch armed: if the daemon stops re-arming it,"
                    f" Kraken cancels the account's open orders {timer.timeout_s} s later;"
                    f" re-armed every {rearm_s:.0f} s (one REST point each)"
                ),
                account=f"{USER_PREFIX}{user_id}",
                user=user_id,
                timeout_s=timer.timeout_s,
                rearm_every_s=round(rearm_s, 1),
                trigger_time=trigger,
            )

    def finish(self) -> None:
        """At a clean stop (the stop event is set): end the thread, then disarm each key (all
        at once, `FINISH_TIMEOUT_S` at most: one not done by then is reported) or leave it
        armed, as `dead_man_on_stop` says."""
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
        if self._on_stop == "leave":
            for user_id, timer in self._timers.items():
                self._left_armed(user_id, timer)
            return
        workers = [
            threading.Thread(target=self._disarm, args=(user_id, timer), daemon=True)
            for user_id, timer in self._timers.items()
        ]
        for worker in workers:
            worker.start()
        deadline = self._monotonic() + FINISH_TIMEOUT_S
        for worker in workers:
            worker.join(max(0.0, deadline - self._monotonic()))
        for (user_id, timer), worker in zip(self._timers.items(), workers, strict=True):
            if worker.is_alive():
                log.error(
                    "deadman.disarm_failed",
                    message=(
                        f"{user_id}: the dead-man switch's disarm did not finish in"
                        f" {FINISH_TIMEOUT_S:g} s: Kraken may cancel the account's open orders"
                        f" at {timer.last_trigger} unless the daemon is back before then"
                    ),
                    account=f"{USER_PREFIX}{user_id}",
                    user=user_id,
                    error="timed out",
                    calls=timer.calls,
                )

    def _left_armed(self, user_id: str, timer: _Timer) -> None:
        log.warning(
            "deadman.left_armed",
            message=(
                f"{user_id}: dead-man switch left armed (dead_man_on_stop = leave): Kraken"
                f" cancels the account's open orders at {timer.last_trigger} unless the daemon"
                " is back before then"
            ),
            account=f"{USER_PREFIX}{user_id}",
            user=user_id,
            trigger_time=timer.last_trigger,
            calls=timer.calls,
        )

    def _disarm(self, user_id: str, timer: _Timer) -> None:
        account = f"{USER_PREFIX}{user_id}"
        timer.calls += 1
        try:
            timer.broker.cancel_all_orders_after(0)
        except Exception as error:  # noqa: BLE001 - said loudly; Kraken's timer still runs
            log.error(
                "deadman.disarm_failed",
                message=(
                    f"{user_id}: could not disarm the dead-man switch ({error}): Kraken"
                    f" cancels the account's open orders at {timer.last_trigger} unless"
                    " the daemon is back before then"
                ),
                account=account,
                user=user_id,
                error=f"{type(error).__name__}: {error}",
                calls=timer.calls,
            )
            return
        log.info(
            "deadman.disarmed",
            message=f"{user_id}: dead-man switch disarmed at a clean stop",
            account=account,
            user=user_id,
            calls=timer.calls,
        )
