"""Two configured accounts never share a nonce file (and so never share a nonce sequence).

Nonce files are named from the account id as DESIGN §3 says (lower-cased, `:` and spaces to `_`,
everything outside `[-a-z0-9_]` dropped), so ids like `Daivon Frazier` and `daivon_frazier`
would map to one file. The config layer prevents that by accepting only ids that the naming
leaves unchanged (lower-case letters, digits, `_`, `-`) and refusing duplicate ids: two accounts
that load have two different files. These tests pin both halves, for the TOML and the legacy
JSON format.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from copytrader.config.settings import Settings, load_settings
from copytrader.errors import ConfigError
from copytrader.nonce.store import nonce_file_name
from tests.config.conftest import write_config

# Pairs of ids that the nonce file naming maps to one file.
COLLIDING = [
    pytest.param("daivon_frazier", "Daivon Frazier", id="case-and-space"),
    pytest.param("taniagilbert", "tania.gilbert", id="dot-dropped"),
    pytest.param("ann_b", "ann:b", id="colon"),
    pytest.param("ann", "ANN", id="upper-case"),
    pytest.param("k_ann", "\u212a_ann", id="kelvin-sign-lower-cases-to-k"),
]


def _toml_users(*ids: str) -> str:
    # json.dumps writes a valid TOML basic string for any id, escapes included.
    return "".join(f"[[users]]\nid = {json.dumps(user_id)}\nenv_name = \"U{n}\"\n"
                   for n, user_id in enumerate(ids))  # fmt: skip


def _legacy_users(project: Path, *ids: str) -> None:
    folder = project / "config" / "users"
    folder.mkdir(exist_ok=True)
    entries = [{"user_id": user_id, "broker_type": "kraken"} for user_id in ids]
    (folder / "kraken.json").write_text(json.dumps(entries))


@pytest.mark.parametrize(("first", "second"), COLLIDING)
def test_ids_the_nonce_file_naming_would_merge_are_refused_in_toml(
    project: Path, first: str, second: str
) -> None:
    """The second id of each pair stops the load, naming the file, the entry and field 'id'."""
    assert nonce_file_name(f"USER:{first}") == nonce_file_name(f"USER:{second}")
    write_config(project, _toml_users(first, second))
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project, dotenv=False)
    error = caught.value
    assert (error.source, error.entry, error.field) == ("config/accounts.toml", "users[1]", "id")
    assert repr(second) in str(error)


@pytest.mark.parametrize(("first", "second"), COLLIDING)
def test_ids_the_nonce_file_naming_would_merge_are_refused_in_legacy_json(
    project: Path, first: str, second: str
) -> None:
    """The same in `config/users/*.json`, whether the other id is in the JSON or the TOML."""
    _legacy_users(project, first, second)
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project, dotenv=False)
    error = caught.value
    assert (error.source, error.entry, error.field) == (
        "config/users/kraken.json",
        "[1]",
        "user_id",
    )

    write_config(project, _toml_users(first))
    _legacy_users(project, second)
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project, dotenv=False)
    assert (caught.value.source, caught.value.field) == ("config/users/kraken.json", "user_id")


def _load_or_error(project: Path) -> Settings | ConfigError:
    try:
        return load_settings({}, cwd=project, dotenv=False)
    except ConfigError as error:
        return error


# Every ASCII character and a few whose lower case is ASCII, first and inside an id.
CANDIDATE_CHARACTERS = string.printable + "\u212a\u0130\uff21\u00c5"


def test_every_id_that_loads_names_its_nonce_file_unchanged(project: Path) -> None:
    """For each candidate id, either the config refuses it (field 'id') or its nonce file is
    `kraken_nonce_user_<id>.txt` with the id as loaded: then different ids that load have
    different files, and none is MASTER's (`kraken_nonce_master.txt`)."""
    loaded = []
    for char in CANDIDATE_CHARACTERS:
        for user_id in (f"{char}x", f"x{char}y"):
            write_config(project, _toml_users(user_id))
            settings = _load_or_error(project)
            if isinstance(settings, ConfigError):
                assert settings.field == "id", (user_id, str(settings))
                continue
            (spec,) = settings.users
            # Spaces around an id are trimmed: " x" is the account "x", as it is everywhere.
            assert spec.account_id == f"USER:{user_id.strip()}"
            assert nonce_file_name(spec.account_id) == f"kraken_nonce_user_{user_id.strip()}.txt"
            loaded.append(user_id)
    # The accepted alphabet, so that this test notices if the rule ever changes.
    accepted = {user_id[1] for user_id in loaded if len(user_id) == 3}
    assert accepted == set(string.ascii_lowercase + string.digits + "_-")


def test_loaded_accounts_have_one_nonce_file_each(project: Path) -> None:
    """The TOML users, the legacy users (one of them also in the TOML) and MASTER: one file each."""
    write_config(project, _toml_users("daivon_frazier", "tania-gilbert", "tania_gilbert"))
    _legacy_users(project, "daivon_frazier", "taniagilbert")
    settings = load_settings({}, cwd=project, dotenv=False)
    names = [nonce_file_name(spec.account_id) for spec in settings.accounts]
    assert len(names) == 5
    assert len(set(names)) == len(names), names
