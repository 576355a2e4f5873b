"""The accounts file: what it accepts, and errors that name the file, the entry and the field."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from kraken_sim.accounts import (
    DEFAULT_PERMISSIONS,
    AccountsFileError,
    load_accounts_file,
    parse_accounts,
)
from tests.simproc import new_secret

SECRET = new_secret()

FULL = f"""
[[accounts]]
name = "master"
key = "master-key"
secret = "{SECRET}"
tier = "intermediate"
nonce_window = 5000
balances = {{ ZUSD = "10000", XXBT = "0.5" }}

[[accounts.keys]]
key = "master-trader"
secret = "{SECRET}"
permissions = ["query_funds", "create_orders"]
nonce_window = 7

[[accounts]]
name = "user"
key = "user-key"
secret = "{SECRET}"

[lockout]
failures = 3
within_seconds = 10
duration_seconds = 2.5

[prices]
XXBTZUSD = "60000"
"""


def parse(text: str) -> object:
    return parse_accounts(tomllib.loads(text), source="accounts.toml")


def test_full_file_is_read_with_defaults() -> None:
    """Every documented field is read; omitted ones get their defaults."""
    setup = parse_accounts(tomllib.loads(FULL), source="accounts.toml")
    master, user = setup.accounts
    assert master.tier == "intermediate"
    assert master.balances == {"ZUSD": Decimal("10000"), "XXBT": Decimal("0.5")}
    own, trader = master.keys
    assert (own.key, own.nonce_window, own.permissions) == (
        "master-key",
        5000,
        frozenset(DEFAULT_PERMISSIONS),
    )
    assert (trader.key, trader.nonce_window) == ("master-trader", 7)
    assert trader.permissions == {"query_funds", "create_orders"}
    assert trader.account == "master"
    assert (user.tier, user.balances, user.keys[0].nonce_window) == ("starter", {}, 0)
    assert setup.prices == {"XXBTZUSD": Decimal("60000")}
    assert (setup.lockout.failures, setup.lockout.duration_seconds) == (3, 2.5)
    assert SECRET not in repr(setup)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('secret = "' + SECRET, 'secret = "not base64!'),
            r"accounts\[0\] \('master'\): field 'secret': not valid base64",
        ),
        (('tier = "intermediate"', 'tier = "gold"'), r"accounts\[0\] \('master'\): field 'tier'"),
        (("nonce_window = 5000", "nonce_window = -1"), "field 'nonce_window'"),
        (('"create_orders"]', '"trade"]'), r"keys\[0\]: field 'permissions': unknown trade"),
        (
            ('ZUSD = "10000"', "ZUSD = 1.5"),
            r"field 'balances': 'ZUSD': write the amount as a string",
        ),
        (('ZUSD = "10000"', 'ZUSD = "-1"'), "cannot be negative"),
        (
            ('XXBTZUSD = "60000"', 'XXBTZUSD = "0"'),
            r"\[prices\]: 'XXBTZUSD': must be greater than 0",
        ),
        (('name = "user"', 'name = "master"'), r"accounts\[1\]: field 'name': duplicate account"),
        (('key = "user-key"', 'key = "master-key"'), r"accounts\[1\] \('user'\): field 'key'"),
        (('key = "user-key"\n', ""), r"accounts\[1\] \('user'\): field 'key': required"),
        (('key = "user-key"', 'kee = "user-key"'), r"\('user'\): unknown account field\(s\): kee"),
        (("failures = 3", "failures = 0"), r"\[lockout\]: field 'failures'"),
        (("[prices]", "[price]"), "unknown top level field"),
        (('tier = "intermediate"', 'tier = "intermediate"\ncolour = 1'), "unknown account field"),
    ],
)
def test_mistakes_name_file_entry_and_field(change: tuple[str, str], message: str) -> None:
    """Each kind of mistake is refused with a message naming where it is."""
    old, new = change
    assert old in FULL
    with pytest.raises(AccountsFileError, match=message) as caught:
        parse(FULL.replace(old, new, 1))
    assert str(caught.value).startswith("accounts.toml")
    assert SECRET not in str(caught.value)


def test_file_needs_an_account(tmp_path: Path) -> None:
    """A file without accounts, a missing file and broken TOML are clear errors."""
    with pytest.raises(AccountsFileError, match="at least one"):
        parse("[prices]\n")
    with pytest.raises(AccountsFileError, match="file not found"):
        load_accounts_file(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[accounts]\n")
    with pytest.raises(AccountsFileError, match="not valid TOML"):
        load_accounts_file(broken)


def test_bad_accounts_file_stops_the_simulator_with_the_reason(tmp_path: Path) -> None:
    """`copytrader sim` with a broken accounts file exits 2 and names the field."""
    path = tmp_path / "accounts.toml"
    path.write_text(FULL.replace('tier = "intermediate"', 'tier = "gold"'))
    done = subprocess.run(
        [sys.executable, "-m", "copytrader", "sim", "--port", "0", "--accounts", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "field 'tier'" in done.stderr
    assert "listening on" not in done.stdout
    assert SECRET not in done.stdout + done.stderr
