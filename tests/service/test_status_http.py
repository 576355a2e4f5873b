"""The status surface over real HTTP on loopback: a StatusBoard fed the way the daemon feeds it
(a startup report, the Heartbeat's rests, reads of MASTER's orders, a stop), served by
`status_surface` on a free port. /healthz in each state, the token rules of /status and
/metrics, the escaping of hostile names and pairs, and the token never reaching a log line.
The daemon as a process, on the simulator, is in test_status_daemon.py."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from copytrader.config.settings import load_local_settings
from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.ledger import Ledger
from copytrader.ledger.records import Decision, MasterOrderRecord
from copytrader.logs import configure_logging
from copytrader.service.lifecycle import Heartbeat
from copytrader.service.probe import AccountOutcome, AccountState, Reason
from copytrader.service.startup import StartupReport
from copytrader.service.status_http import status_surface
from copytrader.service.status_state import StatusBoard
from copytrader.service.status_verdict import HEALTH_FILE_NAME, Phase
from tests import secretscan

TOKEN = secretscan.register_secret("status-token-0123456789-abcdef")
HOSTILE_NAME = '<script>alert("name")</script>&amp;'
HOSTILE_PAIR = "<img src=x onerror=alert(1)>"


@dataclass
class Served:
    board: StatusBoard
    heartbeat: Heartbeat
    port: int
    data_dir: Path
    log: io.StringIO

    def get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers=dict(headers or {}))
            reply = connection.getresponse()
            body = reply.read().decode("utf-8")
            return reply.status, body, {k.lower(): v for k, v in reply.getheaders()}
        finally:
            connection.close()


def outcome(
    account_id: str, name: str, state: AccountState, reason: Reason, message: str
) -> AccountOutcome:
    return AccountOutcome(account_id=account_id, display_name=name, state=state, reason=reason,
                          message=message)  # fmt: skip


def connected_report(*users: tuple[str, str]) -> StartupReport:
    return StartupReport(
        master=outcome("MASTER", "MASTER", AccountState.CONNECTED, Reason.OK, "MASTER: connected"),
        users=tuple(
            outcome(f"USER:{user}", name, AccountState.CONNECTED, Reason.OK, "connected")
            for user, name in users
        ),
    )


@contextlib.contextmanager
def served(tmp_path: Path, env: Mapping[str, str]) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stream = io.StringIO()
    configure_logging("debug", fmt="json", stream=stream)
    settings = load_local_settings(
        {"COPYTRADER_DATA_DIR": str(data_dir), "COPYTRADER_STATUS_PORT": "0", **env},
        cwd=tmp_path, dotenv=False,
    )  # fmt: skip
    heartbeat = Heartbeat(data_dir, interval_s=60)
    board = StatusBoard(data_dir, heartbeat)
    with status_surface(board, settings.status, check_interval_s=0.05) as server:
        assert server is not None
        assert server.server_address[0] == "127.0.0.1"  # loopback unless told otherwise
        yield Served(board, heartbeat, int(server.server_address[1]), data_dir, stream)
    secretscan.record_output("status server log", stream.getvalue())


def start_copying(board: StatusBoard, *users: tuple[str, str]) -> None:
    board.record_connections(connected_report(*users))
    board.set_poll_interval(0.5)
    board.set_phase(Phase.RUNNING)
    board.feed_read()


def test_healthz_says_copying_only_while_copying(tmp_path: Path) -> None:
    with served(tmp_path, {}) as s:
        status, body, headers = s.get("/healthz")
        assert (status, body) == (
            503,
            "starting: connecting the accounts, then checking the ledger\n",
        )
        assert headers["cache-control"] == "no-store"

        start_copying(s.board, ("ann", "Ann"), ("bob", "Bob"))
        status, body, _ = s.get("/healthz")
        assert (status, body) == (200, "copying: MASTER to 2/2 users (ann, bob)\n")

        # MASTER's key rests (Kraken's lockout): its orders cannot be read, nothing is copied.
        s.heartbeat.watch_resting_accounts(lambda: {"MASTER": 280.0})
        status, body, _ = s.get("/healthz")
        assert status == 503
        assert body.startswith("master_down: MASTER's key rests for 280 s more")

        # MASTER unusable (a wrong key): the daemon rests.
        s.heartbeat.watch_resting_accounts(dict)
        s.heartbeat.set_resting(
            "MASTER cannot be used: EAPI:Invalid key; fix KRAKEN_MASTER_API_KEY"
        )
        status, body, _ = s.get("/healthz")
        assert (status, body) == (
            503, "master_down: MASTER cannot be used: EAPI:Invalid key; fix KRAKEN_MASTER_API_KEY\n"
        )  # fmt: skip
        s.heartbeat.set_resting(None)
        assert s.get("/healthz")[0] == 200

        # One user locked out: still copying to the other.
        s.heartbeat.watch_resting_accounts(lambda: {"ann": 300.0})
        status, body, _ = s.get("/healthz")
        assert (status, body) == (200, "copying: MASTER to 1/2 users (bob)\n")

        # Every user locked out: not copying, and each one's reason is named.
        s.heartbeat.watch_resting_accounts(lambda: {"ann": 300.0, "bob": 42.0})
        status, body, _ = s.get("/healthz")
        assert status == 503
        assert body.startswith("no_user_ready: no user is ready: ann: resting 300 s more")
        assert "bob: resting 42 s more" in body
        s.heartbeat.watch_resting_accounts(dict)
        assert s.get("/healthz")[0] == 200

        # The kill switch: not copying, but healthy: the operator paused it on purpose.
        s.board.watch_kill_switch(lambda: "kill switch on (COPYTRADER_KILL_SWITCH)")
        status, body, _ = s.get("/healthz")
        assert (status, body) == (
            200, "kill_switch: kill switch on (COPYTRADER_KILL_SWITCH): paused, nothing new is"
            " copied (cancels still are)\n"
        )  # fmt: skip
        s.board.watch_kill_switch(lambda: None)

        # A stop (SIGTERM): draining is not copying, and it stays so.
        s.board.stopping()
        s.board.set_phase(Phase.RUNNING)
        status, body, _ = s.get("/healthz")
        assert (status, body) == (503, "stopping: finishing the copies in flight, then exiting\n")
        # The monitor wrote the same verdict for the health command.
        for _ in range(100):
            written = json.loads((s.data_dir / HEALTH_FILE_NAME).read_text())
            if written["state"] == "stopping":
                break
            threading.Event().wait(0.05)
        assert (written["copying"], written["state"]) == (False, "stopping")


def test_a_feed_not_read_for_too_long_is_not_copying(tmp_path: Path) -> None:
    clock = [1000.0]
    heartbeat = Heartbeat(tmp_path, interval_s=60)
    board = StatusBoard(tmp_path, heartbeat, monotonic=lambda: clock[0])
    start_copying(board, ("ann", "Ann"))
    assert board.snapshot().verdict.copying
    board.feed_failed("ConnectionError: connection refused")
    clock[0] += 59.0
    assert board.snapshot().verdict.copying  # within 60 s: one failed read is no outage
    clock[0] += 2.0
    verdict = board.snapshot().verdict
    assert not verdict.copying
    assert verdict.reason == (
        "MASTER's orders last read 61 s ago (more than 60 s); last error: ConnectionError:"
        " connection refused"
    )
    board.feed_read()
    assert board.snapshot().verdict.copying


def test_without_a_token_only_healthz_answers(tmp_path: Path) -> None:
    with served(tmp_path, {}) as s:
        start_copying(s.board, ("ann", "Ann"))
        assert s.get("/healthz")[0] == 200
        for path in ("/status", "/metrics", "/"):
            status, body, _ = s.get(path, {"Authorization": f"Bearer {TOKEN}"})
            assert status == 404, path
            assert "COPYTRADER_STATUS_TOKEN" in body
        assert s.get("/anything")[0] == 404


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer wrong-token-0123456789-abcdef", f"Bearer {TOKEN}x",
     f"Token {TOKEN}", basic("operator", "wrong"), "Basic !!!not-base64", f"Bearer {TOKEN[:-1]}"],
)  # fmt: skip
def test_status_and_metrics_refuse_a_request_without_the_token(
    tmp_path: Path, authorization: str | None
) -> None:
    with served(tmp_path, {"COPYTRADER_STATUS_TOKEN": TOKEN}) as s:
        start_copying(s.board, ("ann", "Ann"))
        headers = {} if authorization is None else {"Authorization": authorization}
        for path in ("/status", "/metrics", "/"):
            status, body, reply_headers = s.get(path, headers)
            assert status == 401, path
            assert reply_headers["www-authenticate"].startswith("Basic realm=")
            assert "ann" not in body
            assert "copying" not in body
        assert s.get("/healthz", headers)[0] == 200  # open to Railway's and Docker's checks


def test_the_token_opens_status_and_metrics_and_is_never_logged(tmp_path: Path) -> None:
    with served(tmp_path, {"COPYTRADER_STATUS_TOKEN": TOKEN}) as s:
        start_copying(s.board, ("ann", "Ann"))
        status, page, headers = s.get("/status", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert 'data-copying="yes"' in page
        # A browser: its login box sends Basic with any user name and the token as password.
        status, same_page, _ = s.get("/status", {"Authorization": basic("me", TOKEN)})
        assert status == 200
        assert 'data-account="ann"' in same_page
        status, metrics, headers = s.get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "copytrader_copying 1.0" in metrics
        assert 'copytrader_account_ready{account="ann"} 1.0' in metrics
        assert 'copytrader_copies_total{outcome="placed"} 0.0' in metrics
        assert 'copytrader_state{state="copying"} 1.0' in metrics
        s.get(f"/status?token={TOKEN}")  # a token in the URL is not accepted, nor logged
        assert s.get(f"/status?token={TOKEN}")[0] == 401
    logged = s.log.getvalue()
    assert '"event": "status.request"' in logged  # requests are logged (at debug) ...
    assert TOKEN not in logged  # ... by path only
    assert base64.b64encode(f"me:{TOKEN}".encode()).decode() not in logged


def record_hostile_master_order(data_dir: Path) -> None:
    ledger = Ledger.in_data_dir(data_dir)
    try:
        order = MasterOrderRecord(
            txid="OHOST-<b>1</b>", pair=HOSTILE_PAIR, side=Side.BUY, order_type=OrderType.LIMIT,
            volume=Decimal("0.5"), price=Decimal("50000"), price2=None, oflags=frozenset(),
            timeinforce=TimeInForce.GTC, expiretm=None, opentm=1.0, status=OrderStatus.OPEN,
            vol_exec=Decimal(0), avg_price=None, decision=Decision.SKIP,
            skip_reason='pair "<i>unknown</i>" is not traded', first_seen_at=2.0,
        )  # fmt: skip
        ledger.record_master_order(order, ["evil"])
    finally:
        ledger.close()


def test_every_string_from_config_or_the_exchange_is_escaped(tmp_path: Path) -> None:
    with served(tmp_path, {"COPYTRADER_STATUS_TOKEN": TOKEN}) as s:
        report = StartupReport(
            master=outcome("MASTER", "MASTER", AccountState.CONNECTED, Reason.OK, "connected"),
            users=(
                outcome("USER:evil", HOSTILE_NAME, AccountState.FAILED, Reason.INVALID_KEY,
                        f"USER:evil: EAPI:Invalid key <{HOSTILE_PAIR}> (sent {TOKEN})"),
            ),
        )  # fmt: skip
        s.board.record_connections(report)
        s.board.set_phase(Phase.RUNNING)
        s.board.feed_read()
        s.board.set_drift("evil", f"{HOSTILE_PAIR} 0.5 vs 0.4", exceeded=True)
        record_hostile_master_order(s.data_dir)
        status, page, _ = s.get("/status", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    for raw in (HOSTILE_NAME, HOSTILE_PAIR, "<b>1</b>", "<i>unknown</i>"):
        assert raw not in page
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;&amp;amp;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "OHOST-&lt;b&gt;1&lt;/b&gt;" in page
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "over threshold: &lt;img" in page  # the drift slot, filled
    assert TOKEN not in page  # a secret in an exchange's text is blanked, as in the logs
    assert "(sent &lt;REDACTED&gt;)" in page
    assert 'id="close-only">not measured<' in page  # the close-only slot, empty
