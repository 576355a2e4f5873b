"""The demo accounts of paper mode, and the files and variables that describe them.

Every paper run makes fresh random keys and secrets, shaped like Kraken's (a 56-character key,
a 64-byte base64 secret). The MASTER account has two keys, as on Kraken: the daemon's, which
only reads, and the demo trader's, which trades. The three users are sized so that the copies
show the sizing rules at work: Alice has about a third of the master's equity, Bob about a
seventh and Carol under one percent, so that many of Carol's copies fall under the pair minimum
and are skipped (with the reason in the log).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from copytrader.config.settings import child_process_environment

# Prefixes of the variables that configure a real deployment: never passed to paper children,
# so real keys (or a real KRAKEN_API_URL) cannot leak into paper mode.
_SCRUBBED_PREFIXES = ("KRAKEN_", "COPYTRADER_", "RAILWAY_", "LOG_")

MASTER_BALANCES = {"ZUSD": "50000", "XXBT": "0.5", "XETH": "5", "SOL": "100"}
READ_ONLY = ("query_funds", "query_orders", "websocket")
TRADING = ("query_funds", "query_orders", "create_orders", "cancel_orders")


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(42)).decode()


def _new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


@dataclass(frozen=True)
class DemoKey:
    key: str = field(default_factory=_new_key)
    secret: str = field(default_factory=_new_secret, repr=False)


@dataclass(frozen=True)
class DemoUser:
    user_id: str  # the daemon's user id; also the simulator's account name
    display_name: str
    env_name: str  # KRAKEN_USER_<env_name>_API_KEY
    balances: Mapping[str, str]
    credentials: DemoKey = field(default_factory=DemoKey)


@dataclass(frozen=True)
class DemoSetup:
    master: DemoKey  # the daemon's read-only key on the master account
    trader: DemoKey  # the demo trader's own key on the same account
    users: tuple[DemoUser, ...]

    def daemon_variables(self, *, api_url: str, config: Path, data_dir: Path) -> dict[str, str]:
        """The variables an operator would set to point the daemon at this exchange."""
        variables = {
            "KRAKEN_API_URL": api_url,
            "COPYTRADER_CONFIG": str(config),
            "COPYTRADER_DATA_DIR": str(data_dir),
            "KRAKEN_MASTER_API_KEY": self.master.key,
            "KRAKEN_MASTER_API_SECRET": self.master.secret,
        }
        for user in self.users:
            variables[f"KRAKEN_USER_{user.env_name}_API_KEY"] = user.credentials.key
            variables[f"KRAKEN_USER_{user.env_name}_API_SECRET"] = user.credentials.secret
        return variables


def make_demo_setup() -> DemoSetup:
    return DemoSetup(
        master=DemoKey(),
        trader=DemoKey(),
        users=(
            DemoUser(
                "alice_demo",
                "Alice (demo)",
                "ALICE",
                {"ZUSD": "10000", "XXBT": "0.25", "XETH": "2.5", "SOL": "50"},
            ),
            DemoUser(
                "bob_demo",
                "Bob (demo)",
                "BOB",
                {"ZUSD": "4000", "XXBT": "0.1", "XETH": "1", "SOL": "20"},
            ),
            DemoUser(
                "carol_demo",
                "Carol (demo)",
                "CAROL",
                {"ZUSD": "250", "XXBT": "0.005", "XETH": "0.05", "SOL": "1"},
            ),
        ),
    )


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value)


def _toml_table_inline(values: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = {_toml_string(v)}" for k, v in values.items()) + " }"


def _toml_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def sim_accounts_toml(setup: DemoSetup) -> str:
    """The simulator's accounts file (contains the secrets: keep it private and temporary)."""
    lines = [
        "# Paper mode's demo accounts: throwaway keys for a throwaway exchange.",
        "[[accounts]]",
        'name = "master"',
        f"key = {_toml_string(setup.master.key)}",
        f"secret = {_toml_string(setup.master.secret)}",
        'tier = "pro"',
        f"permissions = {_toml_list(READ_ONLY)}",
        f"balances = {_toml_table_inline(MASTER_BALANCES)}",
        "",
        "[[accounts.keys]]  # the demo trader's own key, like a trader's app on Kraken",
        f"key = {_toml_string(setup.trader.key)}",
        f"secret = {_toml_string(setup.trader.secret)}",
        f"permissions = {_toml_list(TRADING)}",
    ]
    for user in setup.users:
        lines += [
            "",
            "[[accounts]]",
            f"name = {_toml_string(user.user_id)}",
            f"key = {_toml_string(user.credentials.key)}",
            f"secret = {_toml_string(user.credentials.secret)}",
            'tier = "pro"',
            f"permissions = {_toml_list(TRADING)}",
            f"balances = {_toml_table_inline(user.balances)}",
        ]
    lines += [
        "",
        "# Order books around each price: market orders walk them in several trades and slip,",
        "# as on Kraken; resting limits fill at their own price when the price crosses them.",
        "[books]",
    ]
    return "\n".join(lines) + "\n"


def daemon_config_toml(setup: DemoSetup) -> str:
    """The daemon's `config/accounts.toml` for paper mode: Pro-tier polling, the demo users."""
    lines = [
        "# Paper mode: written by copytrader.paper.supervisor for one run.",
        "[copy]",
        'sizing = "equity_ratio"',
        "connect_stagger_seconds = 0.2",
        # The fastest polling Kraken's rate limits allow, here as there: Pro tier, every 2 s.
        'master_tier = "pro"',
        "max_signal_age_seconds = 60",
        "dry_run = false",
        "round_up_to_minimum = false",
        'equity_asset = "ZUSD"',
    ]
    for user in setup.users:
        lines += [
            "",
            "[[users]]",
            f"id = {_toml_string(user.user_id)}",
            f"name = {_toml_string(user.display_name)}",
            f"env_name = {_toml_string(user.env_name)}",
            "enabled = true",
            'multiplier = "1"',
            'max_order_fraction = "0.25"',
            'tier = "pro"',
        ]
    return "\n".join(lines) + "\n"


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a paper-mode child: ours, minus deployment settings, plus `extra`.

    Only the basics (PATH, HOME, locale, proxies) are passed on; the copytrader settings among
    them are removed, not interpreted.
    """
    base = child_process_environment(drop_prefixes=_SCRUBBED_PREFIXES)
    return base | {"PYTHONUNBUFFERED": "1"} | dict(extra)
