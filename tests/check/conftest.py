"""Helpers for `copytrader check` tests: simulated accounts, and the command run as a subprocess.

The shipped config/accounts.toml is used (MASTER, daivon_frazier -> DAIVON, tania_gilbert ->
TANIA), so these tests also prove that the shipped file and its variable names work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import secretscan
from tests.broker.conftest import ALL_PERMISSIONS, SimAccount, accounts_toml
from tests.simproc import SimProcess, running_sim

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "config" / "accounts.toml"
CHECK_TIMEOUT_S = 90.0
QUERY_PERMISSIONS = ("query_funds", "query_orders")


@dataclass(frozen=True)
class CheckResult:
    status: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.stdout)
        return document

    def account(self, account_id: str) -> dict[str, Any]:
        for entry in self.json()["accounts"]:
            if entry["account"] == account_id:
                return dict(entry)
        raise AssertionError(f"{account_id} not in the report")


@dataclass
class Accounts:
    """The simulated accounts: MASTER, both users, and a key per scenario."""

    master: SimAccount = field(
        default_factory=lambda: SimAccount(name="master", account_id="MASTER", tier="starter")
    )
    daivon: SimAccount = field(
        default_factory=lambda: SimAccount(
            name="daivon", account_id="USER:daivon_frazier", tier="starter"
        )
    )
    tania: SimAccount = field(
        default_factory=lambda: SimAccount(
            name="tania", account_id="USER:tania_gilbert", tier="starter"
        )
    )
    # A key with every permission except the query ones (what a too-narrow key looks like).
    no_query: SimAccount = field(
        default_factory=lambda: SimAccount(
            name="no_query",
            account_id="USER:tania_gilbert",
            tier="starter",
            permissions=tuple(p for p in ALL_PERMISSIONS if p not in QUERY_PERMISSIONS),
        )
    )

    def toml(self) -> str:
        return accounts_toml(self.master, self.daivon, self.tania, self.no_query)

    def env(self, sim: SimProcess, data_dir: Path) -> dict[str, str]:
        """Every account's variables set, pointed at the simulator and the data folder."""
        return {
            "KRAKEN_API_URL": sim.url,
            "COPYTRADER_CONFIG": str(SHIPPED_CONFIG),
            "COPYTRADER_DATA_DIR": str(data_dir),
            "KRAKEN_MASTER_API_KEY": self.master.key,
            "KRAKEN_MASTER_API_SECRET": self.master.secret,
            "KRAKEN_USER_DAIVON_API_KEY": self.daivon.key,
            "KRAKEN_USER_DAIVON_API_SECRET": self.daivon.secret,
            "KRAKEN_USER_TANIA_API_KEY": self.tania.key,
            "KRAKEN_USER_TANIA_API_SECRET": self.tania.secret,
        }


def base_env() -> dict[str, str]:
    """A clean environment: nothing of the developer's KRAKEN_* or COPYTRADER_* leaks in."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env["LOG_FORMAT"] = "json"
    return env


def run_check(env: Mapping[str, str], cwd: Path, *args: str) -> CheckResult:
    """`python -m copytrader check ARGS` with exactly this environment (plus a clean base)."""
    completed = subprocess.run(
        [sys.executable, "-m", "copytrader", "check", *args],
        env={**base_env(), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )
    secretscan.record_output(f"copytrader check {' '.join(args)}", completed.stdout)
    secretscan.record_output(f"copytrader check {' '.join(args)} [stderr]", completed.stderr)
    return CheckResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(name="accounts", scope="module")
def _accounts() -> Accounts:
    return Accounts()


@pytest.fixture(name="sim", scope="module")
def _sim(accounts: Accounts) -> Iterator[SimProcess]:
    """One simulator for the module; each test uses its own data folder."""
    with running_sim(accounts.toml()) as sim:
        yield sim


def rested(sim: SimProcess) -> None:
    """Let the simulator's time pass so no REST counter or lockout from an earlier test lingers."""
    sim.control("clock", {"advance_s": 300})
    sim.control("lockouts/clear", {})


@pytest.fixture(name="env")
def _env(accounts: Accounts, sim: SimProcess, tmp_path: Path) -> dict[str, str]:
    """Every account's variables set, a fresh data folder, and a rested simulator."""
    rested(sim)
    return accounts.env(sim, tmp_path / "data")
