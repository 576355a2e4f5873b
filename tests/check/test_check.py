"""`copytrader check` run as a subprocess against the simulator: exit status and the message a
user needs, for every way an account can end."""

from __future__ import annotations

from pathlib import Path

from tests.check.conftest import Accounts, run_check
from tests.simproc import new_secret

ALL_USERS = ("USER:daivon_frazier", "USER:tania_gilbert")
PERMISSION_ADVICE = (
    "Query Funds, Query Open Orders & Trades, Query Closed Orders & Trades, Create & Modify "
    "Orders, Cancel/Close Orders"
)


def test_all_connected(env: dict[str, str], tmp_path: Path) -> None:
    """Every account connects: exit 0, equity, balances, full permissions and nonce files."""
    result = run_check(env, tmp_path, "--json")
    assert result.status == 0, result.stdout + result.stderr
    document = result.json()
    assert document["ok"] is True
    assert document["summary"] == "MASTER connected; 2 of 2 enabled users connected"
    for account_id in ("MASTER", *ALL_USERS):
        entry = result.account(account_id)
        assert entry["state"] == "connected", entry["message"]
        assert entry["key_set"] is True
        assert entry["secret_set"] is True
        assert entry["equity"] == "400000.0000"
        assert entry["balances"]["ZUSD"] == "100000.0000"
        assert entry["missing_permissions"] == []
        assert Path(entry["nonce_file"]).is_file()
        assert entry["nonce_last"] > 0
    assert all(result.account("USER:tania_gilbert")["permissions"].values())
    assert result.account("MASTER")["nonce_file"].endswith("kraken_nonce_master.txt")


def test_table_on_a_terminal_shows_each_account(env: dict[str, str], tmp_path: Path) -> None:
    """Without --json the report is a table with one row per account and the verdict."""
    result = run_check(env, tmp_path)
    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("ACCOUNT"))
    assert "STATE" in header
    assert "EQUITY" in header
    for account_id in ("MASTER", *ALL_USERS):
        row = next(line for line in lines if line.startswith(account_id + " "))
        assert "connected" in row
        assert "400000.0000 ZUSD" in row
    assert "MASTER connected; 2 of 2 enabled users connected (exit status 0)" in result.stdout


def test_user_without_variables_is_skipped(env: dict[str, str], tmp_path: Path) -> None:
    """A user with no variables: exit 1, and the message names the two variables to set."""
    del env["KRAKEN_USER_TANIA_API_KEY"]
    del env["KRAKEN_USER_TANIA_API_SECRET"]
    result = run_check(env, tmp_path, "--json")
    assert result.status == 1
    tania = result.account("USER:tania_gilbert")
    assert tania["state"] == "skipped"
    assert tania["key_set"] is False
    assert "KRAKEN_USER_TANIA_API_KEY and KRAKEN_USER_TANIA_API_SECRET" in tania["message"]
    assert result.account("USER:daivon_frazier")["state"] == "connected"
    assert result.account("MASTER")["state"] == "connected"

    table = run_check(env, tmp_path)
    assert table.status == 1
    assert "Set KRAKEN_USER_TANIA_API_KEY and KRAKEN_USER_TANIA_API_SECRET" in table.stdout


def test_user_with_wrong_secret_fails_alone(env: dict[str, str], tmp_path: Path) -> None:
    """A secret that does not belong to the key: exit 1, naming the secret's variable."""
    env["KRAKEN_USER_TANIA_API_SECRET"] = new_secret()
    result = run_check(env, tmp_path, "--json")
    assert result.status == 1
    tania = result.account("USER:tania_gilbert")
    assert tania["state"] == "failed"
    assert tania["reason"] == "invalid_signature"
    assert "KRAKEN_USER_TANIA_API_SECRET does not belong to the key" in tania["message"]
    assert result.account("USER:daivon_frazier")["state"] == "connected"


def test_user_secret_that_is_not_base64(env: dict[str, str], tmp_path: Path) -> None:
    """A secret that is not base64 fails that user before any request, naming the variable."""
    env["KRAKEN_USER_DAIVON_API_SECRET"] = "not*base64*at-all"
    result = run_check(env, tmp_path, "--json")
    assert result.status == 1
    daivon = result.account("USER:daivon_frazier")
    assert daivon["reason"] == "bad_credentials"
    assert "KRAKEN_USER_DAIVON_API_SECRET" in daivon["message"]
    assert "not valid base64" in daivon["message"]


def test_key_without_query_permission(
    env: dict[str, str], accounts: Accounts, tmp_path: Path
) -> None:
    """A key that may trade but not query: exit 1, naming what is missing, what a copy-trading
    key needs, and warning against withdrawal."""
    env["KRAKEN_USER_TANIA_API_KEY"] = accounts.no_query.key
    env["KRAKEN_USER_TANIA_API_SECRET"] = accounts.no_query.secret
    result = run_check(env, tmp_path, "--json")
    assert result.status == 1
    tania = result.account("USER:tania_gilbert")
    assert tania["state"] == "failed"
    assert tania["reason"] == "missing_permission"
    assert tania["missing_permissions"] == [
        "Query Funds",
        "Query Open Orders & Trades",
        "Query Closed Orders & Trades",
    ]
    assert tania["permissions"]["Create & Modify Orders"] is True
    assert tania["permissions"]["Cancel/Close Orders"] is True
    assert PERMISSION_ADVICE in tania["message"]
    assert "Never grant Withdraw Funds" in tania["message"]


def test_master_missing(env: dict[str, str], tmp_path: Path) -> None:
    """No MASTER variables: exit 2, naming both; the users are still checked."""
    del env["KRAKEN_MASTER_API_KEY"]
    del env["KRAKEN_MASTER_API_SECRET"]
    result = run_check(env, tmp_path, "--json")
    assert result.status == 2
    master = result.account("MASTER")
    assert master["state"] == "skipped"
    assert "KRAKEN_MASTER_API_KEY and KRAKEN_MASTER_API_SECRET" in master["message"]
    assert [result.account(a)["state"] for a in ALL_USERS] == ["connected", "connected"]


def test_legacy_master_variables(env: dict[str, str], accounts: Accounts, tmp_path: Path) -> None:
    """KRAKEN_API_KEY/KRAKEN_API_SECRET connect MASTER when the MASTER names are unset."""
    env["KRAKEN_API_KEY"] = env.pop("KRAKEN_MASTER_API_KEY")
    env["KRAKEN_API_SECRET"] = env.pop("KRAKEN_MASTER_API_SECRET")
    result = run_check(env, tmp_path, "--json")
    assert result.status == 0, result.stdout
    assert result.account("MASTER")["key_var"] == "KRAKEN_API_KEY"
    assert any("legacy" in note for note in result.json()["notes"])


def test_malformed_config(env: dict[str, str], tmp_path: Path) -> None:
    """A config with a bad value: exit 2 and a message naming the file, entry and field."""
    bad = tmp_path / "accounts.toml"
    bad.write_text('[[users]]\nid = "daivon_frazier"\nmax_order_fraction = "ten percent"\n')
    env["COPYTRADER_CONFIG"] = str(bad)
    result = run_check(env, tmp_path)
    assert result.status == 2
    assert str(bad) in result.stderr
    assert "entry users[0] (daivon_frazier)" in result.stderr
    assert "field 'max_order_fraction'" in result.stderr
    assert "not a decimal" in result.stderr

    as_json = run_check(env, tmp_path, "--json")
    assert as_json.status == 2
    assert as_json.json()["ok"] is False
    assert "max_order_fraction" in as_json.json()["error"]
