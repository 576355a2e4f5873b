"""The simulator as a subprocess for tests (kraken_sim.process), started as `copytrader sim` and
with its secrets and output fed to the suite-wide secret scan."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from kraken_sim import process
from kraken_sim.process import SimProcess
from tests import secretscan

__all__ = ["SimProcess", "new_secret", "running_sim"]


def new_secret() -> str:
    """A random API secret shaped like Kraken's, registered for the suite-wide secret scan."""
    return secretscan.register_secret(process.new_secret())


@contextlib.contextmanager
def running_sim(accounts_toml: str, *extra_args: str) -> Iterator[SimProcess]:
    with process.running_sim(
        accounts_toml,
        *extra_args,
        command=(sys.executable, "-m", "copytrader", "sim"),
        on_stopped=secretscan.record_output,
    ) as sim:
        yield sim
