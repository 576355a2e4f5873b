"""SIGTERM in the middle of copying: a clean exit within 10 s, and a restart that finishes the job.

Depends on the daemon (`copytrader run`) being wired to `copytrader.service.lifecycle`:
`daemon.running` once it watches the master, `daemon.stop_requested` on SIGTERM, then
`daemon.draining` and `daemon.stopped`, exit code 0.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import krakenex

from tests import secretscan
from tests.service.daemonproc import LoggedProcess, event_names, start_daemon
from tests.simproc import SimProcess, new_secret, running_sim

USERS = {"ann_test": "ANN", "ben_test": "BEN"}
MASTER_PRICES = ("40000", "40100", "40200", "40300", "40400")  # far below 60000: they rest
COPY_LATENCY_MS = 2000
READY_EVENTS = {"daemon.running"}
BALANCES = '{ ZUSD = "10000", XXBT = "0.5" }'

Credentials = tuple[str, str]


def _key() -> str:
    return secretscan.register_secret(base64.b64encode(secrets.token_bytes(42)).decode())


def _account(name: str, creds: Credentials) -> str:
    return (
        f'\n[[accounts]]\nname = "{name}"\nkey = "{creds[0]}"\nsecret = "{creds[1]}"\n'
        f'tier = "pro"\nbalances = {BALANCES}\n'
    )


def _sim_accounts(master: Credentials, trader: Credentials, users: dict[str, Credentials]) -> str:
    text = _account("master", master)
    text += f'[[accounts.keys]]\nkey = "{trader[0]}"\nsecret = "{trader[1]}"\n'
    return text + "".join(_account(user, creds) for user, creds in users.items())


def _daemon_config() -> str:
    text = '[copy]\nsizing = "equity_ratio"\nconnect_stagger_seconds = 0\nmaster_tier = "pro"\n'
    for user, env_name in USERS.items():
        text += f'\n[[users]]\nid = "{user}"\nname = "{user}"\nenv_name = "{env_name}"\n'
    return text


def _place_master_orders(sim: SimProcess, trader: Credentials) -> list[str]:
    api = krakenex.API(key=trader[0], secret=trader[1])
    api.uri = sim.url
    nonces = itertools.count(time.time_ns() // 1_000_000)
    api._nonce = lambda: next(nonces)
    txids = []
    for price in MASTER_PRICES:
        reply: dict[str, Any] = api.query_private(
            "AddOrder",
            {"pair": "XXBTZUSD", "type": "buy", "ordertype": "limit", "volume": "0.01",
             "price": price},
            timeout=10,
        )  # fmt: skip
        assert reply["error"] == [], reply
        txids.append(str(reply["result"]["txid"][0]))
    return txids


def _add_orders_under_way(sim: SimProcess) -> int:
    return sum(1 for line in sim.output if "sim.fault_fired" in line and "AddOrder" in line)


def _user_orders(sim: SimProcess, user: str) -> list[dict[str, Any]]:
    return list(sim.control("state")["accounts"][user]["open_orders"].values())


def _stop_cleanly(daemon: LoggedProcess) -> list[str]:
    code, took = daemon.signal_and_wait(signal.SIGTERM, 15)
    names = event_names(daemon.events())
    assert code == 0, "\n".join(daemon.lines[-30:])
    assert took < 10, f"{daemon.name} took {took:.1f} s to stop"
    assert "daemon.stop_requested" in names
    assert "daemon.stopped" in names
    return names


def test_sigterm_mid_copy_exits_zero_and_restart_finishes_without_duplicates(
    tmp_path: Path,
) -> None:
    """SIGTERM with copies in flight exits 0 within 10 s after a drain; a restart completes
    every copy, exactly once per user."""
    master, trader = (_key(), new_secret()), (_key(), new_secret())
    users = {user: (_key(), new_secret()) for user in USERS}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "accounts.toml").write_text(_daemon_config())
    daemons: list[LoggedProcess] = []
    with running_sim(_sim_accounts(master, trader, users)) as sim:
        env = {
            "KRAKEN_API_URL": sim.url,
            "COPYTRADER_DATA_DIR": str(tmp_path / "data"),
            "KRAKEN_MASTER_API_KEY": master[0],
            "KRAKEN_MASTER_API_SECRET": master[1],
        }
        for user, env_name in USERS.items():
            env[f"KRAKEN_USER_{env_name}_API_KEY"] = users[user][0]
            env[f"KRAKEN_USER_{env_name}_API_SECRET"] = users[user][1]

        def start(name: str) -> LoggedProcess:
            daemon = start_daemon(cwd=tmp_path, env=env, name=name)
            daemons.append(daemon)
            daemon.wait_for(lambda evs: bool(READY_EVENTS & set(event_names(evs))), 30, "start")
            return daemon

        try:
            # A first run records the baseline; orders placed while it is down are then copied.
            _stop_cleanly(start("daemon (first run)"))
            master_txids = _place_master_orders(sim, trader)
            # From now on every AddOrder (start-up checks, then copies) takes 2 s to answer.
            sim.control("fault", {"endpoint": "AddOrder", "kind": "latency", "count": -1,
                                  "latency_ms": COPY_LATENCY_MS})  # fmt: skip
            copying = start("daemon (copying)")
            # Start-up may validate an order per user; only AddOrders after it are copies.
            before_copying = _add_orders_under_way(sim)
            deadline = time.monotonic() + 20
            while _add_orders_under_way(sim) == before_copying:
                assert time.monotonic() < deadline, "the daemon never started a copy"
                time.sleep(0.02)
            names = _stop_cleanly(copying)
            events = copying.events()
            draining = next(e for e in events if e["event"] == "daemon.draining")
            stopped = next(e for e in events if e["event"] == "daemon.stopped")
            after_stop = names[names.index("daemon.stop_requested") :]
            # The signal came mid-copy: the lanes were still in a call when the drain began, or
            # a copy in flight was finished after the signal...
            assert draining["in_flight"] >= 1 or {"copy.placed", "copy.failed"} & set(after_stop), (
                "\n".join(copying.lines[-30:])
            )
            # ...and no new copy was started: the rest waits in the ledger for the next start.
            assert stopped["planned"] + stopped["submitting"] > 0, stopped
            assert names.index("daemon.stop_requested") < names.index("daemon.stopped")

            sim.control("faults/clear", {})
            finishing = start("daemon (restart)")

            def all_copied(_: list[dict[str, Any]]) -> bool:
                return all(len(_user_orders(sim, u)) >= len(master_txids) for u in USERS)

            finishing.wait_for(all_copied, 30, "a copy of every master order for every user")
            time.sleep(1.0)  # a few more polls: a duplicate, if any, would show up now
            for user in USERS:
                orders = _user_orders(sim, user)
                prices = sorted(Decimal(o["descr"]["price"]) for o in orders)
                assert prices == sorted(Decimal(p) for p in MASTER_PRICES), f"{user}: {prices}"
                assert len({o["cl_ord_id"] for o in orders}) == len(orders), f"{user}: {orders}"
            _stop_cleanly(finishing)
        finally:
            for daemon in daemons:
                daemon.kill()
