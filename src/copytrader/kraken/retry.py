"""The broker's retry policies (tenacity), in one place so their bounds are easy to review.

- Nonce jumps: `EAPI:Invalid nonce` means "not executed", so the same call is sent again with a
  nonce moved ahead by NONCE_JUMPS_MS[i] (10 s, 10 min, 10 h). At most len(NONCE_JUMPS_MS) + 1
  rejections in a row, i.e. 4: Kraken locks a key out after repeated invalid nonces (the
  simulator after 5 in a minute), so we stop before that and cool down.
- Reads: on RetryLaterError or RateLimitedError, exponential backoff with jitter,
  READ_ATTEMPTS attempts and READ_TOTAL_S seconds at most.
- Writes (AddOrder, CancelOrder): WRITE_ATTEMPTS attempts within WRITE_TOTAL_S, and every resend
  is preceded by a lookup of the order (see orders.py); never a blind resend.
`waits=False` (tests) keeps every bound but sleeps zero.

Stopping (DESIGN §4: SIGTERM ends every loop within a bounded time): with a stop event, every
wait is `stop.wait(seconds)`, and a retry policy whose wait is cut short by the stop (or that
would wait while it is set) raises StopRequested instead of trying again. The broker turns that
into what its caller gets on giving up; a stop only ever shortens waits, it never causes a send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import tenacity
from tenacity import RetryCallState

from copytrader.errors import KrakenError, RateLimitedError, RetryLaterError
from copytrader.kraken.errors import throttled_until

NONCE_JUMPS_MS: tuple[int, ...] = (10_000, 600_000, 36_000_000)
READ_ATTEMPTS = 5
READ_TOTAL_S = 30.0
WRITE_ATTEMPTS = 4
WRITE_TOTAL_S = 45.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 8.0
BACKOFF_JITTER_S = 0.5
# Kraken's `EService: Throttled: <ts>` names when to come back; we never wait longer than this.
THROTTLE_MAX_WAIT_S = 30.0
# After a write's reply was lost, give the exchange a moment to finish before looking it up.
OUTCOME_SETTLE_S = 1.0
# After a lockout or after the nonce jumps ran out, the account rests this long (fail fast).
COOLDOWN_S = 300.0

_exponential = tenacity.wait_exponential(
    multiplier=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S
) + tenacity.wait_random(0, BACKOFF_JITTER_S)


def backoff_wait(state: RetryCallState) -> float:
    """Jittered exponential backoff; Kraken's throttle deadline when it gave one."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimitedError):
        until = throttled_until(exc)
        if until is not None:
            return min(max(until - time.time(), 0.0), THROTTLE_MAX_WAIT_S)
    return float(_exponential(state))


def _no_wait(_: RetryCallState) -> float:
    return 0.0


class StopRequested(Exception):
    """The stop event was set while a retry policy was about to wait (or waiting) to try again.

    Internal to the broker, which turns it into what its caller would get on giving up. `last` is
    the failure that was going to be retried (None: the call was stopped before it was sent).
    """

    def __init__(self, last: KrakenError | None) -> None:
        self.last = last
        super().__init__("stopping" if last is None else f"stopping, not retried after: {last}")


def failure_text(error: KrakenError) -> str:
    """An error's message without its "[account] " prefix (for a message that has its own)."""
    return str(error).removeprefix(f"[{error.account}] ") if error.account else str(error)


def wait_unless_stopped(seconds: float, stop: threading.Event | None) -> bool:
    """Wait `seconds`, or less if `stop` gets set: False if the stop is set (before or during)."""
    if stop is None:
        if seconds > 0:
            time.sleep(seconds)
        return True
    if seconds > 0:
        return not stop.wait(seconds)
    return not stop.is_set()


class _StoppableSleep:
    """tenacity's `before_sleep` and `sleep` for one call: the wait is on the stop event, and a
    stop ends the retrying with StopRequested(the failure that was to be retried)."""

    def __init__(
        self, stop: threading.Event | None, before_sleep: Callable[[RetryCallState], None]
    ) -> None:
        self._stop = stop
        self._before_sleep = before_sleep
        self._last: KrakenError | None = None

    def before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._last = exc if isinstance(exc, KrakenError) else None
        if self._stop is None or not self._stop.is_set():  # "trying again" would not be true
            self._before_sleep(state)

    def sleep(self, seconds: float) -> None:
        if not wait_unless_stopped(seconds, self._stop):
            raise StopRequested(self._last)


def transient_retrying(
    *,
    attempts: int,
    total_s: float,
    waits: bool,
    before_sleep: Callable[[RetryCallState], None],
    retry_on: tuple[type[KrakenError], ...] = (RetryLaterError, RateLimitedError),
    stop: threading.Event | None = None,
) -> tenacity.Retrying:
    """Retry the transient branch of the tree, bounded in attempts and total time. Each call
    needs its own (the sleep remembers the last failure); `stop` cuts waits short and then
    raises StopRequested instead of trying again."""
    sleeper = _StoppableSleep(stop, before_sleep)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(total_s),
        wait=backoff_wait if waits else _no_wait,
        before_sleep=sleeper.before_sleep,
        sleep=sleeper.sleep,
        reraise=True,
    )
