"""The daemon's one exception tree, split by what the caller must do.

    CopytraderError
    ├── ConfigError            bad config file, environment or secret: fix it and restart
    ├── DataDirLockedError     another `copytrader run` holds the data folder
    ├── DiskFullError          the data folder's disk is full: nothing was written, nor sent
    └── KrakenError            what Kraken (or the way to it) answered; `.errors` has the strings
        ├── TransientError         may pass: tried again, a bounded and counted number of times
        │   ├── RetryLaterError        service unavailable/busy, internal error, network trouble
        │   │   └── BadReplyError          a reply that cannot be read (not JSON, a number that
        │   │                              is not finite, negative or absurd): never stored
        │   ├── NonceRejectedError     EAPI:Invalid nonce: not executed, resend with a jumped nonce
        │   ├── RateLimitedError       REST counter or a pair's matching-engine counter is full
        │   └── OutcomeUnknownError    a write whose reply never came: look it up before resending
        ├── AccountUnusableError   invalid key/signature, permission denied, lockout: stop
        └── OrderRejectedError     insufficient funds, minimums, invalid arguments, unknown order

Only `TransientError` is ever retried. Anything else, including a bug (a `KeyError`, say), fails
the one call or copy it happened in, loudly, and nothing else. `DiskFullError` is the one
condition of the whole process rather than of a call: the work waits until space returns
(reported once when it starts and once when it ends), and no copy is charged an attempt for it.

Kraken's error strings are turned into these classes in exactly one table, in
`copytrader.kraken.errors`. Messages name the account and never contain a secret.
"""

from __future__ import annotations


class CopytraderError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(CopytraderError):
    """Bad configuration, environment or secret. Names the file, the entry and the field."""

    def __init__(self, message: str, *, source: str = "", entry: str = "", field: str = "") -> None:
        self.source = source
        self.entry = entry
        self.field = field
        where = ", ".join(
            part
            for part in (
                source,
                f"entry {entry}" if entry else "",
                f"field {field!r}" if field else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class DataDirLockedError(CopytraderError):
    """Another daemon already runs on this data folder."""


class DiskFullError(CopytraderError):
    """The data folder's disk is full (SQLite's "database or disk is full", ENOSPC): the write
    did not happen, so nothing that depends on it (a nonce, a copy's state) was used or sent."""


class KrakenError(CopytraderError):
    """Kraken answered with an error (or could not be reached). Unknown strings land here."""

    def __init__(self, message: str, *, account: str = "", errors: tuple[str, ...] = ()) -> None:
        self.account = account
        self.errors = errors
        prefix = f"[{account}] " if account else ""
        super().__init__(f"{prefix}{message}")


class TransientError(KrakenError):
    """May pass if tried again later; the only kind of error that is ever retried."""


class RetryLaterError(TransientError):
    """Service unavailable or busy, internal error, a read that timed out or failed on the way."""


class BadReplyError(RetryLaterError):
    """A reply that cannot be read: not JSON, or a number that is not a finite, sane decimal.
    Never stored, never turned into a decision; the read is tried again."""


class NonceRejectedError(TransientError):
    """EAPI:Invalid nonce. The request was not executed; resend with a higher nonce."""


class RateLimitedError(TransientError):
    """A rate counter is full. `pair` is set when only one pair's engine counter is."""

    def __init__(
        self, message: str, *, account: str = "", errors: tuple[str, ...] = (), pair: str = ""
    ) -> None:
        self.pair = pair
        super().__init__(message, account=account, errors=errors)


class AccountUnusableError(KrakenError):
    """Invalid key or signature, permission denied, lockout: stop using this account."""


class OrderRejectedError(KrakenError):
    """Kraken refused this order (funds, minimums, arguments, unknown order): skip it."""


class OutcomeUnknownError(TransientError):
    """A write (AddOrder, CancelOrder) whose reply never came: it may or may not have happened."""
