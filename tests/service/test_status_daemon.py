"""End to end (simulator and daemon as processes, as paper mode runs them): the daemon serves
/healthz, /status and /metrics on its status port; /healthz says 200 only while it copies and
503 when every user is locked out; a real headless Chromium opens the page with the token
(screenshot saved as artifacts/status-page.png, a git-ignored folder) and is refused without it.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from copytrader.ledger import LEDGER_FILE_NAME
from copytrader.ledger.view import LedgerView
from tests import secretscan
from tests.copy.harness import CopyWorld, DaemonProcess, SimUser, copy_world, wait_until
from tests.service.test_locked_out_user import lock_out

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = secretscan.register_secret("paper-status-token-6c1f0e2a9b")
MASTER = {"ZUSD": "100000", "XXBT": "2"}
ALICE = SimUser("alice", {"ZUSD": "30000", "XXBT": "0.6"})
BOB = SimUser("bob", {"ZUSD": "7000", "XXBT": "0.1"})
STATUS_ENV = {"COPYTRADER_STATUS_PORT": "0", "COPYTRADER_STATUS_TOKEN": TOKEN}


def status_port(daemon: DaemonProcess) -> int:
    [listening] = wait_until(lambda: daemon.named("status.listening"), 30, "status.listening")
    assert listening["host"] == "127.0.0.1"
    return int(listening["port"])


def get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read().decode("utf-8")
    finally:
        connection.close()


def healthz_becomes(port: int, status: int, timeout_s: float = 20.0) -> str:
    found: list[tuple[int, str]] = []

    def check() -> bool:
        found.append(get(port, "/healthz"))
        return found[-1][0] == status

    wait_until(check, timeout_s, f"/healthz {status}")
    return found[-1][1]


def chromium(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a fresh profile, loopback only; stopped within `timeout_s`."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [
                str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", *args,
            ],
            capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    secretscan.record_output("chromium", done.stderr)
    return done


def copy_two_orders(world: CopyWorld, daemon: DaemonProcess) -> list[dict[str, Any]]:
    summaries = []
    for params in (
        {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.2"},
        {"pair": "XBTUSD", "type": "sell", "ordertype": "limit", "volume": "0.1",
         "price": "90000"},
    ):  # fmt: skip
        txid = world.place_master(**params)
        summaries.append(world.summary(daemon, txid))
    return summaries


@pytest.mark.timeout(240)
def test_the_daemon_serves_its_status_and_a_browser_reads_it_with_the_token() -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (Debian's chromium package; .ci/run installs it)")
    with copy_world([ALICE, BOB], master_balances=MASTER) as world:
        daemon = world.start_daemon(extra_env=STATUS_ENV)
        port = status_port(daemon)
        assert healthz_becomes(port, 200).startswith("copying: MASTER to 2/2 users")
        summaries = copy_two_orders(world, daemon)
        assert [s["placed"] for s in summaries] == [2, 2]

        status, page = get(port, "/status", TOKEN)
        assert status == 200
        for summary in summaries:
            assert summary["master_txid"] in page
        status, metrics = get(port, "/metrics", TOKEN)
        assert status == 200
        assert 'copytrader_copies_total{outcome="placed"} 4.0' in metrics
        assert "copytrader_master_orders_seen_total 2.0" in metrics
        assert get(port, "/status")[0] == 401
        assert get(port, "/metrics")[0] == 401

        url = f"http://127.0.0.1:{port}/status"
        # Without the token the browser gets the refusal (401 asking for a login, which a
        # headless browser cannot show: the load fails), not the page.
        refused = chromium("--dump-dom", url)
        assert "ERR_INVALID_AUTH_CREDENTIALS" in refused.stderr, refused.stderr[-2000:]
        assert "alice" not in refused.stdout

        # With it (what the browser's login box sends: Basic, the token as the password).
        with_token = f"http://status:{TOKEN}@127.0.0.1:{port}/status"
        dom = chromium("--dump-dom", with_token)
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert 'id="verdict"' in dom.stdout
        assert 'data-copying="yes"' in dom.stdout
        for user in ("alice", "bob"):
            assert f'data-account="{user}"' in dom.stdout
        assert dom.stdout.count('class="copy-placed"') == 4
        assert " ms</td>" in dom.stdout  # each copy's latency
        assert 'id="close-only">not measured<' in dom.stdout

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        shot.unlink(missing_ok=True)
        taken = chromium(f"--screenshot={shot}", "--window-size=1200,1100", with_token)
        assert taken.returncode == 0, taken.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
        assert daemon.stop() == 0
    assert TOKEN not in "\n".join(daemon.lines)
    assert base64.b64encode(f"status:{TOKEN}".encode()).decode() not in "\n".join(daemon.lines)


def test_healthz_is_503_while_every_user_is_locked_out() -> None:
    with copy_world([ALICE, BOB], master_balances=MASTER) as world:
        lock_out(world, "alice")
        lock_out(world, "bob")
        daemon = world.start_daemon(extra_env=STATUS_ENV)
        port = status_port(daemon)
        body = healthz_becomes(port, 503)
        wait_until(lambda: "no_user_ready" in get(port, "/healthz")[1], 20, "no_user_ready")
        body = get(port, "/healthz")[1]
        assert body.startswith("no_user_ready: no user is ready: alice: resting"), body
        assert "bob: resting" in body
        status, page = get(port, "/status", TOKEN)
        assert status == 200
        assert 'data-copying="no"' in page
        assert daemon.stop() == 0


def test_the_health_command_asks_healthz_when_a_port_is_set(tmp_path: Path) -> None:
    with copy_world([ALICE], master_balances=MASTER) as world:
        daemon = world.start_daemon(extra_env=STATUS_ENV)
        port = status_port(daemon)
        healthz_becomes(port, 200)
        env = world.environment() | {"COPYTRADER_STATUS_PORT": str(port)}
        checked = subprocess.run(
            [sys.executable, "-m", "copytrader.service.health"],
            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert daemon.stop() == 0
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("healthy: copying: MASTER to 1/1 users")


def test_healthz_says_stopping_while_the_daemon_drains() -> None:
    """The exchange answers AddOrder only after 4 s (the master's own order and then its
    copy), so the drain after SIGTERM lasts seconds, waiting for the copy in flight: all that
    time /healthz answers 503 `stopping`, never 200."""
    with copy_world([ALICE], master_balances=MASTER) as world:
        daemon = world.start_daemon(extra_env=STATUS_ENV)
        port = status_port(daemon)
        healthz_becomes(port, 200)
        world.sim.control(
            "fault", {"endpoint": "AddOrder", "kind": "latency", "latency_ms": 4000, "count": 2}
        )
        world.place_master(pair="XBTUSD", type="buy", ordertype="market", volume="0.2")
        wait_until(lambda: submitting(world), 20, "a copy in flight")
        daemon.process.send_signal(signal.SIGTERM)
        answers = []
        deadline = time.monotonic() + 20
        while daemon.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # the server closed: the daemon is exiting
                answers.append(get(port, "/healthz"))
            time.sleep(0.05)
        assert daemon.process.wait(20) == 0
    assert answers, "no /healthz answer while draining"
    assert {status for status, _ in answers} == {503}
    assert answers[0][1] == "stopping: finishing the copies in flight, then exiting\n"
    assert [e["event"] for e in daemon.named("daemon.draining")] == ["daemon.draining"]


def submitting(world: CopyWorld) -> bool:
    view = LedgerView(world.data_dir / LEDGER_FILE_NAME)
    try:
        return any(copy.state.value == "submitting" for copy in view.all_copies())
    finally:
        view.close()
