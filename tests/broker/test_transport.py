"""The HTTP side of the broker (krakenex's requests session): what each failure is called, one
kept-alive connection, no retries below the broker, a timeout on every call, the environment's
proxy honoured, and a transport that can be swapped in."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import krakenex
import pytest
import requests

from copytrader.config.credentials import ApiCredentials
from copytrader.domain import OrderType, Side
from copytrader.errors import ConfigError, KrakenError, OutcomeUnknownError, RetryLaterError
from copytrader.kraken.api import public_api
from copytrader.kraken.broker import CONNECT_TIMEOUT_S, KrakenBroker
from copytrader.kraken.http import failure_of
from copytrader.kraken.models import OrderRequest
from tests.broker.conftest import SimAccount, accounts_toml, make_broker, new_key
from tests.broker.scripted import SCRIPTED_URL, Reply, ScriptedTransport, by_method, reply
from tests.simproc import SimProcess, new_secret, running_sim

TIMEOUT_S = 5.0
USER_AGENT = f"krakenex/{krakenex.version.__version__} (+{krakenex.version.__url__})"


@pytest.fixture(name="master", scope="module")
def _master() -> SimAccount:
    return SimAccount(name="master", account_id="MASTER")


@pytest.fixture(name="sim", scope="module")
def _sim(master: SimAccount) -> Iterator[SimProcess]:
    with running_sim(accounts_toml(master)) as sim:
        yield sim


@pytest.fixture(name="clear_faults")
def _clear_faults(sim: SimProcess) -> Iterator[None]:
    yield
    sim.control("faults/clear", {})


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the port was just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def scripted_broker(transport: ScriptedTransport, tmp_path: Path, **kwargs: object) -> KrakenBroker:
    options: dict[str, object] = {"retry_waits": False, "client_rate_limit": False}
    options.update(kwargs)
    return KrakenBroker(
        "MASTER",
        ApiCredentials(new_key(), new_secret()),
        api_url=SCRIPTED_URL,
        data_dir=tmp_path,
        transport=transport,
        **options,  # type: ignore[arg-type]
    )


class _Server(http.server.ThreadingHTTPServer):
    """A local HTTP/1.1 server answering every path with an empty Kraken result. It counts the
    connections it accepted; with `hang_up`, it closes each connection after one reply (as a
    server does to a kept-alive connection after its idle timeout) and says so."""

    daemon_threads = True

    def __init__(self, *, hang_up: bool) -> None:
        self.hang_up = hang_up
        self.connections = 0
        self.hung_up = threading.Semaphore(0)
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def get_request(self) -> tuple[socket.socket, object]:
        accepted = super().get_request()
        self.connections += 1
        return accepted

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        super().shutdown_request(request)
        self.hung_up.release()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"error":[],"result":{}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.server.hang_up

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(name="server")
def _server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    server = _Server(hang_up=bool(getattr(request, "param", False)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def test_calls_reuse_one_kept_alive_connection(server: _Server, tmp_path: Path) -> None:
    """Private calls of one account share one connection, and so do its public calls."""
    broker = KrakenBroker(
        "MASTER",
        ApiCredentials(new_key(), new_secret()),
        api_url=server.url,
        data_dir=tmp_path,
        client_rate_limit=False,
    )
    try:
        for _ in range(5):
            assert broker.balances() == {}
        assert server.connections == 1
        api = public_api(server.url)
        for _ in range(5):
            api.query_public("Time", timeout=TIMEOUT_S)
        api.close()
        assert server.connections == 2
    finally:
        broker.close()


@pytest.mark.parametrize("server", [True], indirect=True)
def test_a_connection_the_server_closed_while_idle_is_replaced(server: _Server) -> None:
    """A kept connection the server closed meanwhile is noticed before it carries a request
    (none is lost on it, though nothing is retried): a fresh one is made."""
    api = public_api(server.url)
    try:
        api.query_public("Time", timeout=TIMEOUT_S)
        assert server.hung_up.acquire(timeout=5.0)
        api.query_public("Time", timeout=TIMEOUT_S)
        assert server.connections == 2
    finally:
        api.close()


def test_nobody_listening_is_not_sent(tmp_path: Path) -> None:
    """A refused connection is "not sent", for a read and for the lookup of a write alike."""
    url = closed_port_url()
    with pytest.raises(requests.ConnectionError) as caught:
        public_api(url).query_public("Time", timeout=TIMEOUT_S)
    assert failure_of(caught.value).not_sent
    broker = KrakenBroker(
        "MASTER",
        ApiCredentials(new_key(), new_secret()),
        api_url=url,
        data_dir=tmp_path,
        retry_waits=False,
        client_rate_limit=False,
    )
    with pytest.raises(RetryLaterError, match=r"failed \(NewConnectionError\); not sent"):
        broker.balances()


def test_a_failed_tls_handshake_is_not_sent(server: _Server) -> None:
    """TLS to a server that speaks plain HTTP fails in the handshake: the request never left."""
    https_url = server.url.replace("http://", "https://")
    with pytest.raises(requests.exceptions.SSLError) as caught:
        public_api(https_url).query_public("Time", timeout=TIMEOUT_S)
    failure = failure_of(caught.value)
    assert failure.not_sent
    assert failure.text == "connection failed (SSLError)"


def test_a_hung_server_is_no_reply_after_the_timeout(
    sim: SimProcess, master: SimAccount, clear_faults: None, tmp_path: Path
) -> None:
    """A read whose reply never comes is given up after the timeout, and retried later."""
    sim.control("fault", {"endpoint": "Balance", "kind": "hang", "count": -1})
    broker = make_broker(master, sim, tmp_path, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(RetryLaterError, match=r"Balance: no reply within 0.3 s"):
        broker.balances()
    assert time.monotonic() - started < 10.0
    broker.close()


def test_a_dropped_reply_is_no_reply_and_the_next_call_reconnects(
    sim: SimProcess, clear_faults: None
) -> None:
    api = public_api(sim.url)
    api.query_public("Time", timeout=TIMEOUT_S)
    sim.control("fault", {"endpoint": "Time", "kind": "drop_reply", "count": 1})
    with pytest.raises(requests.ConnectionError) as caught:
        api.query_public("Time", timeout=TIMEOUT_S)
    failure = failure_of(caught.value)
    assert not failure.not_sent
    assert not failure.timed_out
    assert failure.text == "no reply (RemoteDisconnected)"
    assert api.query_public("Time", timeout=TIMEOUT_S)["error"] == []
    api.close()


@pytest.mark.parametrize(("kind", "status"), [("http502", 502), ("http520", 520)])
def test_a_gateway_error_is_an_http_status(
    sim: SimProcess, clear_faults: None, kind: str, status: int
) -> None:
    sim.control("fault", {"endpoint": "Time", "kind": kind, "count": 1})
    with pytest.raises(requests.HTTPError) as caught:
        public_api(sim.url).query_public("Time", timeout=TIMEOUT_S)
    failure = failure_of(caught.value)
    assert (failure.status, failure.text) == (status, f"HTTP {status}")


def test_a_lost_write_reply_is_sent_once_then_looked_up(
    sim: SimProcess, master: SimAccount, clear_faults: None, tmp_path: Path
) -> None:
    """No retry below the broker: a dropped AddOrder reply reaches the exchange once; the broker
    looks the order up instead of sending it again."""
    broker = make_broker(master, sim, tmp_path)
    before = sim.control("state")["counters"]["by_method"].get("AddOrder", 0)
    sim.control("fault", {"endpoint": "AddOrder", "kind": "drop_reply", "count": 1})
    order = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.01"), price=Decimal("50000"),
    )  # fmt: skip
    result = broker.add_order(order)
    assert result.resolved_by_lookup
    assert sim.control("state")["counters"]["by_method"]["AddOrder"] == before + 1
    broker.close()


def test_every_call_has_a_timeout_and_goes_as_krakenex_sends_it(tmp_path: Path) -> None:
    """Through the swapped-in transport: private calls POST a signed form, public ones GET a
    query string, all with krakenex's User-Agent and a (connect, read) timeout."""
    transport = ScriptedTransport(
        by_method(
            {
                "Balance": lambda _: reply({"ZUSD": "12.5"}),
                "Time": lambda _: reply({"unixtime": 1}),
                "AssetPairs": lambda _: reply({}),
            }
        )
    )
    broker = scripted_broker(transport, tmp_path, timeout_s=7.0)
    assert broker.balances() == {"ZUSD": Decimal("12.5")}
    assert broker.asset_pairs() == {}
    private, public = transport.calls
    assert (private.http_method, private.path) == ("POST", "/0/private/Balance")
    assert set(private.fields) == {"nonce"}
    assert {"API-Key", "API-Sign"} <= set(private.headers)
    assert (public.http_method, public.path) == ("GET", "/0/public/AssetPairs")
    for call in transport.calls:
        assert call.headers["User-Agent"] == USER_AGENT
        assert call.timeout == (min(7.0, CONNECT_TIMEOUT_S), 7.0)
    broker.close()
    assert not transport.closed  # the caller's transport, maybe serving other brokers too


def test_a_transport_failure_raised_by_the_transport_is_classified(tmp_path: Path) -> None:
    """What a transport raises is read like the network's own failures: a read timeout on a
    write leaves its outcome unknown; a refused connection was not sent."""
    transport = ScriptedTransport(lambda _: requests.ReadTimeout("timed out"))
    broker = scripted_broker(transport, tmp_path)
    with pytest.raises(RetryLaterError, match=r"no reply within 10 s$"):
        broker.balances()
    with pytest.raises(OutcomeUnknownError):
        broker.private_write("CancelOrder", {"txid": "T"})
    transport.script = lambda _: Reply(status=404, raw=b"not found")
    with pytest.raises(KrakenError, match="HTTP 404"):
        broker.balances()


def test_the_environments_proxy_is_used(sim: SimProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY is honoured (requests' own handling): a base URL nobody listens on is reached
    through the proxy, here the simulator itself, which serves absolute-form request targets."""
    unreachable = closed_port_url()
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, sim.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    api = public_api(unreachable)
    try:
        assert api.query_public("Time", timeout=TIMEOUT_S)["error"] == []
    finally:
        api.close()


def test_a_socks_proxy_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SOCKS proxy needs PySocks, which is not installed: a configuration error at start,
    not a failure of every call."""
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "socks5://proxy.example:1080")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    with pytest.raises(ConfigError, match="PySocks"):
        public_api("https://api.kraken.example")


def test_a_base_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        public_api("ftp://api.kraken.example")
