"""Configuration: `config/accounts.toml` plus the environment, parsed once into frozen objects.

This is the only module that reads `os.environ`. A `.env` file in the working directory fills
in variables that are not set (python-dotenv's `dotenv_values`; a real variable always wins).

Missing credentials are not an error: the account gets `missing_vars` and is skipped with a
message naming them. Credentials that are set but unusable (spaces around them, a control or
non-ASCII character, a secret that is not base64) make only that account fail
(`credentials_error`), never the others; the message names the variable, never its value.
Mistakes in the config file or in global variables raise ConfigError naming the file, entry and
field.

Every other variable read here is refused when it holds a control character, a line break or
an invisible character (see `values.refused_character`); spaces around a value are trimmed.
`KRAKEN_API_URL` must be an ASCII http(s) URL with no user name, password, query or fragment,
and a port (if any) of ASCII digits from 1 to 65535. A `.env` file must be UTF-8 and at most
1 MiB.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from copytrader.config.accounts_file import default_env_name, read_accounts_file
from copytrader.config.credentials import ApiCredentials, SecretStr
from copytrader.config.types import (
    MASTER_ID,
    AccountSpec,
    CopySettings,
    LocalSettings,
    Settings,
    StatusSettings,
    UserConfig,
)
from copytrader.config.values import refused_character, shown
from copytrader.domain import SizingMode
from copytrader.errors import ConfigError
from copytrader.logs import FORMATS, LEVELS, register_secret

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_CONFIG_PATH",
    "AccountSpec",
    "CopySettings",
    "LocalSettings",
    "Settings",
    "SizingMode",
    "StatusSettings",
    "UserConfig",
    "child_process_environment",
    "default_env_name",
    "load_local_settings",
    "load_settings",
    "user_key_vars",
]

DEFAULT_API_URL = "https://api.kraken.com"
DEFAULT_CONFIG_PATH = "config/accounts.toml"
MASTER_KEY_VAR = "KRAKEN_MASTER_API_KEY"
MASTER_SECRET_VAR = "KRAKEN_MASTER_API_SECRET"  # noqa: S105 - a variable's name, not a secret
LEGACY_KEY_VAR = "KRAKEN_API_KEY"
LEGACY_SECRET_VAR = "KRAKEN_API_SECRET"  # noqa: S105 - a variable's name, not a secret
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
MAX_VALUE_CHARS = 4096  # a path or URL longer than this is not one an operator typed
MAX_DOTENV_BYTES = 1024 * 1024


def child_process_environment(*, drop_prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """A copy of this process's real environment, for starting a child process (the simulator,
    paper mode's daemon), without the variables whose names start with `drop_prefixes`.

    Not a way to read settings (that is `load_settings`): the values are passed on untouched.
    """
    return {name: value for name, value in os.environ.items() if not name.startswith(drop_prefixes)}


def user_key_vars(env_name: str) -> tuple[str, str]:
    """The two variables holding a USER's credentials: KRAKEN_USER_<NAME>_API_KEY / _SECRET."""
    return f"KRAKEN_USER_{env_name}_API_KEY", f"KRAKEN_USER_{env_name}_API_SECRET"


@dataclass(frozen=True)
class _Environment:
    """The merged variables, remembering which ones came from the .env file (for messages)."""

    values: Mapping[str, str]
    from_dotenv: frozenset[str]
    dotenv_display: str

    def get(self, name: str) -> str | None:
        """The variable's value; unset and empty (Railway allows empty variables) are None."""
        value = self.values.get(name)
        return None if value is None or value == "" else value

    def text(self, name: str) -> str | None:
        """A non-secret variable's value with spaces around it trimmed; None when unset or
        blank. A control character, line break or invisible character anywhere is refused."""
        value = self.get(name)
        if value is None:
            return None
        problem = refused_character(value)
        if problem is not None:
            raise self.error(name, f"{problem}; set the variable again without it")
        if len(value) > MAX_VALUE_CHARS:
            raise self.error(name, f"is longer than {MAX_VALUE_CHARS} characters")
        return value.strip() or None

    def source(self, name: str) -> str:
        return self.dotenv_display if name in self.from_dotenv else "environment"

    def error(self, name: str, message: str, entry: str = "") -> ConfigError:
        return ConfigError(message, source=self.source(name), entry=entry, field=name)


def load_settings(
    environ: Mapping[str, str] | None = None, *, cwd: Path | None = None, dotenv: bool = True
) -> Settings:
    """Read the environment (default: `os.environ`) and the config file into Settings.

    `cwd` is where `.env`, the default config path and relative paths are resolved (default:
    the current directory). `dotenv=False` ignores any `.env` file.
    """
    base = cwd if cwd is not None else Path.cwd()
    env = _environment(dict(os.environ) if environ is None else dict(environ), base, dotenv)
    local = _local_settings(env, base)

    config_display = env.text("COPYTRADER_CONFIG") or DEFAULT_CONFIG_PATH
    config_path = _resolve(config_display, base)
    accounts = read_accounts_file(config_path, config_display)

    dry_run_env = _bool_var(env, "COPYTRADER_DRY_RUN")
    copy = accounts.copy
    if dry_run_env is not None and dry_run_env != copy.dry_run:
        copy = replace(copy, dry_run=dry_run_env)

    master, master_notes = _master_spec(env)
    users = tuple(_user_spec(env, user) for user in accounts.users)
    for spec in (master, *users):
        if spec.credentials is not None:
            register_secret(spec.credentials.key)
            register_secret(spec.credentials.secret.get_secret_value())

    return Settings(
        api_url=_api_url(env),
        config_path=config_path,
        data_dir=local.data_dir,
        log_level=local.log_level,
        log_format=local.log_format,
        copy=copy,
        master=master,
        users=users,
        kill_switch_env=bool(_bool_var(env, "COPYTRADER_KILL_SWITCH")),
        dotenv_path=(base / ".env") if dotenv and (base / ".env").is_file() else None,
        deployment_id=env.text("RAILWAY_DEPLOYMENT_ID") or "",
        notes=(*accounts.notes, *master_notes),
        status=local.status,
        close_only_env=bool(_bool_var(env, "COPYTRADER_CLOSE_ONLY")),
    )


def load_local_settings(
    environ: Mapping[str, str] | None = None, *, cwd: Path | None = None, dotenv: bool = True
) -> LocalSettings:
    """Only the data folder and the logging settings, as `load_settings` reads them, for the
    commands that use no account (paper mode, the healthcheck): the config file and the key
    variables are not read, so they neither fail on them nor pay for them."""
    base = cwd if cwd is not None else Path.cwd()
    env = _environment(dict(os.environ) if environ is None else dict(environ), base, dotenv)
    return _local_settings(env, base)


def _local_settings(env: _Environment, base: Path) -> LocalSettings:
    log_level = (env.text("LOG_LEVEL") or "info").lower()
    if log_level not in LEVELS:
        raise env.error("LOG_LEVEL", f"must be one of {', '.join(LEVELS)} (got {shown(log_level)})")
    log_format_raw = (env.text("LOG_FORMAT") or "").lower()
    if log_format_raw and log_format_raw not in FORMATS:
        choices = ", ".join(FORMATS)
        raise env.error("LOG_FORMAT", f"must be one of {choices} (got {shown(log_format_raw)})")
    return LocalSettings(
        data_dir=_data_dir(env, base),
        log_level=log_level,
        log_format=log_format_raw or None,
        status=_status_settings(env),
    )


def _port_var(env: _Environment, name: str, *, lowest: int = 1) -> int | None:
    raw = env.text(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and lowest <= int(raw) <= 65535):
        raise env.error(name, f"must be a port number from {lowest} to 65535 (got {shown(raw)})")
    return int(raw)


def _status_settings(env: _Environment) -> StatusSettings:
    """The status HTTP surface: on Railway's `PORT` (all interfaces, where Railway's proxy and
    healthcheck connect) when set, else on `COPYTRADER_STATUS_PORT` (loopback unless
    `COPYTRADER_STATUS_HOST` names another address), else off."""
    railway_port = _port_var(env, "PORT")
    # 0: any free port (the `status.listening` event names it).
    own_port = _port_var(env, "COPYTRADER_STATUS_PORT", lowest=0)
    host = env.text("COPYTRADER_STATUS_HOST")
    if host is not None and not (host.isascii() and " " not in host):
        raise env.error("COPYTRADER_STATUS_HOST", "must be an IP address such as 127.0.0.1")
    token_raw = env.get("COPYTRADER_STATUS_TOKEN")
    token = None
    if token_raw is not None:
        if refused_character(token_raw) is not None or token_raw != token_raw.strip():
            raise env.error(
                "COPYTRADER_STATUS_TOKEN",
                "holds a space, control or invisible character; set it again without it",
            )
        if len(token_raw) < 16:
            raise env.error(
                "COPYTRADER_STATUS_TOKEN",
                "is shorter than 16 characters; use a long random one"
                " (python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            )
        register_secret(token_raw)
        token = SecretStr(token_raw)
    minutes_raw = env.text("COPYTRADER_NOT_COPYING_MINUTES")
    minutes = 5.0
    if minutes_raw is not None:
        try:
            minutes = float(minutes_raw)
        except ValueError:
            minutes = -1.0
        if not (0 < minutes <= 24 * 60):
            raise env.error(
                "COPYTRADER_NOT_COPYING_MINUTES",
                f"must be a number of minutes above 0, at most 1440 (got {shown(minutes_raw)})",
            )
    port: int | None = own_port
    default_host = "127.0.0.1"
    if railway_port is not None:
        port, default_host = railway_port, "0.0.0.0"  # noqa: S104 - Railway's proxy connects
    return StatusSettings(
        port=port, host=host or default_host, token=token, not_copying_minutes=minutes
    )


def _environment(real: dict[str, str], base: Path, dotenv: bool) -> _Environment:
    path = base / ".env"
    if not dotenv or not path.is_file():
        return _Environment(real, frozenset(), ".env")
    filled: set[str] = set()
    merged = dict(real)
    for name, value in _read_dotenv(path).items():
        if value is not None and name not in real:
            merged[name] = value
            filled.add(name)
    return _Environment(merged, frozenset(filled), ".env")


def _read_dotenv(path: Path) -> dict[str, str | None]:
    """The .env file's variables; a file that cannot be read as UTF-8 text is a ConfigError."""
    try:
        if path.stat().st_size > MAX_DOTENV_BYTES:
            raise ConfigError(
                f"larger than {MAX_DOTENV_BYTES // 1024} KiB: not a .env file", source=".env"
            )
        return dict(dotenv_values(path, encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (at offset {exc.start})", source=".env") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=".env") from None


def _resolve(raw: str, base: Path) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def _api_url(env: _Environment) -> str:
    """The REST base URL. Never quoted in a message: a URL may carry a password."""
    name = "KRAKEN_API_URL"
    url = (env.text(name) or DEFAULT_API_URL).rstrip("/")
    like = f"must be an http(s) base URL like {DEFAULT_API_URL}"
    if not url.isascii() or any(char.isspace() for char in url):
        problem = f"{like}: ASCII, no spaces (an international host name in its xn-- form)"
        raise env.error(name, problem)
    try:
        parsed = urlsplit(url)
        port = parsed.port
    except ValueError:
        problem = f"{like}; its host or port cannot be read (a port is 1-65535)"
        raise env.error(name, problem) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise env.error(name, like)
    if parsed.username is not None or parsed.password is not None:
        raise env.error(name, f"{like}, without a user name or password")
    if parsed.query or parsed.fragment or url.endswith(("?", "#")):
        raise env.error(name, f"{like}, without a ?query or #fragment")
    if port == 0:
        raise env.error(name, f"{like}; its port must be 1-65535")
    return url


def _data_dir(env: _Environment, base: Path) -> Path:
    for name in ("COPYTRADER_DATA_DIR", "RAILWAY_VOLUME_MOUNT_PATH"):
        value = env.text(name)
        if value:
            return _resolve(value, base)
    return base / "data"


def _bool_var(env: _Environment, name: str) -> bool | None:
    raw = env.text(name)
    if raw is None:
        return None
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise env.error(name, f"must be true or false (got {shown(raw)})")


def _master_spec(env: _Environment) -> tuple[AccountSpec, tuple[str, ...]]:
    key_var, secret_var = MASTER_KEY_VAR, MASTER_SECRET_VAR
    notes: tuple[str, ...] = ()
    master_unset = env.get(key_var) is None and env.get(secret_var) is None
    legacy_set = env.get(LEGACY_KEY_VAR) is not None or env.get(LEGACY_SECRET_VAR) is not None
    if master_unset and legacy_set:
        key_var, secret_var = LEGACY_KEY_VAR, LEGACY_SECRET_VAR
        notes = (
            f"MASTER uses the legacy {LEGACY_KEY_VAR}/{LEGACY_SECRET_VAR}; "
            f"{MASTER_KEY_VAR}/{MASTER_SECRET_VAR} are the current names",
        )
    return _account_spec(env, MASTER_ID, "MASTER", key_var, secret_var, None), notes


def _user_spec(env: _Environment, user: UserConfig) -> AccountSpec:
    key_var, secret_var = user_key_vars(user.env_name)
    return _account_spec(env, user.account_id, user.name, key_var, secret_var, user)


def _account_spec(
    env: _Environment,
    account_id: str,
    display_name: str,
    key_var: str,
    secret_var: str,
    user: UserConfig | None,
) -> AccountSpec:
    key, secret = env.get(key_var), env.get(secret_var)
    missing = tuple(name for name, value in ((key_var, key), (secret_var, secret)) if value is None)
    spec = AccountSpec(
        account_id=account_id,
        display_name=display_name,
        credentials=None,
        key_var=key_var,
        secret_var=secret_var,
        user=user,
        missing_vars=missing,
    )
    if key is None or secret is None:
        return spec
    problem = _credentials_problem(env, account_id, key_var, key, secret_var, secret)
    if problem is not None:
        return replace(spec, credentials_error=problem)
    return replace(spec, credentials=ApiCredentials(key, secret))


def _credentials_problem(
    env: _Environment, account_id: str, key_var: str, key: str, secret_var: str, secret: str
) -> ConfigError | None:
    """What is wrong with a set key/secret, naming the variable (never showing its value)."""
    for name, value in ((key_var, key), (secret_var, secret)):
        if value != value.strip():
            return env.error(
                name,
                "has spaces or a line break around it (often from copy and paste); remove "
                "them and set the variable again",
                entry=account_id,
            )
        if any(char.isspace() for char in value):
            return env.error(name, "contains spaces; paste the value again", entry=account_id)
        if not (value.isascii() and value.isprintable()):
            return env.error(
                name,
                "contains a control or non-ASCII character, which no Kraken key or secret has; "
                "paste the value again",
                entry=account_id,
            )
    try:
        decoded = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        return env.error(
            secret_var,
            "is not valid base64: a Kraken private key is the long string ending in '=' "
            "shown once when the key is created (check you did not paste the public key)",
            entry=account_id,
        )
    return None
