"""The copy world of `copytrader.paper.world` for the test suite: the simulator started as
`copytrader sim`, and every key, secret and process output fed to the suite-wide secret scan.

    with copy_world(users=[...]) as world:
        daemon = world.start_daemon()
        txid = world.place_master(type="buy", ordertype="market", volume="0.1")
        world.summary(daemon, txid)
        world.all_orders("alice")        # what the exchange has, read with a separate key
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence

from copytrader.paper import world
from copytrader.paper.world import CopyWorld, DaemonProcess, SimUser, wait_until
from tests import secretscan

__all__ = ["CopyWorld", "DaemonProcess", "SimUser", "copy_world", "new_key", "wait_until"]


def new_key() -> str:
    return secretscan.register_secret(world.new_key())


@contextlib.contextmanager
def copy_world(
    users: Sequence[SimUser],
    *,
    master_balances: Mapping[str, str],
    prices: Mapping[str, str] | None = None,
    copy_settings: Mapping[str, str] | None = None,
    sim_args: Sequence[str] = (),
) -> Iterator[CopyWorld]:
    with world.copy_world(
        users,
        master_balances=master_balances,
        prices=prices,
        copy_settings=copy_settings,
        sim_args=sim_args,
        sim_command=(sys.executable, "-m", "copytrader", "sim"),
        on_secret=secretscan.register_secret,
        on_output=secretscan.record_output,
    ) as copies:
        yield copies
