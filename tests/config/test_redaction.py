"""Redaction's fast paths: every registered secret and base64 run still goes, wherever it is."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import string
from collections.abc import Iterator
from decimal import Decimal

import pytest
import structlog

from copytrader.logs import (
    REDACTED,
    configure_logging,
    forget_registered_secrets,
    get_logger,
    redact,
    redact_text,
    register_secret,
)


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    forget_registered_secrets()
    yield
    forget_registered_secrets()
    structlog.reset_defaults()


def _b64(rng: random.Random, n_bytes: int) -> str:
    return base64.b64encode(rng.randbytes(n_bytes)).decode()


# The documented rule for unregistered secrets, written out here on its own so that the
# reference below does not share code with what it checks: a run of at least 40 base64
# characters (plus up to two `=`) holding upper case, lower case and digits, with at most one
# `/` per 10 characters (file paths have more).
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def _secret_looking(run: str) -> bool:
    body = run.rstrip("=")
    return (
        re.search("[A-Z]", body) is not None
        and re.search("[a-z]", body) is not None
        and re.search("[0-9]", body) is not None
        and body.count("/") * 10 <= len(body)
    )


def _reference(text: str, secrets: set[str]) -> str:
    """The plain algorithm the fast one must match: every secret, longest first, then runs."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return BASE64_RUN.sub(lambda m: REDACTED if _secret_looking(m.group(0)) else m.group(0), text)


def test_secret_inside_a_longer_run_is_removed() -> None:
    """A registered secret glued to other base64/url-safe characters is still found."""
    # Lower case only: the base64 heuristic would not catch it, only registration does.
    plain = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop"
    kraken_key = _b64(random.Random(1), 42)
    register_secret(plain)
    register_secret(kraken_key)
    assert redact_text(f"x {plain} y") == f"x {REDACTED} y"
    assert redact_text(f"xx{plain}yy") == f"xx{REDACTED}yy"
    assert redact_text(f"user-{plain}_z=") == f"user-{REDACTED}_z="
    assert redact_text(f"a={plain}{plain}") == f"a={REDACTED}{REDACTED}"
    assert kraken_key not in redact_text(f"ab{kraken_key}cd and {kraken_key[::-1]}")


def test_short_registered_secret_in_short_text_is_removed() -> None:
    """Text shorter than a base64 run is still searched when a shorter secret is registered."""
    register_secret("ab1234")
    assert redact_text("k=ab1234") == f"k={REDACTED}"
    assert redact_text("xab1234x") == f"x{REDACTED}x"
    assert redact_text("ab123") == "ab123"


def test_secret_with_characters_outside_base64_is_removed() -> None:
    """A secret with spaces or punctuation is found too, also when it contains another secret."""
    register_secret("pass word!42")
    register_secret("abcdefgh")
    register_secret("zz.abcdefgh.zz")
    assert redact_text("got pass word!42.") == f"got {REDACTED}."
    assert redact_text("a zz.abcdefgh.zz b") == f"a {REDACTED} b"
    assert redact_text("a abcdefgh. b") == f"a {REDACTED}. b"


def test_longer_secret_containing_a_shorter_one_is_replaced_whole() -> None:
    """One marker for the longer secret, not a marker plus the rest of it."""
    register_secret("abcdefgh")
    register_secret("abcdefghijkl")
    assert redact_text("x abcdefghijkl y abcdefgh") == f"x {REDACTED} y {REDACTED}"


def test_secret_registered_after_the_first_line_is_removed() -> None:
    """Registration takes effect for every later line, also once lines have been logged."""
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    log = get_logger()
    log.info("a.before", message="nothing secret yet late-secret-value")
    register_secret("late-secret-value")
    log.info("a.after", message="now late-secret-value", detail={"x": ("late-secret-value",)})
    first, second = (json.loads(line) for line in sink.getvalue().splitlines())
    assert first["message"] == "nothing secret yet late-secret-value"
    assert second["message"] == f"now {REDACTED}"
    assert second["detail"] == {"x": [REDACTED]}


def test_ordinary_line_is_unchanged_with_many_secrets_registered() -> None:
    """With 200 keys and secrets registered, a copy line keeps every ordinary field."""
    rng = random.Random(2)
    for _ in range(100):
        register_secret(_b64(rng, 42))
        register_secret(_b64(rng, 64))
    message = (
        "copy of OABC12-DEF34-GHIJ56 for user042 placed: buy 0.01234567 XBTUSD limit @ 50001.0"
    )
    event = {
        "event": "copy.placed",
        "message": message,
        "account": "USER:user042",
        "master_txid": "OABC12-DEF34-GHIJ56",
        "latency_ms": 123.4,
        "count": 3,
        "ok": True,
        "none": None,
        "volume": Decimal("0.01234567"),
        "path": "/work/main/.venv/lib/python3.11/site-packages/copytrader/kraken/broker.py",
        "key_hint": "abcd…",
    }
    out = redact(None, "info", dict(event))
    assert out == {**event, "volume": "0.01234567"}


def test_strings_nested_deep_are_redacted() -> None:
    """Nesting does not hide a secret (a string is redacted at any depth)."""
    register_secret("deep-secret-value")
    value: object = ["deep-secret-value"]
    for _ in range(10):
        value = {"x": value}
    assert "deep-secret-value" not in repr(redact(None, "info", {"detail": value}))
    cycle: dict[str, object] = {"s": "deep-secret-value"}
    cycle["self"] = cycle
    assert "deep-secret-value" not in repr(redact(None, "info", {"detail": cycle}))


def test_fast_path_matches_the_plain_algorithm() -> None:
    """On many generated texts, redaction equals searching the whole text for every secret."""
    rng = random.Random(3)
    registered = {
        *(_b64(rng, 42) for _ in range(20)),
        *(_b64(rng, 64) for _ in range(20)),
        *(_b64(rng, 9).replace("+", "-").replace("/", "_") for _ in range(5)),
        "lowercaseonlysecretvalue",
        "Ab12cd",
        "with space-1",
        "dot.ted.secret",
    }
    for secret in registered:
        register_secret(secret)
    pieces = [
        *registered,
        *(_b64(rng, rng.randint(20, 80)) for _ in range(20)),  # unregistered base64
        "/work/main/.venv/lib/python3.11/site-packages/x.py",
        "OUF4EM-FRGI2-MQMWZD",
        "user042",
        "0.01234567",
        "==",
        "-",
        "_",
    ]
    separators = ["", "", " ", "=", ":", "/", "-", ".", "\n", '"', "<", "é"]
    for _ in range(3000):
        parts = rng.choices(pieces, k=rng.randint(1, 8))
        text = "".join(p + rng.choice(separators) for p in parts)
        if rng.random() < 0.3:  # also cut secrets apart
            cut = rng.randrange(len(text) + 1)
            text = text[cut:] + rng.choice(string.ascii_letters) + text[:cut]
        assert redact_text(text) == _reference(text, registered)
