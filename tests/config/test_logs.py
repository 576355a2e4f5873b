"""Logging: one JSON object per line with level, event, message and fields; secrets never print."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from copytrader.logs import (
    REDACTED,
    configure_logging,
    forget_registered_secrets,
    get_logger,
    redact_text,
    register_secret,
)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test's configure_logging adds a root handler and sets the root level: both are put
    back as they were, so that no test's sink receives another test's records."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    forget_registered_secrets()
    structlog.reset_defaults()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _json_lines(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines() if line.strip()]


def _kraken_secret() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


def test_json_line_has_level_event_message_timestamp_and_fields() -> None:
    """An info call becomes exactly one JSON object with the stable event name and its fields."""
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    get_logger("test").info("account.connected", message="MASTER connected", account="MASTER")
    [line] = _json_lines(sink)
    assert line["event"] == "account.connected"
    assert line["message"] == "MASTER connected"
    assert line["level"] == "info"
    assert line["account"] == "MASTER"
    assert line["logger"] == "test"
    assert line["timestamp"].endswith("Z")


def test_message_is_derived_from_event_name_when_missing() -> None:
    """A call without `message` still gets a readable one."""
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    get_logger().warning("startup.summary_ready", users_ready=2)
    [line] = _json_lines(sink)
    assert line["message"] == "startup: summary ready"
    assert line["level"] == "warning"


def test_level_filters_lower_levels() -> None:
    """LOG_LEVEL=warning drops info and debug lines."""
    sink = io.StringIO()
    configure_logging("warning", "json", stream=sink)
    log = get_logger()
    log.debug("a.debug")
    log.info("a.info")
    log.error("a.error")
    assert [line["event"] for line in _json_lines(sink)] == ["a.error"]


def test_unknown_level_or_format_is_refused() -> None:
    """A typo in LOG_LEVEL or LOG_FORMAT is an error, not silently info/json."""
    with pytest.raises(ValueError, match="log level"):
        configure_logging("verbose", "json", stream=io.StringIO())
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", stream=io.StringIO())


def test_console_format_is_human_readable() -> None:
    """LOG_FORMAT=console prints the message text and fields, not JSON."""
    sink = io.StringIO()
    configure_logging("info", "console", stream=sink)
    get_logger().info("account.skipped", message="USER:x skipped", account="USER:x")
    text = sink.getvalue()
    assert "USER:x skipped" in text
    assert "account" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_default_format_is_json_off_a_terminal() -> None:
    """With no explicit format, a non-terminal stream gets JSON."""
    sink = io.StringIO()
    configure_logging("info", None, stream=sink)
    get_logger().info("x.y")
    assert _json_lines(sink)[0]["event"] == "x.y"


def test_registered_secret_is_removed_everywhere() -> None:
    """A registered key/secret is blanked in messages, fields, nested values and exceptions."""
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    register_secret("short-api-key-value")
    log = get_logger()
    log.info("a.b", message="using short-api-key-value now", detail={"x": ["short-api-key-value"]})
    try:
        raise RuntimeError("bad short-api-key-value")
    except RuntimeError:
        log.exception("a.failed")
    text = sink.getvalue()
    assert "short-api-key-value" not in text
    first, second = _json_lines(sink)
    assert first["message"] == f"using {REDACTED} now"
    assert first["detail"] == {"x": [REDACTED]}
    assert REDACTED in second["exception"]


def test_secret_named_fields_are_blanked() -> None:
    """Fields named secret, api_sign, signature, key or api_key never print their value."""
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    get_logger().info(
        "a.b",
        secret="abc",
        api_sign="def",
        signature="ghi",
        key="jkl",
        api_key="mno",
        headers={"API-Key": "x", "API_Sign": "y"},
        key_var="KRAKEN_MASTER_API_KEY",
        key_hint="abcd…",
        account="MASTER",
    )
    [line] = _json_lines(sink)
    for name in ("secret", "api_sign", "signature", "key", "api_key"):
        assert line[name] == REDACTED, name
    assert line["headers"]["API_Sign"] == REDACTED
    assert line["key_var"] == "KRAKEN_MASTER_API_KEY"
    assert line["key_hint"] == "abcd…"
    assert line["account"] == "MASTER"


def test_base64_looking_values_are_removed_but_paths_stay() -> None:
    """An unregistered Kraken-shaped secret is removed; file paths and txids are left alone."""
    secret = _kraken_secret()
    path = "/work/main/.venv/lib/python3.11/site-packages/copytrader/kraken/broker.py"
    text = redact_text(f"secret={secret} at {path} txid OUF4EM-FRGI2-MQMWZD")
    assert secret not in text
    assert path in text
    assert "OUF4EM-FRGI2-MQMWZD" in text


def test_stdlib_logging_records_are_json_and_redacted() -> None:
    """A library logging through stdlib `logging` comes out in the same JSON, redacted."""
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    register_secret("library-leaked-secret")
    logging.getLogger("somelib").warning("oops library-leaked-secret")
    [line] = _json_lines(sink)
    assert line["level"] == "warning"
    assert line["logger"] == "somelib"
    assert "library-leaked-secret" not in json.dumps(line)


def test_static_fields_are_on_every_line() -> None:
    """Fields such as the deployment id are attached to every line."""
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink, static_fields={"deployment": "dep-1"})
    get_logger().info("a.b")
    get_logger().info("a.c", deployment="other")
    assert [line["deployment"] for line in _json_lines(sink)] == ["dep-1", "other"]
