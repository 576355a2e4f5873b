"""`copytrader run` and `copytrader check` with a configuration they cannot mean: exit 2, one
line on stderr naming the file or variable, the entry and the field, no traceback, nothing
started. Each runs the real command as a subprocess in a scratch folder with a clean
environment (the helpers of tests/service/test_bad_input.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.service.test_bad_input import _assert_one_clear_line, _copytrader, _run, _write

TWO_USERS = '[[users]]\nid = "daivon_frazier"\n[[users]]\nid = "tania_gilbert"\n'


def _config(text: str) -> Callable[[Path], object]:
    return lambda folder: _write(folder / "config" / "accounts.toml", text)


def _config_and_legacy(text: str, legacy: str) -> Callable[[Path], object]:
    def setup(folder: Path) -> None:
        _write(folder / "config" / "accounts.toml", text)
        _write(folder / "config" / "users" / "kraken.json", legacy)

    return setup


CASES = [
    pytest.param(
        _config('[copy]\nsizing = "equity_ratio"\n'),
        {},
        ("config/accounts.toml", "field 'users'", "no users are configured"),
        id="no-users",
    ),
    pytest.param(
        _config('[[users]]\nid = "daivon_frazier"\nenabled = false\n'),
        {},
        ("config/accounts.toml", "field 'enabled'", "every user is disabled (daivon_frazier)"),
        id="all-users-disabled",
    ),
    pytest.param(
        _config_and_legacy("", "[" * 100_000 + "]" * 100_000),
        {},
        ("config/users/kraken.json", "nested too deeply"),
        id="legacy-json-nested-deep",
    ),
    pytest.param(
        _config_and_legacy("", '{"user_id": "daivon_frazier"}'),
        {},
        ("config/users/kraken.json", "must be a JSON array of user objects (got an object)"),
        id="legacy-json-not-a-list",
    ),
    pytest.param(
        _config_and_legacy("", " " * (1024 * 1024 + 1)),
        {},
        ("config/users/kraken.json", "larger than 1024 KiB"),
        id="legacy-json-huge",
    ),
    pytest.param(
        _config('[[users]]\nid = "daivon_frazier"\nmultiplier = "1e999999"\n'),
        {},
        ("users[0] (daivon_frazier)", "'multiplier'", "without an exponent"),
        id="multiplier-exponent",
    ),
    pytest.param(
        _config('[[users]]\nid = "daivon_frazier"\nmultiplier = "\u0661\u0662"\n'),
        {},
        ("users[0] (daivon_frazier)", "'multiplier'", "ASCII digits"),
        id="multiplier-arabic-digits",
    ),
    pytest.param(
        _config('[[users]]\nid = "daivon_frazier"\nname = "Daivon\\nFrazier"\n'),
        {},
        ("users[0] (daivon_frazier)", "'name'", "line break (U+000A"),
        id="name-with-line-break",
    ),
    pytest.param(
        _config(TWO_USERS),
        {"LOG_LEVEL": "info\n"},
        ("environment", "'LOG_LEVEL'", "line break"),
        id="log-level-with-line-break",
    ),
    pytest.param(
        _config(TWO_USERS),
        {"KRAKEN_API_URL": "http://127.0.0.1:\u0668\u0660\u0668\u0660"},
        ("environment", "'KRAKEN_API_URL'", "ASCII"),
        id="url-port-in-arabic-digits",
    ),
]


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize(("setup", "env", "fragments"), CASES)
def test_configuration_that_cannot_be_meant_is_one_line_and_exit_2(
    tmp_path: Path,
    command: str,
    setup: Callable[[Path], object],
    env: dict[str, str],
    fragments: tuple[str, ...],
) -> None:
    """Exit 2, one stderr line `copytrader[ check]: configuration error: <file>, entry .., field
    ..: why`, no traceback, nothing on stdout, no data folder made."""
    setup(tmp_path)
    outcome = _run(_copytrader(command), cwd=tmp_path, env=env)
    prefix = "copytrader: " if command == "run" else "copytrader check: "
    line = _assert_one_clear_line(outcome, *fragments)
    assert line.startswith(f"{prefix}configuration error: "), line
    assert outcome.stdout == ""
    assert not (tmp_path / "data").exists()


def test_check_json_reports_the_refusal_as_a_document(tmp_path: Path) -> None:
    """`copytrader check --json` with no users: exit 2, the reason in the JSON document too."""
    _write(tmp_path / "config" / "accounts.toml", "")
    outcome = _run(_copytrader("check", "--json"), cwd=tmp_path, env={})
    _assert_one_clear_line(outcome, "no users are configured")
    document = json.loads(outcome.stdout)
    assert document["ok"] is False
    assert document["exit_status"] == 2
    assert "no users are configured" in document["error"]
