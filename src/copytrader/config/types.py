"""The frozen objects configuration is parsed into (re-exported by `copytrader.config.settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from copytrader.config.credentials import ApiCredentials, SecretStr
from copytrader.domain import RateTier, SizingMode
from copytrader.errors import ConfigError

MASTER_ID = "MASTER"
USER_PREFIX = "USER:"


@dataclass(frozen=True)
class UserConfig:
    """One USER account as the config file describes it (no secrets here)."""

    id: str
    name: str
    env_name: str
    enabled: bool
    multiplier: Decimal
    max_order_fraction: Decimal | None
    max_notional: Decimal | None
    fixed_notional: Decimal | None
    round_up_to_minimum: bool
    tier: RateTier
    source: str  # the file it came from, e.g. "config/accounts.toml": for messages
    entry: str  # where in that file, e.g. "users[0] (daivon_frazier)"
    # Risk gates (see copying/risk.py); None / False / 0: off. Defaults come from [copy].
    max_slippage_bps: Decimal | None = None
    close_only: bool = False
    max_drawdown_pct: Decimal | None = None
    cancel_after_seconds: int = 0

    @property
    def account_id(self) -> str:
        return f"{USER_PREFIX}{self.id}"


@dataclass(frozen=True)
class CopySettings:
    """The `[copy]` table: how the copy engine behaves for every user."""

    sizing: SizingMode
    connect_stagger_seconds: float
    master_tier: RateTier
    max_signal_age_seconds: float
    poll_interval_seconds: float | None  # None: the feed's own default
    dry_run: bool  # the file's value, or COPYTRADER_DRY_RUN when that is set
    round_up_to_minimum: bool  # default for users that do not say
    equity_asset: str  # the asset equity is measured in (TradeBalance `asset`), e.g. ZUSD
    # Risk gates: the defaults of the users' keys of the same names (see copying/risk.py).
    max_slippage_bps: Decimal | None = None
    close_only: bool = False
    max_drawdown_pct: Decimal | None = None
    cancel_after_seconds: int = 0
    # On a clean stop the dead-man switch is disarmed ("disarm") or left running ("leave").
    dead_man_on_stop: str = "disarm"
    # How often each user's equity is read for the drawdown stop, and the switches looked at.
    risk_check_seconds: float = 60.0


@dataclass(frozen=True)
class AccountSpec:
    """One account to connect: who it is, where its credentials come from, and the credentials.

    `credentials` is None when the variables are not set (`missing_vars` names them) or when
    they are set but unusable (`credentials_error` says why, naming the variable). Neither is a
    reason to stop the other accounts.
    """

    account_id: str  # "MASTER" or "USER:<id>"
    display_name: str
    credentials: ApiCredentials | None
    key_var: str
    secret_var: str
    user: UserConfig | None
    missing_vars: tuple[str, ...] = ()
    credentials_error: ConfigError | None = None

    @property
    def is_master(self) -> bool:
        return self.account_id == MASTER_ID

    @property
    def enabled(self) -> bool:
        return self.user is None or self.user.enabled


@dataclass(frozen=True)
class StatusSettings:
    """The daemon's read-only HTTP surface (/healthz, /status, /metrics) and its health rule.

    `port` None: no server (the command-based health check still works). `PORT` (Railway)
    binds 0.0.0.0 so Railway's proxy and healthcheck reach it; `COPYTRADER_STATUS_PORT` binds
    127.0.0.1 unless `COPYTRADER_STATUS_HOST` says otherwise. Without `token`, only /healthz
    answers; with it, /status and /metrics require it.
    """

    port: int | None = None
    host: str = "127.0.0.1"
    token: SecretStr | None = None
    # Minutes of not copying before `daemon.not_copying` is logged (COPYTRADER_NOT_COPYING_MINUTES).
    not_copying_minutes: float = 5.0


@dataclass(frozen=True)
class LocalSettings:
    """Where this process keeps its files and how it logs: all that paper mode and the
    healthcheck need, read without the config file or any account's variables."""

    data_dir: Path
    log_level: str
    log_format: str | None  # "json", "console", or None: console on a terminal, json elsewhere
    status: StatusSettings = StatusSettings()


@dataclass(frozen=True)
class Settings:
    """Everything the daemon and `copytrader check` need, parsed once at startup."""

    api_url: str
    config_path: Path
    data_dir: Path
    log_level: str
    log_format: str | None  # "json", "console", or None: console on a terminal, json elsewhere
    copy: CopySettings
    master: AccountSpec
    users: tuple[AccountSpec, ...]  # every configured user, enabled or not, in config order
    kill_switch_env: bool  # COPYTRADER_KILL_SWITCH: copying stops, nothing new is placed
    dotenv_path: Path | None  # the .env file that was read, if any
    deployment_id: str  # RAILWAY_DEPLOYMENT_ID, "" elsewhere: put on every log line
    notes: tuple[str, ...] = ()  # harmless oddities worth one warning line at startup
    status: StatusSettings = StatusSettings()  # the status HTTP surface (service.status_http)
    close_only_env: bool = False  # COPYTRADER_CLOSE_ONLY: every user copies only what reduces

    @property
    def accounts(self) -> tuple[AccountSpec, ...]:
        """MASTER first, then the users in config order."""
        return (self.master, *self.users)

    @property
    def enabled_users(self) -> tuple[AccountSpec, ...]:
        return tuple(spec for spec in self.users if spec.enabled)
