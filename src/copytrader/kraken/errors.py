"""The one table that turns Kraken's error strings (and transport failures) into our exceptions.

The classes are the tree in `copytrader.errors`, split by what the caller must do. A string is
matched when it equals a table entry or continues it with ':' (Kraken appends details, e.g.
`EGeneral:Invalid arguments:volume`); spaces after ':' are ignored (`EService: Throttled: 1700…`).
An unknown string becomes the base `KrakenError`; warnings (`W…`) are not errors.

Transport failures depend on the call: a read that timed out can simply be retried
(`RetryLaterError`), but a write (AddOrder, CancelOrder) whose reply never came may have happened
(`OutcomeUnknownError`), unless the connection was never made.
"""

from __future__ import annotations

import re

import requests

from copytrader.errors import (
    AccountUnusableError,
    BadReplyError,
    KrakenError,
    NonceRejectedError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryLaterError,
)
from copytrader.kraken.http import failure_of

INVALID_NONCE = "EAPI:Invalid nonce"
ORDER_RATE_LIMIT = "EOrder:Rate limit exceeded"
THROTTLED = "EService:Throttled"
TEMPORARY_LOCKOUT = "EGeneral:Temporary lockout"
DUPLICATE_CL_ORD_ID = "EOrder:Duplicate cl_ord_id"
SERVICE_UNAVAILABLE = "EService:Unavailable"
SERVICE_BUSY = "EService:Busy"

ERROR_TABLE: dict[str, type[KrakenError]] = {
    # retry later: Kraken did not do it, and may well do it in a moment
    SERVICE_UNAVAILABLE: RetryLaterError,
    SERVICE_BUSY: RetryLaterError,
    "EService:Deadline elapsed": RetryLaterError,
    "EService:Market in cancel_only mode": RetryLaterError,
    "EService:Market in post_only mode": RetryLaterError,
    "EService:Market in limit_only mode": RetryLaterError,
    "EGeneral:Internal error": RetryLaterError,
    "EDatabase:Internal error": RetryLaterError,
    "EDatabase": RetryLaterError,
    # nonce
    INVALID_NONCE: NonceRejectedError,
    # rate limited
    "EAPI:Rate limit exceeded": RateLimitedError,
    ORDER_RATE_LIMIT: RateLimitedError,
    THROTTLED: RateLimitedError,
    "EGeneral:Too many requests": RateLimitedError,
    # stop using this account
    "EAPI:Invalid key": AccountUnusableError,
    "EAPI:Invalid signature": AccountUnusableError,
    "EGeneral:Permission denied": AccountUnusableError,
    TEMPORARY_LOCKOUT: AccountUnusableError,
    "EAuth:Failed": AccountUnusableError,
    "ETrade:User Locked": AccountUnusableError,
    # order rejected (and other bad arguments): skip it, sending again changes nothing
    "EOrder:Insufficient funds": OrderRejectedError,
    "EOrder:Order minimum not met": OrderRejectedError,
    "EOrder:Cost minimum not met": OrderRejectedError,
    "EOrder:Tick size check failed": OrderRejectedError,
    "EOrder:Invalid order": OrderRejectedError,
    "EOrder:Invalid price": OrderRejectedError,
    "EOrder:Unknown order": OrderRejectedError,
    "EOrder:Orders limit exceeded": OrderRejectedError,
    DUPLICATE_CL_ORD_ID: OrderRejectedError,
    "EOrder:Positions limit exceeded": OrderRejectedError,
    "EOrder:Margin allowance exceeded": OrderRejectedError,
    "EOrder:Insufficient margin": OrderRejectedError,
    "EOrder:Cannot open position": OrderRejectedError,
    "EOrder:Cannot open opposing position": OrderRejectedError,
    "EOrder:Unknown position": OrderRejectedError,
    "EOrder:Trading agreement required": OrderRejectedError,
    "EGeneral:Invalid arguments": OrderRejectedError,
    "EQuery:Unknown asset pair": OrderRejectedError,
    "EQuery:Unknown asset": OrderRejectedError,
    "EQuery:Invalid asset pair": OrderRejectedError,
}
# When one reply carries several strings, the one that asks the most of the caller wins.
_PRECEDENCE: tuple[type[KrakenError], ...] = (
    AccountUnusableError,
    NonceRejectedError,
    RateLimitedError,
    OrderRejectedError,
    RetryLaterError,
)
_SPACE_AFTER_COLON = re.compile(r":\s+")
_THROTTLED_UNTIL = re.compile(r"^EService:\s*Throttled:\s*(\d+(?:\.\d+)?)")


def _normalize(error: str) -> str:
    return _SPACE_AFTER_COLON.sub(":", error.strip())


_NORMALIZED_TABLE = {_normalize(text): cls for text, cls in ERROR_TABLE.items()}


def class_for(error: str) -> type[KrakenError]:
    """The exception class of one Kraken error string (the base class when unknown)."""
    parts = _normalize(error).split(":")
    # Longest known prefix wins: "EDatabase:Internal error" before "EDatabase".
    for end in range(len(parts), 0, -1):
        cls = _NORMALIZED_TABLE.get(":".join(parts[:end]))
        if cls is not None:
            return cls
    return KrakenError


def is_error(text: str) -> bool:
    """Kraken puts warnings (`W…`) in the same list; only `E…` strings are errors."""
    return not text.startswith("W")


def error_from_strings(
    errors: list[str] | tuple[str, ...], *, account: str, method: str, pair: str = ""
) -> KrakenError:
    """The exception for a Kraken reply whose `error` list is not empty."""
    strings = tuple(str(e) for e in errors if is_error(str(e)))
    classes = [class_for(e) for e in strings]
    chosen: type[KrakenError] = KrakenError
    for cls in _PRECEDENCE:
        if cls in classes:
            chosen = cls
            break
    message = f"{method}: {', '.join(strings)}"
    if chosen is RateLimitedError:
        order_limit = any(_normalize(e).startswith(ORDER_RATE_LIMIT) for e in strings)
        return RateLimitedError(
            message, account=account, errors=strings, pair=pair if order_limit else ""
        )
    return chosen(message, account=account, errors=strings)


def throttled_until(error: KrakenError) -> float | None:
    """The unix time Kraken named in `EService: Throttled: <ts>`, if this is that error."""
    for text in error.errors:
        match = _THROTTLED_UNTIL.match(text)
        if match:
            return float(match.group(1))
    return None


def has_error(error: KrakenError, prefix: str) -> bool:
    """Whether one of the error's strings is `prefix` or continues it with ':'."""
    target = _normalize(prefix)
    return any(
        _normalize(e) == target or _normalize(e).startswith(target + ":") for e in error.errors
    )


def error_from_transport(
    exc: Exception,
    *,
    account: str,
    method: str,
    is_write: bool,
    timeout_s: float,
) -> KrakenError:
    """The exception for a call that got no usable reply: a requests/urllib3 failure (see
    `http.failure_of`) or a ValueError for a body that is not JSON."""
    if isinstance(exc, requests.JSONDecodeError) or (
        isinstance(exc, ValueError) and not isinstance(exc, requests.RequestException)
    ):
        message = f"{method}: reply was not JSON"
        if is_write:
            return OutcomeUnknownError(
                message + "; it may or may not have happened", account=account
            )
        return BadReplyError(message, account=account)
    failure = failure_of(exc)
    text = f"no reply within {timeout_s:g} s" if failure.timed_out else failure.text
    message = f"{method}: {text}"
    if failure.status is not None:
        if failure.status == 429:
            return RateLimitedError(message, account=account)
        if failure.status < 500 and failure.status != 408:
            return KrakenError(message, account=account)
    if failure.not_sent:
        return RetryLaterError(message + "; not sent", account=account)
    if is_write:
        return OutcomeUnknownError(message + "; it may or may not have happened", account=account)
    return RetryLaterError(message, account=account)
