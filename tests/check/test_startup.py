"""Startup: MASTER first, users staggered, one state and one log event per account, a summary,
and one account's failure (even a hang) never holding up the others."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog

from copytrader.config.settings import load_settings
from copytrader.config.types import AccountSpec, Settings
from copytrader.kraken.broker import KrakenBroker
from copytrader.logs import configure_logging
from copytrader.service.probe import AccountState, ProbeDepth, Reason, make_broker
from copytrader.service.startup import StartupReport, connect_accounts
from tests.check.conftest import Accounts, rested
from tests.simproc import SimProcess, new_secret

STAGGER_S = 0.3
ALL_USERS = ["USER:daivon_frazier", "USER:tania_gilbert"]
PERMISSION_ADVICE = (
    "Query Funds, Query Open Orders & Trades, Query Closed Orders & Trades, Create & Modify "
    "Orders, Cancel/Close Orders"
)
CONFIG = f"""
[copy]
connect_stagger_seconds = {STAGGER_S}

[[users]]
id = "daivon_frazier"
name = "Daivon Frazier"

[[users]]
id = "tania_gilbert"
name = "Tania Gilbert"

[[users]]
id = "old_account"
name = "Old Account"
enabled = false

[[users]]
id = "nobody_here"
name = "Nobody Here"
"""


@pytest.fixture(name="log_sink")
def _log_sink() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    yield sink
    structlog.reset_defaults()


def _settings(accounts: Accounts, sim: SimProcess, tmp_path: Path, **env: str) -> Settings:
    rested(sim)
    (tmp_path / "accounts.toml").write_text(CONFIG)
    variables = accounts.env(sim, tmp_path / "data") | {
        "COPYTRADER_CONFIG": str(tmp_path / "accounts.toml")
    }
    return load_settings(variables | env, cwd=tmp_path, dotenv=False)


def unlimited(spec: AccountSpec, settings: Settings) -> KrakenBroker:
    """A broker without the client-side REST counter: it is per process and would carry one
    test's calls into the next, while the simulator's counter is reset by `rested()`."""
    return make_broker(spec, settings, client_rate_limit=False)


def _events(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines() if line.startswith("{")]


def test_one_state_and_one_event_per_account_then_a_summary(
    accounts: Accounts, sim: SimProcess, tmp_path: Path, log_sink: io.StringIO
) -> None:
    """connected / failed / skipped (disabled, no variables): one event each, summary last."""
    settings = _settings(
        accounts, sim, tmp_path, KRAKEN_USER_TANIA_API_SECRET=new_secret()
    )  # a secret of no key: Tania fails, nobody else does
    report = connect_accounts(settings, broker_factory=unlimited)
    try:
        states = {o.account_id: (o.state, o.reason) for o in report.all}
        assert states == {
            "MASTER": (AccountState.CONNECTED, Reason.OK),
            "USER:daivon_frazier": (AccountState.CONNECTED, Reason.OK),
            "USER:tania_gilbert": (AccountState.FAILED, Reason.INVALID_SIGNATURE),
            "USER:old_account": (AccountState.SKIPPED, Reason.DISABLED),
            "USER:nobody_here": (AccountState.SKIPPED, Reason.NOT_CONFIGURED),
        }
        assert report.master.broker is not None
        assert [o.account_id for o in report.ready_users] == ["USER:daivon_frazier"]
    finally:
        for outcome in report.all:
            if outcome.broker is not None:
                outcome.broker.close()

    events = [e for e in _events(log_sink) if e["event"].startswith(("account.", "startup."))]
    per_account = [e for e in events if e["event"].startswith("account.")]
    assert sorted(e["account"] for e in per_account) == sorted(states)
    by_account = {e["account"]: e for e in per_account}
    master = by_account["MASTER"]
    assert master["event"] == "account.connected"
    assert master["equity"] == "400000.0000"
    assert master["level"] == "info"
    tania = by_account["USER:tania_gilbert"]
    assert tania["event"] == "account.failed"
    assert tania["level"] == "error"
    assert "KRAKEN_USER_TANIA_API_SECRET" in tania["message"]
    nobody = by_account["USER:nobody_here"]
    assert nobody["event"] == "account.skipped"
    assert nobody["level"] == "warning"
    assert "Set KRAKEN_USER_NOBODY_API_KEY and KRAKEN_USER_NOBODY_API_SECRET" in nobody["message"]
    summary = events[-1]
    assert summary["event"] == "startup.summary"
    assert summary["master_state"] == "connected"
    assert (summary["users_ready"], summary["users_enabled"]) == (1, 3)
    assert summary["message"] == "MASTER connected; 1 of 3 enabled users ready (1 disabled)"


def test_master_first_then_users_staggered(
    accounts: Accounts, sim: SimProcess, tmp_path: Path, log_sink: io.StringIO
) -> None:
    """MASTER's requests come before any user's; each user starts a stagger after the last."""
    settings = _settings(accounts, sim, tmp_path)
    earlier = len(sim.control("requests")["requests"])  # far below the log's bound of 2000
    report = connect_accounts(settings, broker_factory=unlimited)
    for outcome in report.all:
        if outcome.broker is not None:
            outcome.broker.close()
    requests = sim.control("requests")["requests"][earlier:]
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for entry in requests:
        first.setdefault(entry["account"], entry["time"])
        last[entry["account"]] = entry["time"]
    assert last["master"] <= first["daivon"]
    assert first["tania"] - first["daivon"] >= STAGGER_S * 0.9


def test_a_hanging_account_does_not_hold_up_the_others(
    accounts: Accounts, sim: SimProcess, tmp_path: Path, log_sink: io.StringIO
) -> None:
    """Daivon's exchange never answers: Daivon fails as unreachable, Tania connects anyway."""
    settings = _settings(accounts, sim, tmp_path)
    with socket.socket() as silent:  # accepts connections (backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        def factory(spec: AccountSpec, s: Settings) -> KrakenBroker:
            if spec.account_id == "USER:daivon_frazier":
                assert spec.credentials is not None
                return KrakenBroker(
                    spec.account_id,
                    spec.credentials,
                    api_url=silent_url,
                    data_dir=s.data_dir,
                    timeout_s=0.3,
                    retry_waits=False,
                    client_rate_limit=False,
                )
            return unlimited(spec, s)

        report = connect_accounts(settings, broker_factory=factory)
    try:
        daivon, tania = report.users[0], report.users[1]
        assert daivon.state is AccountState.FAILED
        assert daivon.reason is Reason.UNREACHABLE
        assert daivon.retryable
        assert silent_url in daivon.message
        assert tania.state is AccountState.CONNECTED
        assert tania.elapsed_s < daivon.elapsed_s  # Tania did not wait for Daivon's timeouts
        assert report.master.connected
    finally:
        for outcome in report.all:
            if outcome.broker is not None:
                outcome.broker.close()


def test_config_notes_are_logged_before_connecting(
    accounts: Accounts, sim: SimProcess, tmp_path: Path, log_sink: io.StringIO
) -> None:
    """Empty MASTER variables count as unset, the legacy names connect MASTER, and the note
    saying so is logged as `config.note` before the first account event."""
    settings = _settings(
        accounts,
        sim,
        tmp_path,
        KRAKEN_MASTER_API_KEY="",
        KRAKEN_MASTER_API_SECRET="",
        KRAKEN_API_KEY=accounts.master.key,
        KRAKEN_API_SECRET=accounts.master.secret,
    )
    report = connect_accounts(settings, broker_factory=unlimited)
    for outcome in report.all:
        if outcome.broker is not None:
            outcome.broker.close()
    assert report.master.connected
    events = [e["event"] for e in _events(log_sink)]
    assert events.index("config.note") < events.index("account.connected")
    note = next(e for e in _events(log_sink) if e["event"] == "config.note")
    assert "KRAKEN_API_KEY" in note["message"]


def _close_brokers(report: StartupReport) -> None:
    for outcome in report.all:
        if outcome.broker is not None:
            outcome.broker.close()


def _methods_by_account(requests: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in requests:
        found.setdefault(entry["account"], []).append(entry["method"])
    return found


def test_run_probes_only_what_starting_needs_check_probes_everything(
    accounts: Accounts, sim: SimProcess, tmp_path: Path, log_sink: io.StringIO
) -> None:
    """The default (run) probe: TradeBalance and GetApiKeyInfo per account plus OpenOrders for
    MASTER, nothing order-shaped; the full (check) probe also reads balances and tries AddOrder
    and CancelOrder."""
    settings = _settings(accounts, sim, tmp_path)
    earlier = len(sim.control("requests")["requests"])
    report = connect_accounts(settings, broker_factory=unlimited)
    _close_brokers(report)
    assert report.master.connected
    assert report.master.equity == Decimal("400000.0000")
    assert [o.account_id for o in report.ready_users] == ALL_USERS
    light = _methods_by_account(sim.control("requests")["requests"][earlier:])
    assert light == {
        "master": ["TradeBalance", "OpenOrders", "GetApiKeyInfo"],
        "daivon": ["TradeBalance", "GetApiKeyInfo"],
        "tania": ["TradeBalance", "GetApiKeyInfo"],
    }

    rested(sim)
    earlier = len(sim.control("requests")["requests"])
    report = connect_accounts(settings, broker_factory=unlimited, depth=ProbeDepth.FULL)
    _close_brokers(report)
    full = _methods_by_account(sim.control("requests")["requests"][earlier:])
    for name in ("daivon", "tania"):
        assert {"Balance", "TradeBalance", "OpenOrders", "ClosedOrders", "AddOrder"} <= set(
            full[name]
        )
        assert "CancelOrder" in full[name]
    assert all(report.users[0].permissions.as_dict().values())


def test_run_probe_names_the_needed_permissions_when_denied(
    accounts: Accounts, sim: SimProcess, tmp_path: Path, log_sink: io.StringIO
) -> None:
    """A key refused Query Funds fails at start with the permissions a copy-trading key needs
    and the warning against withdrawal, in its one event; the reads its key lacks besides (from
    GetApiKeyInfo) are named with it."""
    settings = _settings(
        accounts,
        sim,
        tmp_path,
        KRAKEN_USER_TANIA_API_KEY=accounts.no_query.key,
        KRAKEN_USER_TANIA_API_SECRET=accounts.no_query.secret,
    )
    report = connect_accounts(settings, broker_factory=unlimited)
    _close_brokers(report)
    tania = report.users[1]
    assert (tania.state, tania.reason) == (AccountState.FAILED, Reason.MISSING_PERMISSION)
    reads = ("Query Funds", "Query Open Orders & Trades", "Query Closed Orders & Trades")
    assert tania.missing_permissions == reads
    assert "KRAKEN_USER_TANIA_API_KEY" in tania.message
    assert PERMISSION_ADVICE in tania.message
    assert "Never grant Withdraw Funds" in tania.message
    events = [e for e in _events(log_sink) if e.get("account") == "USER:tania_gilbert"]
    assert [e["event"] for e in events] == ["account.failed"]
    assert events[0]["missing_permissions"] == list(reads)


def test_stop_ends_the_wait_for_a_connection_under_way(
    accounts: Accounts, sim: SimProcess, tmp_path: Path, log_sink: io.StringIO
) -> None:
    """A stop while Daivon's call hangs returns at once: Daivon stopped (with its broker),
    Tania never started, one event each, and Daivon's late result is dropped."""
    settings = _settings(accounts, sim, tmp_path)
    stop = threading.Event()
    with socket.socket() as silent:  # accepts connections (backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        def factory(spec: AccountSpec, s: Settings) -> KrakenBroker:
            if spec.account_id != "USER:daivon_frazier":
                return unlimited(spec, s)
            assert spec.credentials is not None
            stop.set()  # SIGTERM arrives just as Daivon's first call goes out
            return KrakenBroker(
                spec.account_id,
                spec.credentials,
                api_url=silent_url,
                data_dir=s.data_dir,
                timeout_s=0.5,
                retry_waits=False,
                client_rate_limit=False,
            )

        started = time.monotonic()
        report = connect_accounts(settings, stop=stop, stagger_s=5.0, broker_factory=factory)
        took = time.monotonic() - started
        # Daivon's thread is still inside its timeouts; wait (bounded) until it has ended.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(
            t.name == "connect-USER:daivon_frazier" for t in threading.enumerate()
        ):
            time.sleep(0.05)
    try:
        assert took < 2.0, f"connect_accounts took {took:.1f} s after the stop"
        assert report.master.connected
        daivon, tania = report.users[0], report.users[1]
        assert (daivon.state, daivon.reason) == (AccountState.SKIPPED, Reason.STOPPED)
        assert daivon.broker is not None
        assert daivon.retryable
        assert (tania.state, tania.reason) == (AccountState.SKIPPED, Reason.STOPPED)
        assert tania.broker is None
        assert report.users[2].reason is Reason.DISABLED  # settled without a connection
        assert report.users[3].reason is Reason.NOT_CONFIGURED
        assert not any(t.name == "connect-USER:daivon_frazier" for t in threading.enumerate())
    finally:
        _close_brokers(report)
    events = [e for e in _events(log_sink) if e["event"].startswith(("account.", "startup."))]
    per_account = [e for e in events if e["event"].startswith("account.")]
    assert sorted(e["account"] for e in per_account) == sorted(o.account_id for o in report.all)
    assert events[-1]["event"] == "startup.summary"  # the late result added no event
    assert events[-1]["message"] == ("MASTER connected; 0 of 3 enabled users ready (1 disabled)")
