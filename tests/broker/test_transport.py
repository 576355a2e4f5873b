"""The HTTP transport against the simulator (and a closed port): what each failure is called,
one kept-alive connection, and the environment's proxy honoured."""

from __future__ import annotations

import http.server
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from copytrader.errors import ConfigError
from copytrader.kraken.signing import USER_AGENT
from copytrader.kraken.transport import (
    HttpStatusError,
    HttpTransport,
    NoReplyError,
    NotSentError,
)
from tests.broker.conftest import SimAccount, accounts_toml
from tests.simproc import SimProcess, running_sim

TIME = "/0/public/Time"


@pytest.fixture(name="sim", scope="module")
def _sim() -> Iterator[SimProcess]:
    with running_sim(accounts_toml(SimAccount(name="master", account_id="MASTER"))) as sim:
        yield sim


@pytest.fixture(name="transport")
def _transport(sim: SimProcess) -> Iterator[HttpTransport]:
    transport = HttpTransport(sim.url, user_agent=USER_AGENT)
    try:
        yield transport
    finally:
        transport.close()
        sim.control("faults/clear", {})


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the port was just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_reply_is_read_and_one_connection_is_kept_alive(transport: HttpTransport) -> None:
    """Calls reuse one connection: no new TCP (or TLS) handshake per call."""
    for _ in range(5):
        reply = transport.get(TIME, {}, {}, 5.0)
        assert reply.status == 200
        assert reply.json()["error"] == []
    assert transport.connections_made == 1  # every call after the first reused it


class _AnswerThenHangUp(http.server.BaseHTTPRequestHandler):
    """Answers as if the connection stayed open (HTTP/1.1, no Connection: close), then closes
    it: what a server does to a kept-alive connection after its idle timeout."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"error":[],"result":{}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """A kept connection that the server closed meanwhile is noticed before it carries a
    request (no request is lost on it): a fresh one is made."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswerThenHangUp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    transport = HttpTransport(f"http://127.0.0.1:{server.server_address[1]}", user_agent="t")
    try:
        assert transport.get(TIME, {}, {}, 5.0).status == 200
        assert transport._connection is not None
        assert transport._connection.sock is not None
        hung_up = select.poll()  # wait for the server's FIN to arrive, at most 5 s
        hung_up.register(transport._connection.sock, select.POLLIN)
        assert hung_up.poll(5000)
        assert transport.get(TIME, {}, {}, 5.0).status == 200
        assert transport.connections_made == 2
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def test_nobody_listening_is_not_sent() -> None:
    transport = HttpTransport(closed_port_url(), user_agent=USER_AGENT)
    with pytest.raises(NotSentError, match="connection failed"):
        transport.post("/0/private/AddOrder", "nonce=1", {}, 2.0)


def test_a_hung_server_is_no_reply_after_the_timeout(
    sim: SimProcess, transport: HttpTransport
) -> None:
    sim.control("fault", {"endpoint": "Time", "kind": "hang", "count": 1})
    started = time.monotonic()
    with pytest.raises(NoReplyError) as caught:
        transport.get(TIME, {}, {}, 0.3)
    assert caught.value.timed_out
    assert time.monotonic() - started < 5.0


def test_a_dropped_reply_is_no_reply_and_the_next_call_reconnects(
    sim: SimProcess, transport: HttpTransport
) -> None:
    transport.get(TIME, {}, {}, 5.0)  # a kept connection, which the server then drops
    sim.control("fault", {"endpoint": "Time", "kind": "drop_reply", "count": 1})
    with pytest.raises(NoReplyError) as caught:
        transport.get(TIME, {}, {}, 5.0)
    assert not caught.value.timed_out
    assert transport.get(TIME, {}, {}, 5.0).status == 200
    assert transport.connections_made == 2


@pytest.mark.parametrize(("kind", "status"), [("http502", 502), ("http520", 520)])
def test_a_gateway_error_is_an_http_status(
    sim: SimProcess, transport: HttpTransport, kind: str, status: int
) -> None:
    sim.control("fault", {"endpoint": "Time", "kind": kind, "count": 1})
    with pytest.raises(HttpStatusError) as caught:
        transport.get(TIME, {}, {}, 5.0)
    assert caught.value.status == status
    assert str(caught.value) == f"HTTP {status}"


def test_the_environments_proxy_is_used(sim: SimProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY is honoured (as requests did): a base URL nobody listens on is reached
    through the proxy, here the simulator itself, which serves absolute-form request targets."""
    unreachable = closed_port_url()
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, sim.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    transport = HttpTransport(unreachable, user_agent=USER_AGENT)
    try:
        assert transport.get(TIME, {}, {}, 5.0).json()["error"] == []
    finally:
        transport.close()


@pytest.mark.parametrize("proxy", ["https://proxy.example:8443", "socks5://proxy.example:1080"])
def test_a_proxy_that_is_not_plain_http_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    """Talking plain HTTP to an https:// or SOCKS proxy would send the CONNECT (and any
    password in the proxy URL) in clear: refused with a configuration error instead."""
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    # A host of its own per case: proxy settings are resolved once per base URL.
    host = proxy.split(":", 1)[0]
    with pytest.raises(ConfigError, match="not supported"):
        HttpTransport(f"https://kraken-{host}-proxy-test.example", user_agent=USER_AGENT)
