"""The configuration refuses every value it cannot mean, with one line naming the file (or the
variable), the entry and the field: numbers out of bounds or not plain ASCII decimals, text
with control or invisible characters, no user to copy to, and files no parser should be fed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from copytrader.config.settings import Settings, load_local_settings, load_settings
from copytrader.errors import ConfigError
from tests.config.conftest import write_config
from tests.simproc import new_secret

CONFIG = "config/accounts.toml"
LEGACY = "config/users/kraken.json"


def _load(project: Path, env: dict[str, str] | None = None) -> Settings:
    return load_settings(env or {}, cwd=project, dotenv=False)


def _refused(project: Path, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _load(project, env)
    error = caught.value
    assert len(str(error).splitlines()) == 1, repr(str(error))
    return error


def _user(field_line: str, *, user_id: str = "a_b") -> str:
    return f'[[users]]\nid = "{user_id}"\n{field_line}\n'


# (a user's field as TOML, the field named, a phrase of the message)
BAD_USER_VALUES = [
    pytest.param('multiplier = "0"', "multiplier", "positive", id="multiplier-zero"),
    pytest.param('multiplier = "-2"', "multiplier", "positive", id="multiplier-negative"),
    pytest.param('multiplier = "100.00000001"', "multiplier", "at most 100", id="multiplier-101"),
    pytest.param("multiplier = 1000", "multiplier", "at most 100", id="multiplier-int-too-big"),
    pytest.param('multiplier = "1e999999"', "multiplier", "without an exponent", id="exp-huge"),
    pytest.param('multiplier = "1E+1"', "multiplier", "without an exponent", id="exp-small"),
    pytest.param('multiplier = "NaN"', "multiplier", "not a decimal", id="nan-string"),
    pytest.param('multiplier = "Infinity"', "multiplier", "not a decimal", id="inf-string"),
    pytest.param('multiplier = "-Infinity"', "multiplier", "not a decimal", id="neg-inf-string"),
    pytest.param("multiplier = nan", "multiplier", "decimal string", id="nan-toml-float"),
    pytest.param("multiplier = inf", "multiplier", "decimal string", id="inf-toml-float"),
    pytest.param('multiplier = "\u0661\u0662"', "multiplier", "ASCII digits", id="arabic-digits"),
    pytest.param('multiplier = "\uff12"', "multiplier", "ASCII digits", id="full-width-digit"),
    pytest.param('multiplier = "\u0968.5"', "multiplier", "ASCII digits", id="devanagari-digit"),
    pytest.param('multiplier = "1_0"', "multiplier", "not a decimal", id="underscore"),
    pytest.param('multiplier = "0.000000001"', "multiplier", "8 decimal places", id="9-places"),
    pytest.param('multiplier = "00000000000000000000000001"', "multiplier", "too long", id="long"),
    pytest.param('multiplier = " 1"', "multiplier", "spaces around it", id="decimal-spaces"),
    pytest.param('multiplier = "1\\n"', "multiplier", "spaces around it", id="decimal-newline"),
    pytest.param('multiplier = "1.5.0"', "multiplier", "not a decimal", id="two-points"),
    pytest.param('multiplier = ""', "multiplier", "not a decimal", id="empty-decimal"),
    pytest.param("multiplier = true", "multiplier", "decimal string", id="bool-decimal"),
    pytest.param("multiplier = [1]", "multiplier", "an array", id="array-decimal"),
    pytest.param('max_order_fraction = "1.01"', "max_order_fraction", "at most 1", id="frac>1"),
    pytest.param('max_order_fraction = "0"', "max_order_fraction", "positive", id="frac-zero"),
    pytest.param('max_notional = "1000000000.01"', "max_notional", "at most", id="notional-big"),
    pytest.param('fixed_notional = "-5"', "fixed_notional", "positive", id="fixed-negative"),
    pytest.param('name = "Daivon\\nFrazier"', "name", "line break (U+000A", id="name-newline"),
    pytest.param('name = "Daivon\\rFrazier"', "name", "line break (U+000D", id="name-cr"),
    pytest.param('name = "Dai\\u0000von"', "name", "control character (U+0000", id="name-nul"),
    pytest.param('name = "Dai\\u001bvon"', "name", "control character (U+001B", id="name-esc"),
    pytest.param('name = "Dai\\tvon"', "name", "control character (U+0009", id="name-tab"),
    pytest.param('name = "\\u202eFrazier"', "name", "invisible", id="name-bidi-override"),
    pytest.param('name = "Dai\\u200bvon"', "name", "invisible", id="name-zero-width"),
    pytest.param('name = "Daivon\\u2028"', "name", "line break (U+2028", id="name-line-sep"),
    pytest.param('name = "Daivon\\u0085"', "name", "line break (U+0085", id="name-nel"),
    pytest.param('name = " Daivon"', "name", "spaces around it", id="name-leading-space"),
    pytest.param('name = "Daivon\\u00a0"', "name", "spaces around it", id="name-nbsp"),
    pytest.param('name = ""', "name", "empty", id="name-empty"),
    pytest.param('name = "   "', "name", "empty", id="name-blank"),
    pytest.param(f'name = "{"x" * 101}"', "name", "at most 100", id="name-too-long"),
    pytest.param("name = 7", "name", "must be a string", id="name-number"),
    pytest.param('env_name = "DAIVON\\n"', "env_name", "line break", id="env-newline"),
    pytest.param('env_name = "DAIVON "', "env_name", "spaces around it", id="env-space"),
    pytest.param('env_name = "\uff24\uff21\uff29"', "env_name", "ASCII", id="env-full-width"),
    pytest.param('env_name = "D\u0661"', "env_name", "ASCII", id="env-arabic-digit"),
    pytest.param('env_name = "\u0130X"', "env_name", "ASCII", id="env-dotted-capital-i"),
    pytest.param('tier = "pro\\n"', "tier", "line break", id="tier-newline"),
    pytest.param('tier = " pro"', "tier", "spaces around it", id="tier-space"),
    pytest.param("enabled = 1", "enabled", "true or false", id="enabled-number"),
]


@pytest.mark.parametrize(("line", "field", "phrase"), BAD_USER_VALUES)
def test_bad_user_values_are_refused_naming_file_entry_and_field(
    project: Path, line: str, field: str, phrase: str
) -> None:
    """Each value stops the load with one line naming config/accounts.toml, the user, the field."""
    write_config(project, _user(line))
    error = _refused(project)
    assert (error.source, error.entry, error.field) == (CONFIG, "users[0] (a_b)", field)
    assert phrase in str(error)


@pytest.mark.parametrize(
    ("user_id", "phrase"),
    [
        pytest.param("daivon\\n", "line break", id="newline"),
        pytest.param(" daivon", "spaces around it", id="leading-space"),
        pytest.param("daivon ", "spaces around it", id="trailing-space"),
        pytest.param("dai\\tvon", "control character", id="tab"),
        pytest.param("\u0661\u0662", "ASCII", id="arabic-digits"),
        pytest.param("\uff44ai", "ASCII", id="full-width-letter"),
        pytest.param("", "empty", id="empty"),
        pytest.param("a" * 65, "at most 64", id="too-long"),
    ],
)
def test_bad_ids_are_refused(project: Path, user_id: str, phrase: str) -> None:
    """An id is 1-64 ASCII lower-case letters, digits, '_' and '-', exactly as written."""
    write_config(project, f'[[users]]\nid = "{user_id}"\n')
    error = _refused(project)
    assert (error.source, error.entry, error.field) == (CONFIG, "users[0]", "id")
    assert phrase in str(error)


@pytest.mark.parametrize(
    ("line", "field", "phrase"),
    [
        pytest.param("connect_stagger_seconds = inf", "connect_stagger_seconds", "between", id="i"),
        pytest.param("connect_stagger_seconds = nan", "connect_stagger_seconds", "between", id="n"),
        pytest.param("connect_stagger_seconds = -1", "connect_stagger_seconds", "between", id="-"),
        pytest.param("connect_stagger_seconds = 61", "connect_stagger_seconds", "between", id="61"),
        pytest.param('connect_stagger_seconds = "1"', "connect_stagger_seconds", "number", id="s"),
        pytest.param("max_signal_age_seconds = 0", "max_signal_age_seconds", "between", id="age0"),
        pytest.param("max_signal_age_seconds = 1e9", "max_signal_age_seconds", "between", id="ag"),
        pytest.param("poll_interval_seconds = -inf", "poll_interval_seconds", "between", id="pi"),
        pytest.param("poll_interval_seconds = 0.001", "poll_interval_seconds", "between", id="pf"),
        pytest.param('sizing = "multiplier\\n"', "sizing", "line break", id="sizing-newline"),
        pytest.param('sizing = ""', "sizing", "empty", id="sizing-empty"),
        pytest.param('equity_asset = "ZUSD\\n"', "equity_asset", "line break", id="asset-newline"),
        pytest.param('equity_asset = "\uff3aUSD"', "equity_asset", "asset name", id="asset-wide"),
    ],
)
def test_bad_copy_settings_are_refused(project: Path, line: str, field: str, phrase: str) -> None:
    """[copy] numbers are finite and in range; its words are plain ASCII, exactly as written."""
    write_config(project, f"[copy]\n{line}\n" + _user(""))
    error = _refused(project)
    assert (error.source, error.entry, error.field) == (CONFIG, "[copy]", field)
    assert phrase in str(error)


def test_values_at_the_bounds_load(project: Path) -> None:
    """The documented bounds are inclusive where they say so; integers are accepted as decimals."""
    write_config(
        project,
        "[copy]\nconnect_stagger_seconds = 60\nmax_signal_age_seconds = 86400\n"
        "poll_interval_seconds = 0.05\n"
        '[[users]]\nid = "a_b"\nname = "Zoë Ünal-Østergård"\nmultiplier = "100"\n'
        'max_order_fraction = "1"\nmax_notional = 1000000000\nfixed_notional = "0.00000001"\n',
    )
    settings = _load(project)
    (spec,) = settings.users
    assert spec.user is not None
    assert spec.display_name == "Zoë Ünal-Østergård"
    assert spec.user.multiplier == Decimal(100)
    assert spec.user.max_order_fraction == Decimal(1)
    assert spec.user.max_notional == Decimal(1_000_000_000)
    assert spec.user.fixed_notional == Decimal("0.00000001")
    assert settings.copy.connect_stagger_seconds == 60
    assert settings.copy.poll_interval_seconds == 0.05


def test_a_config_without_users_is_refused(project: Path) -> None:
    """No [[users]] at all: nothing would be copied, so the load stops and says what to add."""
    write_config(project, '[copy]\nsizing = "equity_ratio"\n')
    error = _refused(project)
    assert (error.source, error.entry, error.field) == (CONFIG, "", "users")
    assert "no users are configured" in str(error)


def test_a_config_whose_users_are_all_disabled_is_refused(project: Path) -> None:
    """Users exist but none is enabled (in the TOML or the legacy JSON): refused, listing them."""
    write_config(project, _user("enabled = false", user_id="daivon_frazier"))
    _legacy(project, [{"user_id": "tania_gilbert", "broker_type": "kraken", "enabled": False}])
    error = _refused(project)
    assert (error.source, error.field) == (CONFIG, "enabled")
    assert "every user is disabled (daivon_frazier, tania_gilbert)" in str(error)

    _legacy(project, [{"user_id": "tania_gilbert", "broker_type": "kraken"}])
    assert [spec.account_id for spec in _load(project).enabled_users] == ["USER:tania_gilbert"]


def test_other_brokers_do_not_count_as_users(project: Path) -> None:
    """A legacy file whose entries are all for other brokers adds nobody to copy to."""
    write_config(project, "")
    _legacy(project, [{"user_id": "bob", "broker_type": "alpaca"}])
    assert _refused(project).field == "users"


def _legacy(project: Path, entries: object) -> Path:
    return _legacy_text(project, json.dumps(entries))


def _legacy_text(project: Path, text: str) -> Path:
    folder = project / "config" / "users"
    folder.mkdir(exist_ok=True)
    path = folder / "kraken.json"
    path.write_text(text, encoding="utf-8")
    return path


DEEP = 100_000


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        pytest.param("[" * DEEP + "]" * DEEP, "nested too deeply", id="deep-array"),
        pytest.param(
            '[{"user_id": "x", "broker_type": "alpaca", "n": ' + "[" * DEEP + "]" * DEEP + "}]",
            "nested too deeply",
            id="deep-inside-an-entry",
        ),
        pytest.param(
            '{"user_id": "x"}', "must be a JSON array of user objects (got an object)", id="object"
        ),
        pytest.param('"users"', "must be a JSON array of user objects (got a string)", id="str"),
        pytest.param("null", "must be a JSON array of user objects (got null)", id="null"),
        pytest.param("", "not valid JSON", id="empty-file"),
        pytest.param('[{"user_id": "x",}]', "not valid JSON", id="trailing-comma"),
        pytest.param('[{"user_id": NaN}]', "NaN is not a JSON value", id="nan"),
        pytest.param('[{"n": -Infinity}]', "-Infinity is not a JSON value", id="infinity"),
        pytest.param('[{"n": ' + "9" * 5000 + "}]", "not valid JSON", id="huge-integer"),
        pytest.param(
            '[{"user_id": "zed_x", "broker_type": "kraken", "enabled": true, "enabled": false}]',
            "'enabled' appears twice",
            id="duplicate-key",
        ),
    ],
)
def test_legacy_files_no_parser_should_be_fed_are_refused(
    project: Path, text: str, phrase: str
) -> None:
    """Nesting deep enough to exhaust Python's parser, non-arrays, NaN, duplicate keys: each is
    a ConfigError naming the file, never a RecursionError or a silently chosen value."""
    _legacy_text(project, text)
    error = _refused(project)
    assert (error.source, error.entry, error.field) == (LEGACY, "", "")
    assert phrase in str(error)


@pytest.mark.parametrize(
    ("entries", "entry", "field", "phrase"),
    [
        pytest.param([1], "[0]", "", "must be a JSON object (got a number)", id="not-object"),
        pytest.param([[]], "[0]", "", "must be a JSON object (got an array)", id="array-entry"),
        pytest.param([{"user_id": "zed_x"}], "[0]", "broker_type", "required", id="no-broker"),
        pytest.param(
            [{"user_id": "zed_x\n", "broker_type": "kraken"}],
            "[0]",
            "user_id",
            "line break",
            id="id-newline",
        ),
        pytest.param(
            [{"user_id": "zed_x", "broker_type": "kraken", "name": "Zed\u202e"}],
            "[0] (zed_x)",
            "name",
            "invisible",
            id="name-bidi",
        ),
        pytest.param(
            [{"user_id": "zed_x", "broker_type": "kraken", "name": ["a"]}],
            "[0] (zed_x)",
            "name",
            "an array",
            id="name-array",
        ),
        pytest.param(
            [{"user_id": "zed_x", "broker_type": "kraken", "enabled": "yes"}],
            "[0] (zed_x)",
            "enabled",
            "true or false",
            id="enabled-string",
        ),
        pytest.param(
            [{"user_id": "zed_x", "broker_type": "kraken", "description": 5}],
            "[0] (zed_x)",
            "description",
            "a string",
            id="description-number",
        ),
    ],
)
def test_bad_legacy_entries_are_refused(
    project: Path, entries: object, entry: str, field: str, phrase: str
) -> None:
    """A bad value in a legacy entry names the JSON file, the entry and the field."""
    _legacy(project, entries)
    error = _refused(project)
    assert (error.source, error.entry, error.field) == (LEGACY, entry, field)
    assert phrase in str(error)


def test_legacy_entries_with_a_byte_order_mark_and_empty_description_load(project: Path) -> None:
    """A file saved with a UTF-8 byte-order mark (Windows editors) and an empty description
    are meant: they load."""
    write_config(project, "")
    entries = [{"user_id": "zed_x", "broker_type": "kraken", "description": ""}]
    path = _legacy(project, entries)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert [spec.account_id for spec in _load(project).users] == ["USER:zed_x"]


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        pytest.param(
            b'[{"user_id": "\xff\xfe"}]',
            "not UTF-8 text (byte 0xff at offset 14)",
            id="invalid-utf8",
        ),
        pytest.param(b"[" + b" " * (1024 * 1024) + b"]", "larger than 1024 KiB", id="huge"),
    ],
)
def test_unreadable_legacy_files_are_refused(project: Path, content: bytes, phrase: str) -> None:
    """Bytes that are not UTF-8, or a file too large to be a user list, name the file."""
    _legacy_text(project, "").write_bytes(content)
    error = _refused(project)
    assert (error.source, error.field) == (LEGACY, "")
    assert phrase in str(error)


def test_legacy_folder_entries_that_are_not_files_are_refused(project: Path) -> None:
    """A folder named like a user list, or a file name with a line break, is named, on one
    line."""
    folder = project / "config" / "users"
    (folder / "kraken.json").mkdir(parents=True)
    error = _refused(project)
    assert (error.source, error.field) == (LEGACY, "")
    assert "not a regular file" in str(error)
    (folder / "kraken.json").rmdir()
    (folder / "bad\nname.json").write_text("[]")
    error = _refused(project)
    assert error.source == "config/users"
    assert "'bad\\nname.json'" in str(error)


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        pytest.param(b"a = " + b"[" * DEEP + b"]" * DEEP, "nested too deeply", id="deep"),
        pytest.param(b'[[users]]\nid = "\xc3"\n', "not UTF-8 text (byte 0xc3", id="bad-utf8"),
        pytest.param(b"#" * (1024 * 1024 + 1), "larger than 1024 KiB", id="huge"),
    ],
)
def test_unreadable_config_files_are_refused(project: Path, content: bytes, phrase: str) -> None:
    """The TOML file gets the same protection as the JSON ones."""
    (project / "config" / "accounts.toml").write_bytes(content)
    error = _refused(project)
    assert (error.source, error.field) == (CONFIG, "")
    assert phrase in str(error)


def test_config_path_that_is_a_folder_is_refused(project: Path) -> None:
    """COPYTRADER_CONFIG naming a folder says so (not 'permission denied' or a traceback)."""
    error = _refused(project, {"COPYTRADER_CONFIG": "config"})
    assert (error.source, error.field) == ("config", "")
    assert "not a regular file" in str(error)


def test_config_with_a_byte_order_mark_loads(project: Path) -> None:
    """A UTF-8 byte-order mark before the TOML is not an error."""
    path = project / "config" / "accounts.toml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(_load(project).users) == 2


PASSWORD = "hunter2-do-not-print"

BAD_VARIABLES = [
    pytest.param("LOG_LEVEL", "info\n", "line break", id="log-level-newline"),
    pytest.param("LOG_LEVEL", "in\x00fo", "control character (U+0000", id="log-level-nul"),
    pytest.param("LOG_FORMAT", "json\r", "line break", id="log-format-cr"),
    pytest.param("COPYTRADER_CONFIG", "config/accounts.toml\n", "line break", id="config-nl"),
    pytest.param("COPYTRADER_DATA_DIR", "data\x1b[31m", "control character", id="data-dir-esc"),
    pytest.param("RAILWAY_VOLUME_MOUNT_PATH", "/vol\u2028", "line break", id="volume-sep"),
    pytest.param("RAILWAY_DEPLOYMENT_ID", "dep\nfake log line", "line break", id="deploy-id"),
    pytest.param("COPYTRADER_DRY_RUN", "1\t", "control character", id="dry-run-tab"),
    pytest.param("COPYTRADER_DRY_RUN", "\uff11", "true or false", id="dry-run-full-width-1"),
    pytest.param("COPYTRADER_KILL_SWITCH", "\u0661", "true or false", id="kill-arabic-1"),
    pytest.param("KRAKEN_API_URL", "http://127.0.0.1:\u0668\u0660", "ASCII", id="url-port-arab"),
    pytest.param("KRAKEN_API_URL", "http://127.0.0.1:\uff18\uff10", "ASCII", id="url-port-wide"),
    pytest.param("KRAKEN_API_URL", "http://127.0.0.1:99999", "port", id="url-port-too-big"),
    pytest.param("KRAKEN_API_URL", "http://127.0.0.1:0", "port", id="url-port-zero"),
    pytest.param("KRAKEN_API_URL", "http://127.0.0.1:+80", "port", id="url-port-sign"),
    pytest.param("KRAKEN_API_URL", "http://[::1", "cannot be read", id="url-broken-ipv6"),
    pytest.param("KRAKEN_API_URL", f"https://me:{PASSWORD}@api.kraken.com", "password", id="pw"),
    pytest.param("KRAKEN_API_URL", "https://api.kraken.com/?x=1", "query", id="url-query"),
    pytest.param("KRAKEN_API_URL", "https://kräken.com", "ASCII", id="url-non-ascii-host"),
    pytest.param("KRAKEN_API_URL", "https://api.kraken.com\n", "line break", id="url-newline"),
    pytest.param("KRAKEN_API_URL", "https://api kraken.com", "no spaces", id="url-space"),
    pytest.param("KRAKEN_API_URL", "https://", "http(s) base URL", id="url-no-host"),
]


@pytest.mark.parametrize(("name", "value", "phrase"), BAD_VARIABLES)
def test_bad_variables_are_refused_naming_the_variable(
    project: Path, name: str, value: str, phrase: str
) -> None:
    """A control character, another script's digit, a bad port or a password in a URL: a
    ConfigError naming the variable and where it came from, without repeating a URL."""
    error = _refused(project, {name: value})
    assert (error.source, error.field) == ("environment", name)
    assert phrase in str(error)
    assert PASSWORD not in str(error)
    if name == "KRAKEN_API_URL":
        assert "127.0.0.1" not in str(error)


def test_local_settings_refuse_control_characters_too(project: Path) -> None:
    """Paper mode and the healthcheck read the same variables the same way."""
    with pytest.raises(ConfigError) as caught:
        load_local_settings({"COPYTRADER_DATA_DIR": "da\nta"}, cwd=project, dotenv=False)
    assert caught.value.field == "COPYTRADER_DATA_DIR"


def test_spaces_around_plain_variables_are_still_trimmed(project: Path) -> None:
    """Ordinary spaces around a non-secret value are meant as nothing: trimmed, not refused."""
    settings = _load(project, {"LOG_LEVEL": " debug ", "KRAKEN_API_URL": " http://127.0.0.1:5 "})
    assert settings.log_level == "debug"
    assert settings.api_url == "http://127.0.0.1:5"


def test_bad_values_in_dotenv_name_the_dotenv_file(project: Path) -> None:
    """A control character that came from .env, or a .env that is not UTF-8, names .env."""
    (project / ".env").write_text('LOG_LEVEL="info\\n"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project)
    assert (caught.value.source, caught.value.field) == (".env", "LOG_LEVEL")
    (project / ".env").write_bytes(b"LOG_LEVEL=\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=project)
    assert caught.value.source == ".env"
    assert "not UTF-8" in str(caught.value)


@pytest.mark.parametrize(
    ("which", "bad", "phrase"),
    [
        pytest.param("key", "\x01", "control or non-ASCII", id="key-control"),
        pytest.param("key", "\u00e9", "control or non-ASCII", id="key-non-ascii"),
        pytest.param("key", "\u200b", "control or non-ASCII", id="key-zero-width"),
        pytest.param("secret", "\u0661", "control or non-ASCII", id="secret-arabic-digit"),
        pytest.param("secret", "\x7f", "control or non-ASCII", id="secret-delete"),
    ],
)
def test_credentials_with_characters_no_key_has_fail_only_that_account(
    project: Path, which: str, bad: str, phrase: str
) -> None:
    """Only that account is marked, naming the variable; the value is never in the message."""
    key = "tania-key-0123456789abcdefghijklmnopqrstuvwxyz"
    secret = new_secret()
    if which == "key":
        key = key[:10] + bad + key[10:]
    else:
        secret = secret[:10] + bad + secret[10:]
    settings = _load(
        project,
        {
            "KRAKEN_USER_TANIA_API_KEY": key,
            "KRAKEN_USER_TANIA_API_SECRET": secret,
            "KRAKEN_USER_DAIVON_API_KEY": "daivon-key-0123456789abcdefghijklmnopqrstuvw",
            "KRAKEN_USER_DAIVON_API_SECRET": new_secret(),
        },
    )
    daivon, tania = settings.users
    assert daivon.credentials is not None
    assert tania.credentials is None
    error = tania.credentials_error
    assert error is not None
    assert error.field == f"KRAKEN_USER_TANIA_API_{which.upper()}"
    assert phrase in str(error)
    assert key[:10] not in str(error)
    assert secret[:10] not in str(error)
