"""The daemon with an unusable MASTER, in-process (the CopyDaemon on the in-process exchange,
with short rests between probes): it rests instead of exiting, probes MASTER again only after
each rest, starts copying once MASTER can be used, and never probes what the environment alone
decides (no credentials). The subprocess test (test_wrong_master_key) proves the process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from copytrader.config.settings import AccountSpec, Settings, load_settings
from copytrader.kraken.broker import KrakenBroker
from copytrader.service.daemon import CopyDaemon
from copytrader.service.lifecycle import Heartbeat, StopSignal
from kraken_sim.inprocess import InProcessExchange
from tests.broker.conftest import SimAccount
from tests.copy_fast.world import wait_until
from tests.simproc import new_secret

URL = "http://master-resting.test"
REPROBE_S = (0.05, 0.1)  # production: 15 min, growing to 4 h


@dataclass
class Running:
    daemon: CopyDaemon
    heartbeat: Heartbeat
    stop: StopSignal
    thread: threading.Thread
    result: list[int]


def settings_for(tmp_path: Path, master: SimAccount | None) -> Settings:
    config = tmp_path / "accounts.toml"
    config.write_text('[copy]\nmaster_tier = "pro"\n[[users]]\nid = "idle_user"\n')
    env = {
        "KRAKEN_API_URL": URL,
        "COPYTRADER_CONFIG": str(config),
        "COPYTRADER_DATA_DIR": str(tmp_path / "data"),
    }
    if master is not None:
        env |= {"KRAKEN_MASTER_API_KEY": master.key, "KRAKEN_MASTER_API_SECRET": master.secret}
    return load_settings(env, cwd=tmp_path, dotenv=False)


@contextlib.contextmanager
def running_daemon(
    settings: Settings, exchange: InProcessExchange, *, wrong_secret_probes: int
) -> Iterator[Running]:
    """The CopyDaemon in a thread. MASTER's first `wrong_secret_probes` brokers sign with a
    secret that is not the key's (as a mistyped variable does); later ones with the right one,
    standing in for a key fixed on kraken.com between probes."""
    built: list[KrakenBroker] = []

    def factory(spec: AccountSpec, settings: Settings) -> KrakenBroker:
        assert spec.credentials is not None
        credentials = spec.credentials
        if spec.is_master and sum(b.account_id == "MASTER" for b in built) < wrong_secret_probes:
            credentials = type(credentials)(credentials.key, new_secret())
        broker = KrakenBroker(
            spec.account_id, credentials, api_url=settings.api_url, data_dir=settings.data_dir,
            timeout_s=5.0, retry_waits=False, client_rate_limit=False,
            transport=exchange.adapter(),
        )  # fmt: skip
        built.append(broker)
        return broker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stop = StopSignal()
    heartbeat = Heartbeat(settings.data_dir)
    daemon = CopyDaemon(
        settings, stop, heartbeat, master_reprobe_s=REPROBE_S, broker_factory=factory
    )
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    try:
        yield Running(daemon, heartbeat, stop, thread, result)
    finally:
        stop.request("test over")
        thread.join(15)
        for broker in built:
            broker.close()
        assert not thread.is_alive(), "the daemon did not stop within 15 s"


def names(logs: Sequence[Mapping[str, Any]]) -> list[object]:
    return [e["event"] for e in logs]


def test_master_is_probed_again_only_after_each_rest_and_copying_starts_once_it_works(
    tmp_path: Path,
) -> None:
    master = SimAccount(name="master", account_id="MASTER")
    exchange = InProcessExchange(master.toml() + '[prices]\nXXBTZUSD = "60000"\n', seed=5)
    settings = settings_for(tmp_path, master)
    with (
        capture_logs() as logs,
        running_daemon(settings, exchange, wrong_secret_probes=2) as run,
    ):
        wait_until(lambda: "daemon.running" in names(logs), "copying to start", timeout_s=20)
        assert run.heartbeat.snapshot().status == "copying"
        run.stop.request("test over")
        run.thread.join(15)
        assert run.result == [0]
    order = [
        n
        for n in names(logs)
        if str(n).startswith("daemon.master_") or n in ("daemon.running", "account.failed")
    ]
    assert order == [
        "account.failed",
        "daemon.master_unavailable",
        "daemon.master_still_unavailable",
        "daemon.master_usable",
        "daemon.running",
    ], order
    [still] = [e for e in logs if e["event"] == "daemon.master_still_unavailable"]
    assert still["next_probe_s"] == REPROBE_S[1]
    failed = [r for r in exchange.requests_log(master.key) if r["error"]]
    # One refused call per probe (the start-up one and one re-probe), none in between.
    assert [r["error"] for r in failed] == ["EAPI:Invalid signature"] * 2, failed


def test_a_master_without_credentials_rests_until_stopped_without_probing(
    tmp_path: Path,
) -> None:
    exchange = InProcessExchange(SimAccount(name="other", account_id="OTHER").toml(), seed=5)
    settings = settings_for(tmp_path, None)
    with (
        capture_logs() as logs,
        running_daemon(settings, exchange, wrong_secret_probes=0) as run,
    ):
        wait_until(lambda: "daemon.master_unavailable" in names(logs), "the daemon resting")
        snap = run.heartbeat.snapshot()
        assert snap.status == "resting"
        assert "KRAKEN_MASTER_API_KEY" in str(snap.resting_reason)
        # Several re-probe rests pass: nothing is probed, the daemon keeps resting.
        wait_until(lambda: run.heartbeat.snapshot().uptime_s > 4 * sum(REPROBE_S), "rests")
        assert run.thread.is_alive()
        run.stop.request("test over")
        run.thread.join(15)
        assert run.result == [0]
    [resting] = [e for e in logs if e["event"] == "daemon.master_unavailable"]
    assert resting["next_probe_s"] is None
    assert "daemon.master_still_unavailable" not in names(logs)
    assert exchange.requests_log() == []
