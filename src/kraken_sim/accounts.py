"""The simulator's accounts file (DESIGN.md §3): accounts, their API keys, starting prices.

Every mistake is reported with the file, the entry and the field, so an operator can fix it
without guessing. Secrets are decoded here once and never appear in a repr or a message.
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from kraken_sim.books import BookSettings, BookSpecError, parse_book_settings
from kraken_sim.markets import find_pair

TIERS = ("starter", "intermediate", "pro")

# Kraken's key permissions the simulator knows (names as in DESIGN.md §3). `withdraw` (Kraken's
# "Funds: Withdraw") guards no method the simulator serves; GetApiKeyInfo reports it, so a tool
# can warn about a trading key that may move funds out.
PERMISSIONS = (
    "query_funds", "query_orders", "create_orders", "cancel_orders", "websocket", "withdraw"
)  # fmt: skip
# A key without a `permissions` list gets every trading permission, but not `withdraw`: a key
# that may withdraw is something an accounts file says in so many words.
DEFAULT_PERMISSIONS = tuple(name for name in PERMISSIONS if name != "withdraw")

# Repeated invalid key/signature/nonce -> EGeneral:Temporary lockout. Kraken documents "a few
# minutes" (older text: about 15); these defaults keep a test's lockout short but visible.
DEFAULT_LOCKOUT_FAILURES = 5
DEFAULT_LOCKOUT_WINDOW_S = 60.0
DEFAULT_LOCKOUT_DURATION_S = 180.0

_ACCOUNT_FIELDS = {
    "name",
    "key",
    "secret",
    "tier",
    "nonce_window",
    "permissions",
    "balances",
    "keys",
}
_KEY_FIELDS = {"key", "secret", "nonce_window", "permissions"}
_LOCKOUT_FIELDS = {"failures", "within_seconds", "duration_seconds"}
_TOP_LEVEL = {"accounts", "prices", "lockout", "books"}


class AccountsFileError(ValueError):
    """The accounts file is missing or wrong; the message names file, entry and field."""


@dataclass(frozen=True)
class ApiKeySpec:
    """One API key of an account: its own secret, nonce window and permissions."""

    key: str
    account: str
    secret: bytes = field(repr=False)
    nonce_window: int
    permissions: frozenset[str]


@dataclass(frozen=True)
class AccountSpec:
    """One simulated account: money, rate-limit tier and one or more API keys."""

    name: str
    tier: str
    balances: Mapping[str, Decimal]
    keys: tuple[ApiKeySpec, ...]


@dataclass(frozen=True)
class LockoutPolicy:
    """How many auth failures within how long lock a key (or a source) out, and for how long."""

    failures: int = DEFAULT_LOCKOUT_FAILURES
    within_seconds: float = DEFAULT_LOCKOUT_WINDOW_S
    duration_seconds: float = DEFAULT_LOCKOUT_DURATION_S


@dataclass(frozen=True)
class SimSetup:
    """Everything the accounts file says."""

    accounts: tuple[AccountSpec, ...]
    prices: Mapping[str, Decimal]
    lockout: LockoutPolicy
    books: BookSettings = field(default_factory=BookSettings)


def load_accounts_file(path: Path) -> SimSetup:
    """Read and validate the accounts TOML file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccountsFileError(f"{path}: file not found") from None
    except OSError as exc:
        raise AccountsFileError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AccountsFileError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsFileError(f"{path}: not valid TOML: {exc}") from None
    return parse_accounts(raw, source=str(path))


def parse_accounts(raw: Mapping[str, Any], *, source: str) -> SimSetup:
    """Validate an already-parsed accounts document; `source` names it in error messages."""
    _reject_unknown(raw, _TOP_LEVEL, source, "top level")
    entries = raw.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise AccountsFileError(f"{source}: needs at least one [[accounts]] entry")
    accounts: list[AccountSpec] = []
    seen_names: set[str] = set()
    seen_keys: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{source}: accounts[{index}]"
        if not isinstance(entry, dict):
            raise AccountsFileError(f"{where}: must be a table")
        account = _parse_account(entry, where)
        if account.name in seen_names:
            raise AccountsFileError(f"{where}: field 'name': duplicate account {account.name!r}")
        seen_names.add(account.name)
        for spec in account.keys:
            if spec.key in seen_keys:
                raise AccountsFileError(
                    f"{where} ({account.name!r}): field 'key': the same API key is used twice"
                )
            seen_keys.add(spec.key)
        accounts.append(account)
    prices = _parse_decimals(raw.get("prices", {}), f"{source}: [prices]", positive=True)
    lockout = _parse_lockout(raw.get("lockout", {}), f"{source}: [lockout]")
    books = BookSettings()
    if "books" in raw:
        try:
            books = parse_book_settings(raw["books"], _pair_id)
        except BookSpecError as exc:
            raise AccountsFileError(f"{source}: [books]: {exc}") from None
    return SimSetup(accounts=tuple(accounts), prices=prices, lockout=lockout, books=books)


def _pair_id(name: str) -> str | None:
    pair = find_pair(name)
    return pair.id if pair is not None else None


def _parse_account(entry: Mapping[str, Any], where: str) -> AccountSpec:
    name = _required_text(entry, "name", where)
    where = f"{where} ({name!r})"
    _reject_unknown(entry, _ACCOUNT_FIELDS, where, "account")
    tier = entry.get("tier", "starter")
    if tier not in TIERS:
        raise AccountsFileError(f"{where}: field 'tier': must be one of {', '.join(TIERS)}")
    balances = _parse_decimals(entry.get("balances", {}), f"{where}: field 'balances'")
    if any(amount < 0 for amount in balances.values()):
        raise AccountsFileError(f"{where}: field 'balances': amounts cannot be negative")
    keys = [_parse_key(entry, name, where)]
    extra = entry.get("keys", [])
    if not isinstance(extra, list):
        raise AccountsFileError(f"{where}: field 'keys': must be [[accounts.keys]] tables")
    for index, key_entry in enumerate(extra):
        key_where = f"{where}: keys[{index}]"
        if not isinstance(key_entry, dict):
            raise AccountsFileError(f"{key_where}: must be a table")
        _reject_unknown(key_entry, _KEY_FIELDS, key_where, "key")
        keys.append(_parse_key(key_entry, name, key_where))
    return AccountSpec(name=name, tier=tier, balances=balances, keys=tuple(keys))


def _parse_key(entry: Mapping[str, Any], account: str, where: str) -> ApiKeySpec:
    key = _required_text(entry, "key", where)
    secret_text = _required_text(entry, "secret", where)
    try:
        secret = base64.b64decode(secret_text, validate=True)
    except (binascii.Error, ValueError):
        raise AccountsFileError(f"{where}: field 'secret': not valid base64") from None
    if not secret:
        raise AccountsFileError(f"{where}: field 'secret': decodes to nothing")
    window = entry.get("nonce_window", 0)
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise AccountsFileError(f"{where}: field 'nonce_window': must be an integer >= 0")
    permissions = entry.get("permissions", list(DEFAULT_PERMISSIONS))
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise AccountsFileError(f"{where}: field 'permissions': must be a list of names")
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        raise AccountsFileError(
            f"{where}: field 'permissions': unknown {', '.join(unknown)} "
            f"(known: {', '.join(PERMISSIONS)})"
        )
    return ApiKeySpec(
        key=key,
        account=account,
        secret=secret,
        nonce_window=window,
        permissions=frozenset(permissions),
    )


def _parse_lockout(raw: Any, where: str) -> LockoutPolicy:
    if not isinstance(raw, dict):
        raise AccountsFileError(f"{where}: must be a table")
    _reject_unknown(raw, _LOCKOUT_FIELDS, where, "lockout")
    failures = raw.get("failures", DEFAULT_LOCKOUT_FAILURES)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise AccountsFileError(f"{where}: field 'failures': must be an integer >= 1")
    within = _seconds(raw, "within_seconds", DEFAULT_LOCKOUT_WINDOW_S, where)
    duration = _seconds(raw, "duration_seconds", DEFAULT_LOCKOUT_DURATION_S, where)
    return LockoutPolicy(failures=failures, within_seconds=within, duration_seconds=duration)


def _seconds(raw: Mapping[str, Any], name: str, default: float, where: str) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise AccountsFileError(f"{where}: field '{name}': must be a number of seconds >= 0")
    return float(value)


def _parse_decimals(raw: Any, where: str, *, positive: bool = False) -> dict[str, Decimal]:
    if not isinstance(raw, dict):
        raise AccountsFileError(f'{where}: must be a table of name = "decimal"')
    parsed: dict[str, Decimal] = {}
    for name, value in raw.items():
        # Floats are refused: TOML floats are binary and would change the amount.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise AccountsFileError(f'{where}: {name!r}: write the amount as a string, e.g. "1.5"')
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise AccountsFileError(f"{where}: {name!r}: not a decimal number") from None
        if not amount.is_finite():
            raise AccountsFileError(f"{where}: {name!r}: must be a finite number")
        if positive and amount <= 0:
            raise AccountsFileError(f"{where}: {name!r}: must be greater than 0")
        parsed[str(name)] = amount
    return parsed


def _required_text(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise AccountsFileError(f"{where}: field '{name}': required, a non-empty string")
    return value


def _reject_unknown(entry: Mapping[str, Any], known: set[str], where: str, what: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise AccountsFileError(f"{where}: unknown {what} field(s): {', '.join(unknown)}")
