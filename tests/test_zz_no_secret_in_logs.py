"""Runs last: no secret or full API key made by any test appears in anything the suite captured."""

from __future__ import annotations

from tests import secretscan


def test_no_registered_secret_in_any_captured_output() -> None:
    """Every log line, subprocess output and failure text of the suite is free of secrets."""
    secrets = secretscan.registered_secrets()
    outputs = secretscan.recorded_outputs()
    leaks = [
        (origin, secret[:6] + "…")
        for origin, text in outputs
        for secret in secrets
        if secret in text
    ]
    assert leaks == [], f"secrets leaked into output: {leaks[:10]}"
