"""Reading `config/accounts.toml` and the legacy `config/users/*.json` user lists.

Every mistake is a ConfigError naming the file, the entry and the field, so that the operator
can fix it without reading code. Money values are decimal strings (TOML floats are binary and
would silently change "0.1"), so a float there is refused with a hint.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from copytrader.config.types import CopySettings, UserConfig
from copytrader.domain import RateTier, SizingMode
from copytrader.errors import ConfigError

USER_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
ASSET_PATTERN = re.compile(r"^[A-Z0-9.]{2,16}$")

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
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise where.error("", "config file not found (set COPYTRADER_CONFIG to its path)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise where.error("", f"cannot read the config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise where.error("", f"not valid TOML: {exc}") from None

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
    if not ASSET_PATTERN.match(equity_asset):
        raise where.error("equity_asset", f"not an asset name like ZUSD: {equity_asset!r}")
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
    )


def _toml_user(entry: Any, copy: CopySettings, where: _Where) -> UserConfig:
    if not isinstance(entry, dict):
        raise where.error("", "each [[users]] entry must be a table")
    user_id = _string(entry, "id", where)
    if not USER_ID_PATTERN.match(user_id):
        raise where.error("id", f"use lower-case letters, digits, '_' and '-' (got {user_id!r})")
    where = _Where(where.source, f"{where.entry} ({user_id})")
    _no_unknown_keys(entry, USER_KEYS, where)
    env_name = _string(entry, "env_name", where, default=default_env_name(user_id))
    if not ENV_NAME_PATTERN.match(env_name):
        raise where.error("env_name", f"use upper-case letters, digits and '_' (got {env_name!r})")
    multiplier = _decimal(entry, "multiplier", where, default=Decimal(1))
    assert multiplier is not None  # a default was given
    fraction = _decimal(entry, "max_order_fraction", where)
    if fraction is not None and fraction > 1:
        raise where.error("max_order_fraction", f"must be at most 1 (got {fraction})")
    return UserConfig(
        id=user_id,
        name=_string(entry, "name", where, default=user_id),
        env_name=env_name,
        enabled=_bool(entry, "enabled", where, default=True),
        multiplier=multiplier,
        max_order_fraction=fraction,
        max_notional=_decimal(entry, "max_notional", where),
        fixed_notional=_decimal(entry, "fixed_notional", where),
        round_up_to_minimum=_bool(
            entry, "round_up_to_minimum", where, default=copy.round_up_to_minimum
        ),
        tier=_tier(entry, "tier", where),
        source=where.source,
        entry=where.entry,
    )


def _legacy_users(folder: Path, *, display_dir: str, copy: CopySettings) -> list[UserConfig]:
    """Kraken entries of the old `config/users/*.json` lists; other brokers are ignored."""
    users: list[UserConfig] = []
    if not folder.is_dir():
        return users
    for path in sorted(folder.glob("*.json")):
        display = f"{display_dir}/{path.name}"
        file_where = _Where(display)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise file_where.error("", f"cannot read the file: {exc}") from None
        except json.JSONDecodeError as exc:
            raise file_where.error("", f"not valid JSON: {exc}") from None
        if not isinstance(entries, list):
            raise file_where.error("", "must be a JSON array of user objects")
        for index, entry in enumerate(entries):
            where = _Where(display, f"[{index}]")
            if not isinstance(entry, dict):
                raise where.error("", "each entry must be a JSON object")
            broker = _string(entry, "broker_type", where)
            if broker.lower() != "kraken":
                continue
            users.append(_legacy_user(entry, copy, where))
    return users


def _legacy_user(entry: Mapping[str, Any], copy: CopySettings, where: _Where) -> UserConfig:
    user_id = _string(entry, "user_id", where)
    if not USER_ID_PATTERN.match(user_id):
        raise where.error(
            "user_id", f"use lower-case letters, digits, '_' and '-' (got {user_id!r})"
        )
    where = _Where(where.source, f"{where.entry} ({user_id})")
    _no_unknown_keys(entry, LEGACY_KEYS, where)
    _string(entry, "account_type", where, default="retail")
    _string(entry, "description", where, default="")
    enabled = _bool(entry, "enabled", where, default=True) and _bool(
        entry, "copy_from_master", where, default=True
    )
    return UserConfig(
        id=user_id,
        name=_string(entry, "name", where, default=user_id),
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


def _string(table: Mapping[str, Any], key: str, where: _Where, default: str | None = None) -> str:
    value = table.get(key)
    if value is None:
        if default is None:
            raise where.error(key, "is required")
        return default
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, f"must be a non-empty string (got {value!r})")
    return value.strip()


def _bool(table: Mapping[str, Any], key: str, where: _Where, *, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise where.error(key, f"must be true or false (got {value!r})")
    return value


def _decimal(
    table: Mapping[str, Any], key: str, where: _Where, default: Decimal | None = None
) -> Decimal | None:
    value = table.get(key)
    if value is None:
        return default
    if isinstance(value, float):
        raise where.error(key, f'write decimals as strings, e.g. {key} = "{value}"')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise where.error(key, f"must be a decimal string (got {value!r})")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise where.error(key, f"not a decimal number: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise where.error(key, f"must be a positive number (got {value!r})")
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
        raise where.error(key, f"must be a number of seconds (got {value!r})")
    if not low <= float(value) <= high:
        raise where.error(key, f"must be between {low:g} and {high:g} seconds (got {value!r})")
    return float(value)


def _tier(table: Mapping[str, Any], key: str, where: _Where) -> RateTier:
    raw = _string(table, key, where, default=RateTier.STARTER.value)
    try:
        return RateTier(raw.lower())
    except ValueError:
        choices = " | ".join(tier.value for tier in RateTier)
        raise where.error(key, f"must be one of {choices} (got {raw!r})") from None
