"""A copy world: the simulator and the daemon as subprocesses, and a trader's own key, for the
end-to-end tests, the benchmarks and the campaigns.

    with copy_world(users=[...]) as world:
        daemon = world.start_daemon()
        txid = world.place_master(type="buy", ordertype="market", volume="0.1")
        world.wait_for_summary(daemon, txid)
        world.user_orders("alice")        # what the exchange has, read with a separate key

The master's orders are placed through krakenex directly with a second key of the master
account (as a real trader's app would), and every account has a separate read-only key for the
test's own checks, so the test never shares a nonce sequence with the daemon.

`on_secret` (called with every key and secret made) and `on_output` (called with each process's
output once it has stopped) let the test suite scan everything for leaked secrets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import krakenex
import requests

from kraken_sim.process import SIM_COMMAND, SimProcess, new_secret, running_sim

DAEMON_READY_TIMEOUT_S = 30.0
DAEMON_STOP_TIMEOUT_S = 15.0
RATE_LIMIT_RETRIES = 10
RATE_LIMIT_WAIT_S = 2.0
_SCRUBBED_PREFIXES = ("KRAKEN_", "COPYTRADER_", "RAILWAY_", "LOG_")

SecretHook = Callable[[str], str]
OutputHook = Callable[[str, str], None]


def _keep(secret: str) -> str:
    return secret


def _drop(origin: str, text: str) -> None:
    return None


def new_key() -> str:
    """A random API key shaped like Kraken's (56 characters of base64)."""
    return base64.b64encode(secrets.token_bytes(42)).decode()


class TraderApi(krakenex.API):  # type: ignore[misc]
    """krakenex with strictly increasing nonces (two calls in one millisecond are fine)."""

    def __init__(self, key: str, secret: str, url: str) -> None:
        super().__init__(key=key, secret=secret)
        self.uri = url
        self._last_nonce = 0
        self._nonce_lock = threading.Lock()

    def _nonce(self) -> int:
        with self._nonce_lock:
            self._last_nonce = max(int(time.time() * 1000), self._last_nonce + 1)
            return self._last_nonce

    def private(self, method: str, data: Mapping[str, Any] | None = None) -> Any:
        """A private call that must succeed; returns `result`. The simulator limits the test's
        keys like Kraken does, so a rate-limit refusal is waited out (a bounded number of times)."""
        for _ in range(RATE_LIMIT_RETRIES):
            reply = self.query_private(method, dict(data or {}), timeout=15)
            if reply.get("error") == ["EAPI:Rate limit exceeded"]:
                time.sleep(RATE_LIMIT_WAIT_S)
                continue
            if reply.get("error"):
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]
        raise RuntimeError(f"{method}: still rate limited after {RATE_LIMIT_RETRIES} tries")


@dataclass(frozen=True)
class SimUser:
    """A USER account of the test: config entry and simulator balances."""

    user_id: str
    balances: Mapping[str, str]
    env_name: str = ""
    max_order_fraction: str | None = None
    max_notional: str | None = None
    multiplier: str = "1"
    round_up_to_minimum: bool = False

    @property
    def env(self) -> str:
        return self.env_name or self.user_id.upper()


@dataclass(frozen=True)
class AccountKeys:
    """The daemon's key of an account, and a reader key for the test's own checks."""

    daemon_key: str
    daemon_secret: str
    reader_key: str
    reader_secret: str

    @classmethod
    def new(cls, on_secret: SecretHook = _keep) -> AccountKeys:
        return cls(
            on_secret(new_key()), on_secret(new_secret()), on_secret(new_key()),
            on_secret(new_secret()),
        )  # fmt: skip


@dataclass
class DaemonProcess:
    process: subprocess.Popen[str]
    started_at: float = field(default_factory=time.time)
    lines: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            with self.lock:
                self.lines.append(line)
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict):
                        self.events.append(event)

    def named(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("event") == name]

    def wait_running(self) -> None:
        """Until the daemon logs `daemon.running` (its signal handlers are in place by then)."""
        wait_until(
            lambda: self.named("daemon.running") or self.process.poll() is not None,
            DAEMON_READY_TIMEOUT_S,
            "daemon.running",
        )
        if self.process.poll() is not None:
            raise AssertionError("daemon exited:\n" + "\n".join(self.lines[-30:]))

    def kill9(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(DAEMON_STOP_TIMEOUT_S)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(DAEMON_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(DAEMON_STOP_TIMEOUT_S)
        return self.process.returncode


def wait_until(
    predicate: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(step_s)


class CopyWorld:
    def __init__(
        self,
        sim: SimProcess,
        workdir: Path,
        users: Sequence[SimUser],
        keys: Mapping[str, AccountKeys],
        trader: tuple[str, str],
        copy_settings: Mapping[str, str],
        on_output: OutputHook = _drop,
    ) -> None:
        self.sim = sim
        self.on_output = on_output
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.users = list(users)
        self.keys = dict(keys)
        self.trader = TraderApi(trader[0], trader[1], sim.url)
        self.copy_settings = dict(copy_settings)
        self.daemons: list[DaemonProcess] = []
        self._readers: dict[str, TraderApi] = {}

    # ---- accounts ---------------------------------------------------------------------

    def reader(self, account: str) -> TraderApi:
        if account not in self._readers:
            keys = self.keys[account]
            self._readers[account] = TraderApi(keys.reader_key, keys.reader_secret, self.sim.url)
        return self._readers[account]

    def place_master(self, **params: str) -> str:
        """AddOrder on the master account with the trader's key; returns the txid."""
        result = self.trader.private("AddOrder", params)
        return str(result["txid"][0])

    def place_master_surely(self, userref: int, **params: str) -> str:
        """AddOrder on the master even while faults are injected on AddOrder (they hit every
        key): a lost reply is resolved by the order's userref, as a careful trader would."""
        for _ in range(10):
            try:
                return self.place_master(userref=str(userref), **params)
            except (requests.RequestException, RuntimeError):
                found = self.master_orders_with_userref(userref)
                if found:
                    return found[0]
        raise RuntimeError(f"could not place master order with userref {userref}")

    def master_orders_with_userref(self, userref: int) -> list[str]:
        api = self.reader("master")
        found = list(api.private("OpenOrders", {"userref": str(userref)})["open"])
        found += list(api.private("ClosedOrders", {"userref": str(userref)})["closed"])
        return found

    def cancel_master(self, txid: str) -> None:
        self.trader.private("CancelOrder", {"txid": txid})

    def equity(self, account: str) -> Decimal:
        return Decimal(self.reader(account).private("TradeBalance", {"asset": "ZUSD"})["e"])

    def balance_ex(self, account: str) -> dict[str, dict[str, Decimal]]:
        raw = self.reader(account).private("BalanceEx")
        return {a: {k: Decimal(v) for k, v in entry.items()} for a, entry in raw.items()}

    def all_orders(self, account: str) -> dict[str, dict[str, Any]]:
        """Every order of the account, open and closed (all pages), by txid."""
        api = self.reader(account)
        found: dict[str, dict[str, Any]] = dict(api.private("OpenOrders")["open"])
        offset = 0
        while True:
            page = api.private("ClosedOrders", {"ofs": str(offset)})
            found.update(page["closed"])
            offset += len(page["closed"])
            if not page["closed"] or offset >= int(page["count"]):
                return found

    # ---- the daemon -------------------------------------------------------------------

    def config_toml(self) -> str:
        lines = ["[copy]"] + [f"{k} = {v}" for k, v in self.copy_settings.items()]
        for user in self.users:
            lines += [
                "",
                "[[users]]",
                f'id = "{user.user_id}"',
                f'name = "{user.user_id.title()}"',
                f'env_name = "{user.env}"',
                "enabled = true",
                f'multiplier = "{user.multiplier}"',
                f"round_up_to_minimum = {'true' if user.round_up_to_minimum else 'false'}",
                'tier = "pro"',
            ]
            if user.max_order_fraction is not None:
                lines.append(f'max_order_fraction = "{user.max_order_fraction}"')
            if user.max_notional is not None:
                lines.append(f'max_notional = "{user.max_notional}"')
        return "\n".join(lines) + "\n"

    def environment(self) -> dict[str, str]:
        config = self.workdir / "accounts.toml"
        config.write_text(self.config_toml())
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            PYTHONUNBUFFERED="1",
            LOG_FORMAT="json",
            LOG_LEVEL="info",
            KRAKEN_API_URL=self.sim.url,
            COPYTRADER_CONFIG=str(config),
            COPYTRADER_DATA_DIR=str(self.data_dir),
            KRAKEN_MASTER_API_KEY=self.keys["master"].daemon_key,
            KRAKEN_MASTER_API_SECRET=self.keys["master"].daemon_secret,
        )
        for user in self.users:
            env[f"KRAKEN_USER_{user.env}_API_KEY"] = self.keys[user.user_id].daemon_key
            env[f"KRAKEN_USER_{user.env}_API_SECRET"] = self.keys[user.user_id].daemon_secret
        return env

    def start_daemon(
        self, *, wait_ready: bool = True, extra_env: Mapping[str, str] | None = None
    ) -> DaemonProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "copytrader", "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.environment() | dict(extra_env or {}),
            cwd=self.workdir,
        )
        daemon = DaemonProcess(process)
        self.daemons.append(daemon)
        threading.Thread(target=daemon.pump, daemon=True).start()
        if wait_ready:
            daemon.wait_running()
        return daemon

    def summary(
        self, daemon: DaemonProcess, master_txid: str, timeout_s: float = 20.0
    ) -> dict[str, Any]:
        """Wait for the daemon's copy.summary of this master order."""
        found = wait_until(
            lambda: [
                e for e in daemon.named("copy.summary") if e.get("master_txid") == master_txid
            ],
            timeout_s,
            f"copy.summary of {master_txid}",
        )
        return dict(found[0])

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
            self.on_output("copy daemon", "\n".join(daemon.lines))


def accounts_toml(
    master_balances: Mapping[str, str],
    users: Sequence[SimUser],
    keys: Mapping[str, AccountKeys],
    trader: tuple[str, str],
    prices: Mapping[str, str],
) -> str:
    def table(values: Mapping[str, str]) -> str:
        return "{ " + ", ".join(f'{k} = "{v}"' for k, v in values.items()) + " }"

    def account(
        name: str, balances: Mapping[str, str], extra: Sequence[tuple[str, str]]
    ) -> list[str]:
        k = keys[name]
        lines = [
            "[[accounts]]",
            f'name = "{name}"',
            f'key = "{k.daemon_key}"',
            f'secret = "{k.daemon_secret}"',
            'tier = "pro"',
            f"balances = {table(balances)}",
        ]
        for key, secret in [(k.reader_key, k.reader_secret), *extra]:
            lines += ["[[accounts.keys]]", f'key = "{key}"', f'secret = "{secret}"']
        return lines

    lines = account("master", master_balances, [trader])
    for user in users:
        lines += ["", *account(user.user_id, user.balances, [])]
    lines += ["", "[prices]"] + [f'{pair} = "{price}"' for pair, price in prices.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def copy_world(
    users: Sequence[SimUser],
    *,
    master_balances: Mapping[str, str],
    prices: Mapping[str, str] | None = None,
    copy_settings: Mapping[str, str] | None = None,
    sim_args: Sequence[str] = (),
    sim_command: Sequence[str] = SIM_COMMAND,
    on_secret: SecretHook = _keep,
    on_output: OutputHook = _drop,
) -> Iterator[CopyWorld]:
    """A simulator with MASTER and `users`, and a work folder for daemons; stops everything."""
    keys = {name: AccountKeys.new(on_secret) for name in ["master", *(u.user_id for u in users)]}
    trader = (on_secret(new_key()), on_secret(new_secret()))
    settings = {
        "sizing": '"equity_ratio"',
        "connect_stagger_seconds": "0",
        "master_tier": '"pro"',
        "max_signal_age_seconds": "60",
        "dry_run": "false",
        "equity_asset": '"ZUSD"',
    } | dict(copy_settings or {})
    toml = accounts_toml(
        master_balances, users, keys, trader, prices or {"XXBTZUSD": "60000", "XETHZUSD": "3000"}
    )
    with (
        tempfile.TemporaryDirectory(prefix="copytrader-copy-") as tmp,
        running_sim(toml, *sim_args, command=sim_command, on_stopped=on_output) as sim,
    ):
        world = CopyWorld(sim, Path(tmp), users, keys, trader, settings, on_output)
        try:
            yield world
        finally:
            world.close()
