"""Suite-wide secret scan: every secret a test makes is registered here, every output is recorded.

`tests/test_zz_no_secret_in_logs.py` runs last and fails if any registered secret (or the
signature-bearing header values) appears in anything the suite captured: the test process's own
stdout/stderr/log sections and the output of every subprocess recorded with `record_output`.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_outputs: list[tuple[str, str]] = []


def register_secret(value: str) -> str:
    """Remember a secret (or a full API key) that must never appear in output. Returns it."""
    if len(value) >= 8:
        with _lock:
            _secrets.add(value)
    return value


def record_output(origin: str, text: str) -> None:
    """Keep a subprocess's output (or any text a test saw) for the final scan."""
    with _lock:
        _outputs.append((origin, text))


def registered_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def recorded_outputs() -> list[tuple[str, str]]:
    with _lock:
        return list(_outputs)
