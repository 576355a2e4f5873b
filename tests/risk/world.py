"""The copy world of `copytrader.paper.world` with what the risk tests need: per-user risk keys in
the daemon's config, per-key permissions and an order book in the simulator, and the ledger
read after the daemon stopped.

    with risk_world([RiskUser(SimUser("alice", {...}), {"close_only": "true"})]) as world:
        daemon = world.start_daemon()
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from copytrader.ledger import Ledger
from copytrader.paper.world import AccountKeys, CopyWorld, DaemonProcess, SimUser, wait_until
from kraken_sim.process import running_sim
from tests import secretscan
from tests.copy.harness import new_key
from tests.simproc import new_secret

__all__ = ["DaemonProcess", "RiskUser", "RiskWorld", "SimUser", "risk_world", "wait_until"]

MASTER_BALANCES = {"ZUSD": "100000", "XXBT": "2"}


@dataclass(frozen=True)
class RiskUser:
    sim: SimUser
    config: Mapping[str, str] = field(default_factory=dict)  # TOML values, written as given
    permissions: Sequence[str] | None = None  # the daemon key's, in the simulator's words

    @property
    def user_id(self) -> str:
        return self.sim.user_id


class RiskWorld(CopyWorld):
    """CopyWorld whose config file carries each user's risk keys."""

    def __init__(self, *args: Any, risk_users: Sequence[RiskUser], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.risk_users = {user.user_id: user for user in risk_users}

    def config_toml(self) -> str:
        lines = ["[copy]"] + [f"{k} = {v}" for k, v in self.copy_settings.items()]
        for user in self.users:
            lines += [
                "",
                "[[users]]",
                f'id = "{user.user_id}"',
                f'env_name = "{user.env}"',
                'tier = "pro"',
            ]
            lines += [f"{k} = {v}" for k, v in self.risk_users[user.user_id].config.items()]
        return "\n".join(lines) + "\n"

    def ledger(self) -> Ledger:
        """The daemon's ledger (open it only while no daemon runs)."""
        return Ledger.in_data_dir(self.data_dir)

    def order_of(self, user: str, cl_ord_id: str) -> dict[str, Any]:
        [order] = [o for o in self.all_orders(user).values() if o.get("cl_ord_id") == cl_ord_id]
        return order


def _accounts_toml(
    users: Sequence[RiskUser],
    keys: Mapping[str, AccountKeys],
    trader: tuple[str, str],
    prices: Mapping[str, str],
    books: str,
) -> str:
    def table(values: Mapping[str, str]) -> str:
        return "{ " + ", ".join(f'{k} = "{v}"' for k, v in values.items()) + " }"

    def account(
        name: str,
        balances: Mapping[str, str],
        permissions: Sequence[str] | None,
        extra: Sequence[tuple[str, str]],
    ) -> list[str]:
        k = keys[name]
        lines = [
            "[[accounts]]",
            f'name = "{name}"',
            f'key = "{k.daemon_key}"',
            f'secret = "{k.daemon_secret}"',
            'tier = "pro"',
            f"balances = {table(balances)}",
        ]
        if permissions is not None:
            lines.append("permissions = [" + ", ".join(f'"{p}"' for p in permissions) + "]")
        for key, secret in [(k.reader_key, k.reader_secret), *extra]:
            lines += ["[[accounts.keys]]", f'key = "{key}"', f'secret = "{secret}"']
        return lines

    lines = account("master", MASTER_BALANCES, None, [trader])
    for user in users:
        lines += ["", *account(user.user_id, user.sim.balances, user.permissions, [])]
    lines += ["", "[prices]"] + [f'{pair} = "{price}"' for pair, price in prices.items()]
    return "\n".join(lines) + "\n" + books


@contextlib.contextmanager
def risk_world(
    users: Sequence[RiskUser],
    *,
    copy_settings: Mapping[str, str] | None = None,
    books: str = "",
) -> Iterator[RiskWorld]:
    """A simulator (with `books`, a TOML `[books]` text, if given) with MASTER and `users`, and
    a work folder for daemons; stops everything."""
    names = ["master", *(u.user_id for u in users)]
    keys = {name: AccountKeys.new(secretscan.register_secret) for name in names}
    trader = (new_key(), secretscan.register_secret(new_secret()))
    settings = {
        "sizing": '"equity_ratio"',
        "connect_stagger_seconds": "0",
        "master_tier": '"pro"',
        "max_signal_age_seconds": "60",
        "equity_asset": '"ZUSD"',
    } | dict(copy_settings or {})
    toml = _accounts_toml(users, keys, trader, {"XXBTZUSD": "60000"}, books)
    with (
        tempfile.TemporaryDirectory(prefix="copytrader-risk-") as tmp,
        running_sim(
            toml,
            command=(sys.executable, "-m", "copytrader", "sim"),
            on_stopped=secretscan.record_output,
        ) as sim,
    ):
        world = RiskWorld(
            sim, Path(tmp), [u.sim for u in users], keys, trader, settings,
            secretscan.record_output, risk_users=users,
        )  # fmt: skip
        try:
            yield world
        finally:
            world.close()


def events_for(daemon: DaemonProcess, name: str, user: str) -> list[dict[str, Any]]:
    return [e for e in daemon.named(name) if e.get("user") == user]
