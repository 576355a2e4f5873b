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
"""

from __future__ import annotations

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


def transient_retrying(
    *,
    attempts: int,
    total_s: float,
    waits: bool,
    before_sleep: Callable[[RetryCallState], None],
    retry_on: tuple[type[KrakenError], ...] = (RetryLaterError, RateLimitedError),
) -> tenacity.Retrying:
    """Retry the transient branch of the tree, bounded in attempts and total time."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(total_s),
        wait=backoff_wait if waits else _no_wait,
        before_sleep=before_sleep,
        reraise=True,
    )


def sleep_for(seconds: float, *, waits: bool) -> None:
    """Sleep unless waits are switched off (tests)."""
    if waits and seconds > 0:
        time.sleep(seconds)
