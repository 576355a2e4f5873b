"""Fixtures for config tests: a scratch project folder with a config file, no real environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from copytrader.logs import forget_registered_secrets

TWO_USERS = """
[copy]
sizing = "equity_ratio"
connect_stagger_seconds = 0.5

[[users]]
id = "daivon_frazier"
name = "Daivon Frazier"
multiplier = "1"
max_order_fraction = "0.10"

[[users]]
id = "tania_gilbert"
name = "Tania Gilbert"
"""


@pytest.fixture(name="project")
def _project(tmp_path: Path) -> Iterator[Path]:
    """A working directory with config/accounts.toml holding two users."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "accounts.toml").write_text(TWO_USERS)
    yield tmp_path
    forget_registered_secrets()


def write_config(project: Path, text: str) -> Path:
    path = project / "config" / "accounts.toml"
    path.write_text(text)
    return path
