"""Config: accounts.toml + environment (+ .env) parsed once into frozen objects, with errors that
name the file, the entry and the field."""

from __future__ import annotations

import dataclasses
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from copytrader.config.settings import child_process_environment, load_local_settings, load_settings
from copytrader.domain import SizingMode
from copytrader.errors import ConfigError
from copytrader.logs import configure_logging, get_logger
from tests import secretscan
from tests.config.conftest import write_config
from tests.simproc import new_secret

REPO = Path(__file__).resolve().parents[2]


def _key(tag: str) -> str:
    return secretscan.register_secret(f"{tag}-api-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEF")


def test_shipped_config_lists_the_two_existing_users() -> None:
    """config/accounts.toml ships daivon_frazier (DAIVON) and tania_gilbert (TANIA), enabled."""
    settings = load_settings({}, cwd=REPO, dotenv=False)
    users = [spec.user for spec in settings.users]
    assert [(u.id, u.name, u.env_name, u.enabled) for u in users if u] == [
        ("daivon_frazier", "Daivon Frazier", "DAIVON", True),
        ("tania_gilbert", "Tania Gilbert", "TANIA", True),
    ]
    assert settings.copy.sizing is SizingMode.EQUITY_RATIO
    assert settings.copy.max_signal_age_seconds == 60
    assert settings.copy.dry_run is False
    assert settings.api_url == "https://api.kraken.com"
    assert settings.data_dir == REPO / "data"
    assert [spec.key_var for spec in settings.users] == [
        "KRAKEN_USER_DAIVON_API_KEY",
        "KRAKEN_USER_TANIA_API_KEY",
    ]


def test_settings_are_frozen() -> None:
    """Parsed settings cannot be changed after loading."""
    settings = load_settings({}, cwd=REPO, dotenv=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.api_url = "x"  # type: ignore[misc]


def test_env_name_defaults_to_first_part_of_id(project: Path) -> None:
    """Without env_name, `john_doe` reads KRAKEN_USER_JOHN_API_KEY; an explicit env_name wins."""
    write_config(
        project,
        '[[users]]\nid = "john_doe"\n[[users]]\nid = "mary_ann_lee"\nenv_name = "MARYANN"\n',
    )
    settings = load_settings({}, cwd=project, dotenv=False)
    assert [(s.key_var, s.secret_var) for s in settings.users] == [
        ("KRAKEN_USER_JOHN_API_KEY", "KRAKEN_USER_JOHN_API_SECRET"),
        ("KRAKEN_USER_MARYANN_API_KEY", "KRAKEN_USER_MARYANN_API_SECRET"),
    ]


def test_missing_credentials_name_both_variables(project: Path) -> None:
    """An account with no variables is not an error: its spec names the two variables to set."""
    settings = load_settings({}, cwd=project, dotenv=False)
    tania = settings.users[1]
    assert tania.credentials is None
    assert tania.credentials_error is None
    assert tania.missing_vars == ("KRAKEN_USER_TANIA_API_KEY", "KRAKEN_USER_TANIA_API_SECRET")
    assert settings.master.missing_vars == ("KRAKEN_MASTER_API_KEY", "KRAKEN_MASTER_API_SECRET")


def test_credentials_are_loaded_and_print_as_secret(project: Path) -> None:
    """Set variables become ApiCredentials; no repr of the settings shows the secret or full key."""
    key, secret = _key("daivon"), new_secret()
    settings = load_settings(
        {"KRAKEN_USER_DAIVON_API_KEY": key, "KRAKEN_USER_DAIVON_API_SECRET": secret},
        cwd=project,
        dotenv=False,
    )
    creds = settings.users[0].credentials
    assert creds is not None
    assert creds.key == key
    assert creds.secret.get_secret_value() == secret
    text = repr(settings) + str(settings)
    assert "<SECRET>" in text
    assert secret not in text
    assert key not in text


def test_loaded_secrets_are_redacted_from_logs(project: Path) -> None:
    """Config registers every loaded key and secret with the log redaction processor."""
    key, secret = _key("tania"), new_secret()
    load_settings(
        {"KRAKEN_USER_TANIA_API_KEY": key, "KRAKEN_USER_TANIA_API_SECRET": secret},
        cwd=project,
        dotenv=False,
    )
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    get_logger().info("oops", message=f"leaked {key} and {secret[:50]}", detail=secret)
    line = json.loads(sink.getvalue())
    assert key not in sink.getvalue()
    assert secret[:50] not in sink.getvalue()
    assert line["detail"] == "<REDACTED>"


def test_dotenv_fills_but_never_overrides(project: Path) -> None:
    """A .env value is used only when the real environment does not set that variable."""
    (project / ".env").write_text("LOG_LEVEL=debug\nKRAKEN_API_URL=http://127.0.0.1:9\n")
    settings = load_settings({"KRAKEN_API_URL": "http://127.0.0.1:5"}, cwd=project)
    assert settings.log_level == "debug"
    assert settings.api_url == "http://127.0.0.1:5"
    assert settings.dotenv_path == project / ".env"


def test_legacy_master_variables_are_a_fallback(project: Path) -> None:
    """KRAKEN_API_KEY/SECRET serve MASTER only when the KRAKEN_MASTER_* names are unset."""
    legacy_key, legacy_secret = _key("legacy"), new_secret()
    env = {"KRAKEN_API_KEY": legacy_key, "KRAKEN_API_SECRET": legacy_secret}
    settings = load_settings(env, cwd=project, dotenv=False)
    assert settings.master.key_var == "KRAKEN_API_KEY"
    assert settings.master.credentials is not None
    assert settings.master.credentials.key == legacy_key
    assert any("legacy" in note for note in settings.notes)

    master_key, master_secret = _key("master"), new_secret()
    env |= {"KRAKEN_MASTER_API_KEY": master_key, "KRAKEN_MASTER_API_SECRET": master_secret}
    settings = load_settings(env, cwd=project, dotenv=False)
    assert settings.master.key_var == "KRAKEN_MASTER_API_KEY"
    assert settings.master.credentials is not None
    assert settings.master.credentials.key == master_key


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "data"),
        ({"RAILWAY_VOLUME_MOUNT_PATH": "/vol"}, "/vol"),
        ({"RAILWAY_VOLUME_MOUNT_PATH": "/vol", "COPYTRADER_DATA_DIR": "mine"}, "mine"),
    ],
)
def test_data_dir_precedence(project: Path, env: dict[str, str], expected: str) -> None:
    """COPYTRADER_DATA_DIR, else RAILWAY_VOLUME_MOUNT_PATH, else ./data (relative to cwd)."""
    settings = load_settings(env, cwd=project, dotenv=False)
    assert settings.data_dir == project / expected


def test_local_settings_match_and_skip_the_config_file(project: Path) -> None:
    """load_local_settings gives load_settings' data folder and logging, without the config file."""
    env = {"COPYTRADER_DATA_DIR": "mine", "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"}
    settings = load_settings(env, cwd=project, dotenv=False)
    local = load_local_settings(env, cwd=project, dotenv=False)
    assert (local.data_dir, local.log_level, local.log_format) == (
        settings.data_dir,
        settings.log_level,
        settings.log_format,
    )
    write_config(project, "[[users]\nid = 1\n")  # not TOML: load_settings would refuse it
    assert load_local_settings(env, cwd=project, dotenv=False) == local
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_local_settings({"LOG_LEVEL": "loud"}, cwd=project, dotenv=False)


def test_switches_from_environment(project: Path) -> None:
    """COPYTRADER_DRY_RUN overrides the file's dry_run; COPYTRADER_KILL_SWITCH is exposed."""
    settings = load_settings(
        {"COPYTRADER_DRY_RUN": "true", "COPYTRADER_KILL_SWITCH": "1", "LOG_FORMAT": "console"},
        cwd=project,
        dotenv=False,
    )
    assert settings.copy.dry_run is True
    assert settings.kill_switch_env is True
    assert settings.log_format == "console"


def test_config_path_from_environment(project: Path) -> None:
    """COPYTRADER_CONFIG points at another file."""
    other = project / "other.toml"
    other.write_text('[[users]]\nid = "solo"\n')
    settings = load_settings({"COPYTRADER_CONFIG": str(other)}, cwd=project, dotenv=False)
    assert [spec.account_id for spec in settings.users] == ["USER:solo"]


def test_legacy_json_users_are_read(project: Path) -> None:
    """config/users/*.json adds Kraken users, ignores other brokers, and defers to the TOML."""
    users_dir = project / "config" / "users"
    users_dir.mkdir()
    (users_dir / "retail_kraken.json").write_text(
        json.dumps(
            [
                {
                    "user_id": "jane_smith",
                    "name": "Jane Smith",
                    "account_type": "retail",
                    "broker_type": "kraken",
                    "enabled": True,
                },
                {
                    "user_id": "tania_gilbert",
                    "name": "Tania",
                    "account_type": "retail",
                    "broker_type": "kraken",
                    "enabled": False,
                },
                {"user_id": "bob", "broker_type": "alpaca", "whatever": 1},
            ]
        )
    )
    settings = load_settings({}, cwd=project, dotenv=False)
    ids = [spec.account_id for spec in settings.users]
    assert ids == ["USER:daivon_frazier", "USER:tania_gilbert", "USER:jane_smith"]
    assert settings.users[1].display_name == "Tania Gilbert"
    assert settings.users[2].key_var == "KRAKEN_USER_JANE_API_KEY"
    assert any("tania_gilbert" in note for note in settings.notes)


def test_user_sizing_fields_are_decimals(project: Path) -> None:
    """Money-like fields are Decimal, parsed from strings, with their defaults."""
    settings = load_settings({}, cwd=project, dotenv=False)
    daivon, tania = (spec.user for spec in settings.users)
    assert daivon is not None
    assert tania is not None
    assert daivon.max_order_fraction == Decimal("0.10")
    assert tania.multiplier == Decimal(1)
    assert tania.max_order_fraction is None


BAD_CONFIGS = [
    pytest.param(
        '[[users]]\nid = "a_b"\nmultiplyer = "2"\n',
        ("config/accounts.toml", "users[0] (a_b)", "'multiplyer'", "unknown key"),
        id="unknown-user-key",
    ),
    pytest.param(
        "[copy]\nstagger = 1\n",
        ("config/accounts.toml", "[copy]", "'stagger'", "unknown key"),
        id="unknown-copy-key",
    ),
    pytest.param(
        '[master]\nname = "x"\n',
        ("config/accounts.toml", "'master'", "unknown key"),
        id="unknown-table",
    ),
    pytest.param(
        '[[users]]\nid = "a_b"\nmax_notional = "12,5"\n',
        ("users[0] (a_b)", "'max_notional'", "not a decimal"),
        id="bad-decimal",
    ),
    pytest.param(
        '[[users]]\nid = "a_b"\nmultiplier = 0.1\n',
        ("users[0] (a_b)", "'multiplier'", 'multiplier = "0.1"'),
        id="float-decimal",
    ),
    pytest.param(
        '[[users]]\nid = "a_b"\nmax_order_fraction = "-1"\n',
        ("'max_order_fraction'", "positive"),
        id="negative-decimal",
    ),
    pytest.param(
        '[[users]]\nid = "a_b"\n[[users]]\nid = "a_b"\n',
        ("users[1] (a_b)", "'id'", "duplicate user id", "users[0] (a_b)"),
        id="duplicate-id",
    ),
    pytest.param(
        '[[users]]\nid = "john_doe"\n[[users]]\nid = "john_smith"\n',
        ("users[1] (john_smith)", "'env_name'", "JOHN", "users[0] (john_doe)"),
        id="shared-env-name",
    ),
    pytest.param(
        '[[users]]\nid = "Bad Id"\n',
        ("users[0]", "'id'", "lower-case"),
        id="bad-id",
    ),
    pytest.param(
        '[copy]\nsizing = "kelly"\n',
        ("[copy]", "'sizing'", "equity_ratio"),
        id="bad-sizing",
    ),
    pytest.param(
        '[[users]]\nid = "a_b"\nenabled = "yes"\n',
        ("users[0] (a_b)", "'enabled'", "true or false"),
        id="bad-bool",
    ),
    pytest.param(
        '[copy]\nmaster_tier = "gold"\n',
        ("[copy]", "'master_tier'", "starter"),
        id="bad-tier",
    ),
    pytest.param(
        '[copy]\nsizing = "fixed_notional"\n[[users]]\nid = "a_b"\n',
        ("users[0] (a_b)", "'fixed_notional'", "needs fixed_notional"),
        id="fixed-notional-missing",
    ),
    pytest.param(
        "[[users]\nid = 1\n",
        ("config/accounts.toml", "not valid TOML"),
        id="not-toml",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_CONFIGS)
def test_config_errors_name_file_entry_and_field(
    project: Path, text: str, fragments: tuple[str, ...]
) -> None:
    """Each mistake raises ConfigError whose message points at the file, the entry and the field."""
    write_config(project, text)
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project, dotenv=False)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_legacy_json_errors_name_file_entry_and_field(project: Path) -> None:
    """An unknown key in a legacy Kraken entry names the JSON file, the entry and the key."""
    users_dir = project / "config" / "users"
    users_dir.mkdir()
    (users_dir / "kraken.json").write_text(
        json.dumps([{"user_id": "zed_x", "broker_type": "kraken", "enabeld": True}])
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project, dotenv=False)
    message = str(caught.value)
    assert "config/users/kraken.json" in message
    assert "[0] (zed_x)" in message
    assert "'enabeld'" in message


def test_missing_config_file_says_how_to_point_at_it(project: Path) -> None:
    """A config path that does not exist names the path and COPYTRADER_CONFIG."""
    with pytest.raises(ConfigError, match=r"nowhere\.toml.*COPYTRADER_CONFIG"):
        load_settings({"COPYTRADER_CONFIG": "nowhere.toml"}, cwd=project, dotenv=False)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"KRAKEN_API_URL": "api.kraken.com"}, "KRAKEN_API_URL"),
        ({"COPYTRADER_DRY_RUN": "maybe"}, "COPYTRADER_DRY_RUN"),
    ],
)
def test_bad_global_variables_name_the_variable(
    project: Path, env: dict[str, str], field: str
) -> None:
    """A bad global variable is a ConfigError naming it and where it came from."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env, cwd=project, dotenv=False)
    assert caught.value.field == field
    assert caught.value.source == "environment"


def test_bad_variable_in_dotenv_names_the_dotenv_file(project: Path) -> None:
    """A bad value that came from .env is reported as coming from .env."""
    (project / ".env").write_text("LOG_LEVEL=loud\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project)
    assert caught.value.source == ".env"


@pytest.mark.parametrize(
    ("key_suffix", "secret_kind", "bad_var", "phrase"),
    [
        (" ", "good", "KRAKEN_USER_TANIA_API_KEY", "spaces or a line break around it"),
        ("", "newline", "KRAKEN_USER_TANIA_API_SECRET", "spaces or a line break around it"),
        ("", "not-base64", "KRAKEN_USER_TANIA_API_SECRET", "not valid base64"),
    ],
)
def test_unusable_credentials_fail_only_that_account(
    project: Path, key_suffix: str, secret_kind: str, bad_var: str, phrase: str
) -> None:
    """Spaces around a key or a non-base64 secret mark that account, naming the variable."""
    good_secret = new_secret()
    secret = {
        "good": good_secret,
        "newline": good_secret + "\n",
        "not-base64": "not*base64!at-all",
    }[secret_kind]
    daivon_key, daivon_secret = _key("daivon"), new_secret()
    settings = load_settings(
        {
            "KRAKEN_USER_TANIA_API_KEY": _key("tania") + key_suffix,
            "KRAKEN_USER_TANIA_API_SECRET": secret,
            "KRAKEN_USER_DAIVON_API_KEY": daivon_key,
            "KRAKEN_USER_DAIVON_API_SECRET": daivon_secret,
        },
        cwd=project,
        dotenv=False,
    )
    daivon, tania = settings.users
    assert daivon.credentials is not None
    assert tania.credentials is None
    error = tania.credentials_error
    assert error is not None
    assert (error.source, error.entry, error.field) == (
        "environment",
        "USER:tania_gilbert",
        bad_var,
    )
    assert phrase in str(error)
    assert good_secret not in str(error)


def test_child_process_environment_drops_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child processes get the real environment minus the named prefixes, values untouched."""
    monkeypatch.setenv("KRAKEN_MASTER_API_KEY", "not-for-children")
    monkeypatch.setenv("COPYTRADER_TEST_KEEP", "kept value")
    env = child_process_environment(drop_prefixes=("KRAKEN_",))
    assert "KRAKEN_MASTER_API_KEY" not in env
    assert env["COPYTRADER_TEST_KEEP"] == "kept value"
    assert env["PATH"]
