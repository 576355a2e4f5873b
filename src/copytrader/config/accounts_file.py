"""Reading `config/accounts.toml` and the legacy `config/users/*.json` user lists.

Every mistake is a ConfigError naming the file, the entry and the field, so that the operator
can fix it without reading code. The readers refuse every value they cannot mean rather than
guess; one bad value stops the start with one line, never a copy later.

Bounds (a value outside them is refused):

    multiplier                 decimal, 0 < m <= 100              (default 1)
    max_order_fraction         decimal, 0 < f <= 1                (default: no cap)
    max_notional               decimal, 0 < n <= 1000000000       in equity_asset (default: no cap)
    fixed_notional             decimal, 0 < n <= 1000000000       in equity_asset
    connect_stagger_seconds    number, 0 <= s <= 60               (default 1)
    max_signal_age_seconds     number, 0.1 <= s <= 86400          (default 60)
    poll_interval_seconds      number, 0.05 <= s <= 300           (default: the feed's own)
    max_slippage_bps           decimal, 0 < b <= 10000            ([copy] default, per user; off)
    close_only                 true/false                         ([copy] default, per user)
    max_drawdown_pct           decimal, 0 < p <= 100              ([copy] default, per user; off)
    cancel_after_seconds       integer, 0 or 15 <= s <= 86399     ([copy] default, per user; 0 off)
    dead_man_on_stop           "disarm" | "leave"                 ([copy] only; default disarm)
    risk_check_seconds         number, 0.1 <= s <= 3600           ([copy] only; default 60)

Decimals are strings of ASCII digits with an optional point ("0.10"), at most 8 decimal places
and 24 characters, or TOML integers; TOML floats are binary and would silently change "0.1", so
a float there is refused with a hint. No exponents ("1e999999"), NaN, Infinity, underscores or
other scripts' digits ("١٢", "１２"). Seconds are finite TOML numbers.

Text: `id`/`user_id` are 1-64 lower-case ASCII letters, digits, `_` and `-` (so that the nonce
file named after it is unique); `env_name` is 1-64 upper-case ASCII letters, digits and `_`;
`name` is at most 100 characters. No text value may be empty, have spaces around it, or hold a
control character, line break or invisible character.

Files: at most 1 MiB each, UTF-8 (a byte-order mark is allowed). A legacy JSON file is an array
of objects, with no duplicate keys, no NaN/Infinity and no nesting deeper than Python's parser
can follow. At least one user must be configured and enabled: a daemon with nobody to copy to
is a mistake, not a configuration.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from copytrader.config.types import CopySettings, UserConfig
from copytrader.config.values import parse_decimal, refused_character, shown, text_problem
from copytrader.domain import RateTier, SizingMode
from copytrader.errors import ConfigError

# Matched with fullmatch: `$` would also accept a trailing line break.
USER_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ENV_NAME_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
ASSET_PATTERN = re.compile(r"[A-Z0-9.]{2,16}")

MULTIPLIER_MAX = Decimal(100)
SLIPPAGE_BPS_MAX = Decimal(10_000)
DRAWDOWN_PCT_MAX = Decimal(100)
# Kraken's CancelAllOrdersAfter takes 0-86399 s; below 15 s a slow re-arm would cancel
# everything during an ordinary hiccup.
CANCEL_AFTER_MIN_S = 15
CANCEL_AFTER_MAX_S = 86_399
DEAD_MAN_ON_STOP = ("disarm", "leave")
FRACTION_MAX = Decimal(1)
NOTIONAL_MAX = Decimal(1_000_000_000)
MAX_FILE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 100
MAX_WORD_CHARS = 64  # ids, env names, enum values, asset names
MAX_DESCRIPTION_CHARS = 10_000

COPY_KEYS = frozenset(
    {
        "sizing",
        "connect_stagger_seconds",
        "master_tier",
        "max_signal_age_seconds",
        "poll_interval_seconds",
        "dry_run",
        "round_up_to_minimum",
        "equity_asset",
        *("max_slippage_bps", "close_only", "max_drawdown_pct", "cancel_after_seconds"),
        *("dead_man_on_stop", "risk_check_seconds"),
    }
)
USER_KEYS = frozenset(
    {
        "id",
        "name",
        "env_name",
        "enabled",
        "multiplier",
        "max_order_fraction",
        "max_notional",
        "fixed_notional",
        "round_up_to_minimum",
        "tier",
        *("max_slippage_bps", "close_only", "max_drawdown_pct", "cancel_after_seconds"),
    }
)
TOP_KEYS = frozenset({"copy", "users"})
LEGACY_KEYS = frozenset(
    {"user_id", "name", "account_type", "broker_type", "enabled", "description", "copy_from_master"}
)


@dataclass(frozen=True)
class AccountsFile:
    copy: CopySettings
    users: tuple[UserConfig, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Where:
    source: str
    entry: str = ""

    def error(self, field: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, entry=self.entry, field=field)


def default_env_name(user_id: str) -> str:
    """`daivon_frazier` -> `DAIVON`: the part before the first `_`, upper-cased."""
    return user_id.split("_", 1)[0].upper().replace("-", "_")


def read_accounts_file(path: Path, display: str) -> AccountsFile:
    """Parse the TOML config and the legacy JSON files next to it (in `<dir>/users/`)."""
    where = _Where(display)
    text = _read_text(
        path, where, missing="config file not found (set COPYTRADER_CONFIG to its path)"
    )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise where.error("", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise where.error("", "not valid TOML: nested too deeply") from None

    _no_unknown_keys(raw, TOP_KEYS, where)
    copy_table = raw.get("copy", {})
    if not isinstance(copy_table, dict):
        raise where.error("copy", "must be a table: [copy]")
    copy = _copy_settings(copy_table, _Where(display, "[copy]"))

    users_raw = raw.get("users", [])
    if not isinstance(users_raw, list):
        raise where.error("users", "must be an array of tables: [[users]]")
    users = [
        _toml_user(entry, copy, _Where(display, f"users[{index}]"))
        for index, entry in enumerate(users_raw)
    ]
    _no_duplicate_ids(users)

    legacy = _legacy_users(path.parent / "users", display_dir=_sibling(display, "users"), copy=copy)
    _no_duplicate_ids(legacy)
    toml_ids = {user.id for user in users}
    notes = [
        f"{user.source} entry {user.entry} is also in {display}; the {display} entry is used"
        for user in legacy
        if user.id in toml_ids
    ]
    merged = tuple(users + [user for user in legacy if user.id not in toml_ids])
    _no_shared_env_names(merged)
    _someone_to_copy_to(merged, where)
    if copy.sizing is SizingMode.FIXED_NOTIONAL:
        for user in merged:
            if user.fixed_notional is None and user.enabled:
                raise ConfigError(
                    'sizing = "fixed_notional" needs fixed_notional for every enabled user',
                    source=user.source,
                    entry=user.entry,
                    field="fixed_notional",
                )
    return AccountsFile(copy=copy, users=merged, notes=tuple(notes))


def _read_text(path: Path, where: _Where, *, missing: str) -> str:
    """The file's text: a regular file of at most MAX_FILE_BYTES, UTF-8 (BOM allowed)."""
    try:
        if not path.is_file():
            if path.exists():
                raise where.error("", "not a regular file (a folder or a device?)")
            raise where.error("", missing)
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise where.error("", f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise where.error("", f"larger than {MAX_FILE_BYTES // 1024} KiB: not a configuration file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise where.error(
            "", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _someone_to_copy_to(users: tuple[UserConfig, ...], where: _Where) -> None:
    """Refuse a configuration in which no user is enabled: nothing would ever be copied."""
    if not users:
        raise where.error(
            "users",
            "no users are configured: add a [[users]] entry (id, name) for each account that "
            "copies the MASTER account",
        )
    if not any(user.enabled for user in users):
        ids = ", ".join(user.id for user in users[:5])
        more = f" and {len(users) - 5} more" if len(users) > 5 else ""
        raise where.error(
            "enabled",
            f"every user is disabled ({ids}{more}), so nothing would be copied: set "
            "enabled = true for at least one (COPYTRADER_KILL_SWITCH pauses copying instead)",
        )


def _sibling(display: str, name: str) -> str:
    parent = str(Path(display).parent)
    return name if parent in ("", ".") else f"{parent}/{name}"


def _copy_settings(table: Mapping[str, Any], where: _Where) -> CopySettings:
    _no_unknown_keys(table, COPY_KEYS, where)
    sizing_raw = _string(table, "sizing", where, default=SizingMode.EQUITY_RATIO.value)
    try:
        sizing = SizingMode(sizing_raw)
    except ValueError:
        choices = " | ".join(mode.value for mode in SizingMode)
        raise where.error("sizing", f"must be one of {choices}, not {sizing_raw!r}") from None
    poll = table.get("poll_interval_seconds")
    equity_asset = _string(table, "equity_asset", where, default="ZUSD")
    if not ASSET_PATTERN.fullmatch(equity_asset):
        raise where.error("equity_asset", f"not an asset name like ZUSD: {shown(equity_asset)}")
    return CopySettings(
        sizing=sizing,
        connect_stagger_seconds=_seconds(table, "connect_stagger_seconds", where, 1.0, 0.0, 60.0),
        master_tier=_tier(table, "master_tier", where),
        max_signal_age_seconds=_seconds(table, "max_signal_age_seconds", where, 60.0, 0.1, 86400.0),
        poll_interval_seconds=(
            None
            if poll is None
            else _seconds(table, "poll_interval_seconds", where, 1.0, 0.05, 300.0)
        ),
        dry_run=_bool(table, "dry_run", where, default=False),
        round_up_to_minimum=_bool(table, "round_up_to_minimum", where, default=False),
        equity_asset=equity_asset,
        max_slippage_bps=_decimal(table, "max_slippage_bps", where, high=SLIPPAGE_BPS_MAX),
        close_only=_bool(table, "close_only", where, default=False),
        max_drawdown_pct=_decimal(table, "max_drawdown_pct", where, high=DRAWDOWN_PCT_MAX),
        cancel_after_seconds=_cancel_after(table, where, default=0),
        dead_man_on_stop=_dead_man_on_stop(table, where),
        risk_check_seconds=_seconds(table, "risk_check_seconds", where, 60.0, 0.1, 3600.0),
    )


def _toml_user(entry: Any, copy: CopySettings, where: _Where) -> UserConfig:
    if not isinstance(entry, dict):
        raise where.error("", "each [[users]] entry must be a table")
    user_id = _user_id(entry, "id", where)
    where = _Where(where.source, f"{where.entry} ({user_id})")
    _no_unknown_keys(entry, USER_KEYS, where)
    env_name = _string(entry, "env_name", where, default=default_env_name(user_id))
    if not ENV_NAME_PATTERN.fullmatch(env_name):
        raise where.error(
            "env_name", f"use upper-case ASCII letters, digits and '_' (got {shown(env_name)})"
        )
    multiplier = _decimal(entry, "multiplier", where, high=MULTIPLIER_MAX)
    return UserConfig(
        id=user_id,
        name=_string(entry, "name", where, default=user_id, max_chars=MAX_NAME_CHARS),
        env_name=env_name,
        enabled=_bool(entry, "enabled", where, default=True),
        multiplier=Decimal(1) if multiplier is None else multiplier,
        max_order_fraction=_decimal(entry, "max_order_fraction", where, high=FRACTION_MAX),
        max_notional=_decimal(entry, "max_notional", where, high=NOTIONAL_MAX),
        fixed_notional=_decimal(entry, "fixed_notional", where, high=NOTIONAL_MAX),
        round_up_to_minimum=_bool(
            entry, "round_up_to_minimum", where, default=copy.round_up_to_minimum
        ),
        tier=_tier(entry, "tier", where),
        source=where.source,
        entry=where.entry,
        max_slippage_bps=_or_default(
            _decimal(entry, "max_slippage_bps", where, high=SLIPPAGE_BPS_MAX),
            copy.max_slippage_bps,
        ),
        close_only=_bool(entry, "close_only", where, default=copy.close_only),
        max_drawdown_pct=_or_default(
            _decimal(entry, "max_drawdown_pct", where, high=DRAWDOWN_PCT_MAX),
            copy.max_drawdown_pct,
        ),
        cancel_after_seconds=_cancel_after(entry, where, default=copy.cancel_after_seconds),
    )


def _or_default(value: Decimal | None, default: Decimal | None) -> Decimal | None:
    return default if value is None else value


def _cancel_after(table: Mapping[str, Any], where: _Where, *, default: int) -> int:
    """`cancel_after_seconds`: 0 (off) or a whole number of seconds Kraken accepts."""
    key = "cancel_after_seconds"
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(key, f"must be a whole number of seconds (got {shown(value)})")
    if value != 0 and not CANCEL_AFTER_MIN_S <= value <= CANCEL_AFTER_MAX_S:
        raise where.error(
            key,
            f"must be 0 (off) or between {CANCEL_AFTER_MIN_S} and {CANCEL_AFTER_MAX_S} seconds"
            f" (got {value})",
        )
    return value


def _dead_man_on_stop(table: Mapping[str, Any], where: _Where) -> str:
    value = _string(table, "dead_man_on_stop", where, default=DEAD_MAN_ON_STOP[0])
    if value not in DEAD_MAN_ON_STOP:
        raise where.error(
            "dead_man_on_stop", f"must be one of {' | '.join(DEAD_MAN_ON_STOP)} (got {value!r})"
        )
    return value


def _legacy_users(folder: Path, *, display_dir: str, copy: CopySettings) -> list[UserConfig]:
    """Kraken entries of the old `config/users/*.json` lists; other brokers are ignored."""
    users: list[UserConfig] = []
    if not folder.is_dir():
        return users
    for path in sorted(folder.glob("*.json")):
        if refused_character(path.name) is not None:
            raise _Where(display_dir).error(
                "", f"the file name {path.name!r} holds a control character: rename the file"
            )
        display = f"{display_dir}/{path.name}"
        file_where = _Where(display)
        entries = _parse_json(_read_text(path, file_where, missing="file not found"), file_where)
        if not isinstance(entries, list):
            raise file_where.error(
                "", f"must be a JSON array of user objects (got {_json_kind(entries)})"
            )
        for index, entry in enumerate(entries):
            where = _Where(display, f"[{index}]")
            if not isinstance(entry, dict):
                raise where.error("", f"each entry must be a JSON object (got {_json_kind(entry)})")
            broker = _string(entry, "broker_type", where)
            if broker.lower() != "kraken":
                continue
            users.append(_legacy_user(entry, copy, where))
    return users


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, value in pairs:
        if key in table:
            raise _DuplicateKeyError(f"the key {shown(key)} appears twice in one object")
        table[key] = value
    return table


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(text: str, where: _Where) -> Any:
    """JSON as the standard defines it: no NaN/Infinity, no duplicate keys; nesting too deep
    for Python's parser is an error here, not a crash."""
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise where.error("", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise where.error("", "not valid JSON for a user list: nested too deeply") from None
    except ValueError as exc:  # the hooks above, or an integer too long to convert
        raise where.error("", f"not valid JSON: {exc}") from None


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return "a number"


def _legacy_user(entry: Mapping[str, Any], copy: CopySettings, where: _Where) -> UserConfig:
    user_id = _user_id(entry, "user_id", where)
    where = _Where(where.source, f"{where.entry} ({user_id})")
    _no_unknown_keys(entry, LEGACY_KEYS, where)
    _string(entry, "account_type", where, default="retail")
    description = entry.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise where.error(
            "description", f"must be a string of at most {MAX_DESCRIPTION_CHARS} characters"
        )
    enabled = _bool(entry, "enabled", where, default=True) and _bool(
        entry, "copy_from_master", where, default=True
    )
    return UserConfig(
        id=user_id,
        name=_string(entry, "name", where, default=user_id, max_chars=MAX_NAME_CHARS),
        env_name=default_env_name(user_id),
        enabled=enabled,
        multiplier=Decimal(1),
        max_order_fraction=None,
        max_notional=None,
        fixed_notional=None,
        round_up_to_minimum=copy.round_up_to_minimum,
        tier=RateTier.STARTER,
        source=where.source,
        entry=where.entry,
        max_slippage_bps=copy.max_slippage_bps,
        close_only=copy.close_only,
        max_drawdown_pct=copy.max_drawdown_pct,
        cancel_after_seconds=copy.cancel_after_seconds,
    )


def _no_unknown_keys(table: Mapping[str, Any], known: frozenset[str], where: _Where) -> None:
    for key in table:
        if key not in known:
            raise where.error(key, f"unknown key (known keys: {', '.join(sorted(known))})")


def _no_duplicate_ids(users: list[UserConfig]) -> None:
    seen: dict[str, UserConfig] = {}
    for user in users:
        if user.id in seen:
            first = seen[user.id]
            raise ConfigError(
                f"duplicate user id {user.id!r} "
                f"(first defined at {first.source} entry {first.entry})",
                source=user.source,
                entry=user.entry,
                field="id",
            )
        seen[user.id] = user


def _no_shared_env_names(users: tuple[UserConfig, ...]) -> None:
    seen: dict[str, UserConfig] = {}
    for user in users:
        if user.env_name in seen:
            first = seen[user.env_name]
            raise ConfigError(
                f"env_name {user.env_name!r} is also used by {first.entry} in {first.source}; two "
                f"users cannot share KRAKEN_USER_{user.env_name}_API_KEY: give one of them its "
                "own env_name",
                source=user.source,
                entry=user.entry,
                field="env_name",
            )
        seen[user.env_name] = user


def _user_id(table: Mapping[str, Any], key: str, where: _Where) -> str:
    user_id = _string(table, key, where)
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise where.error(
            key, f"use 1-64 lower-case ASCII letters, digits, '_' and '-' (got {shown(user_id)})"
        )
    return user_id


def _string(
    table: Mapping[str, Any],
    key: str,
    where: _Where,
    default: str | None = None,
    *,
    max_chars: int = MAX_WORD_CHARS,
) -> str:
    value = table.get(key)
    if value is None:
        if default is None:
            raise where.error(key, "is required")
        return default
    if not isinstance(value, str):
        raise where.error(key, f"must be a string (got {shown(value)})")
    problem = text_problem(value, max_chars=max_chars)
    if problem is not None:
        raise where.error(key, problem)
    return value


def _bool(table: Mapping[str, Any], key: str, where: _Where, *, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise where.error(key, f"must be true or false (got {shown(value)})")
    return value


def _decimal(table: Mapping[str, Any], key: str, where: _Where, *, high: Decimal) -> Decimal | None:
    """The optional decimal `key`, more than 0 and at most `high`; None when absent."""
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise where.error(key, f"must be a decimal string (got {value!r})")
        raise where.error(key, f'write decimals as strings, e.g. {key} = "{value}"')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise where.error(key, f"must be a decimal string (got {shown(value)})")
    if isinstance(value, int):
        number = Decimal(value)
    else:
        if value != value.strip():
            raise where.error(key, f"has spaces around it: write {value.strip()!r}")
        try:
            number = parse_decimal(value)
        except ValueError as exc:
            raise where.error(key, f"{exc} (got {shown(value)})") from None
    if number <= 0:
        raise where.error(key, f"must be a positive number (got {shown(value)})")
    if number > high:
        raise where.error(key, f"must be at most {high} (got {shown(value)})")
    return number


def _seconds(
    table: Mapping[str, Any],
    key: str,
    where: _Where,
    default: float,
    low: float,
    high: float,
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(key, f"must be a number of seconds (got {shown(value)})")
    if not low <= float(value) <= high:  # also refuses nan and inf
        raise where.error(key, f"must be between {low:g} and {high:g} seconds (got {value!r})")
    return float(value)


def _tier(table: Mapping[str, Any], key: str, where: _Where) -> RateTier:
    raw = _string(table, key, where, default=RateTier.STARTER.value)
    try:
        return RateTier(raw.lower())
    except ValueError:
        choices = " | ".join(tier.value for tier in RateTier)
        raise where.error(key, f"must be one of {choices} (got {raw!r})") from None
