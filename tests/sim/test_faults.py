"""Injected faults behave as specified: which are applied, what the client sees, counts."""

from __future__ import annotations

import time
import urllib.error
from typing import Any

import ccxt
import krakenex
import pytest
import requests

from kraken_sim import errors
from tests.sim.conftest import SimAccounts, client
from tests.sim.kraken_http import public
from tests.simproc import SimProcess

LIMIT: dict[str, Any] = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "price": "40000",
    "volume": "0.001",
}


def _open_orders(sim: SimProcess, keys: SimAccounts) -> dict[str, Any]:
    orders: dict[str, Any] = sim.control("state")["accounts"][keys.faults.account]["open_orders"]
    return orders


def _armed(sim: SimProcess) -> list[dict[str, Any]]:
    faults: list[dict[str, Any]] = sim.control("faults")["faults"]
    return faults


@pytest.fixture
def api(sim: SimProcess, keys: SimAccounts) -> krakenex.API:
    kx = krakenex.API(keys.faults.key, keys.faults.secret)
    kx.uri = sim.url
    return kx


def test_latency_fault_delays_matching_requests_only(sim: SimProcess, keys: SimAccounts) -> None:
    """A latency fault adds its delay to the next `count` calls of its method, then is gone."""
    sim.control("fault", {"endpoint": "Balance", "kind": "latency", "latency_ms": 300})
    faulty = client(sim, keys.faults)
    started = time.monotonic()
    assert faulty.call("Balance")["error"] == []
    assert time.monotonic() - started >= 0.3
    assert _armed(sim) == []
    started = time.monotonic()
    assert faulty.call("Balance")["error"] == []
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("unavailable", errors.SERVICE_UNAVAILABLE),
        ("busy", errors.SERVICE_BUSY),
        ("internal", errors.INTERNAL_ERROR),
    ],
)
def test_error_faults_answer_krakens_error_and_do_not_apply(
    sim: SimProcess, keys: SimAccounts, kind: str, error: str
) -> None:
    """unavailable/busy/internal answer Kraken's error for `count` calls without placing the
    order; the count goes down by one per call."""
    faulty = client(sim, keys.faults)
    sim.control("fault", {"endpoint": "AddOrder", "kind": kind, "count": 2})
    assert faulty.call("AddOrder", **LIMIT)["error"] == [error]
    assert _armed(sim) == [{"endpoint": "AddOrder", "kind": kind, "count": 1, "latency_ms": 0.0}]
    assert faulty.call("AddOrder", **LIMIT)["error"] == [error]
    assert _armed(sim) == []
    assert _open_orders(sim, keys) == {}
    placed = faulty.call("AddOrder", **LIMIT)
    assert placed["error"] == []
    assert list(_open_orders(sim, keys)) == placed["result"]["txid"]
    assert faulty.call("CancelAll")["result"] == {"count": 1}


def test_http502_is_not_applied_and_the_same_request_can_be_resent(
    sim: SimProcess, keys: SimAccounts, api: krakenex.API
) -> None:
    """On HTTP 502 krakenex raises HTTPError, nothing was placed, and re-sending the very same
    request (krakenex's documented recipe) places the order once."""
    sim.control("fault", {"endpoint": "AddOrder", "kind": "http502"})
    with pytest.raises(requests.HTTPError, match="502"):
        api.query_private("AddOrder", {**LIMIT, "cl_ord_id": "f-502"}, timeout=5)
    assert _open_orders(sim, keys) == {}
    resent = api.session.send(api.response.request, timeout=5).json()
    assert resent["error"] == []
    assert list(_open_orders(sim, keys)) == resent["result"]["txid"]
    assert api.query_private("CancelAll", timeout=5)["result"] == {"count": 1}


def test_http520_reaches_ccxt_as_exchange_not_available(sim: SimProcess, keys: SimAccounts) -> None:
    """On HTTP 520 ccxt raises ExchangeNotAvailable and nothing was placed."""
    exchange = ccxt.kraken(
        {"apiKey": keys.faults.key, "secret": keys.faults.secret, "enableRateLimit": False}
    )
    exchange.urls["api"]["public"] = exchange.urls["api"]["private"] = sim.url
    exchange.load_markets()
    sim.control("fault", {"endpoint": "AddOrder", "kind": "http520"})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.create_order("BTC/USD", "limit", "buy", 0.001, 40000)
    assert _open_orders(sim, keys) == {}


def test_hang_never_answers_and_is_not_applied(sim: SimProcess, keys: SimAccounts) -> None:
    """A hanging request times out on the client, places nothing, and does not block others."""
    sim.control("fault", {"endpoint": "AddOrder", "kind": "hang"})
    faulty = client(sim, keys.faults)
    nonce = faulty.next_nonce()
    body = f"nonce={nonce}&pair=XBTUSD&type=buy&ordertype=limit&price=40000&volume=0.001"
    with pytest.raises(requests.ReadTimeout):
        faulty.post_raw("AddOrder", body.encode(), nonce_text=str(nonce), timeout=0.5)
    assert public(sim.url, "Time")["error"] == []
    assert _open_orders(sim, keys) == {}
    # The nonce never reached authentication, so the same bytes are accepted later, once.
    replay = faulty.post_raw("AddOrder", body.encode(), nonce_text=str(nonce))
    assert replay.json()["error"] == []
    assert faulty.call("CancelAll")["result"] == {"count": 1}


def test_drop_reply_applies_the_order_then_hangs_up(
    sim: SimProcess, keys: SimAccounts, api: krakenex.API
) -> None:
    """drop_reply places the order and closes the connection: krakenex raises ConnectionError,
    the order is on the book, and re-sending the same request is refused as a used nonce."""
    sim.control("fault", {"endpoint": "AddOrder", "kind": "drop_reply"})
    with pytest.raises(requests.ConnectionError) as dropped:
        api.query_private("AddOrder", {**LIMIT, "cl_ord_id": "f-drop"}, timeout=5)
    (placed,) = _open_orders(sim, keys).values()
    assert placed["cl_ord_id"] == "f-drop"
    sent = dropped.value.request
    assert isinstance(sent, requests.PreparedRequest)
    resent = api.session.send(sent, timeout=5)
    assert resent.json()["error"] == [errors.INVALID_NONCE]
    found = api.query_private("OpenOrders", {"cl_ord_id": "f-drop"}, timeout=5)["result"]
    assert len(found["open"]) == 1
    logged = sim.control(f"requests?key={keys.faults.key}")["requests"]
    assert [entry["fault"] for entry in logged if entry["method"] == "AddOrder"][-2:] == [
        "drop_reply",
        None,
    ]
    assert api.query_private("CancelAll", timeout=5)["result"] == {"count": 1}


def test_bad_reply_applies_the_order_then_answers_garbage(
    sim: SimProcess, keys: SimAccounts, api: krakenex.API
) -> None:
    """bad_reply places the order and answers HTTP 200 with a JSON body that is not Kraken's
    {"error", "result"} envelope."""
    sim.control("fault", {"endpoint": "AddOrder", "kind": "bad_reply"})
    reply = api.query_private("AddOrder", {**LIMIT, "cl_ord_id": "f-bad"}, timeout=5)
    assert reply == {"unexpected": True}
    placed = [o for o in _open_orders(sim, keys).values() if o["cl_ord_id"] == "f-bad"]
    assert len(placed) == 1
    logged = sim.control(f"requests?key={keys.faults.key}")["requests"]
    assert [entry["fault"] for entry in logged if entry["method"] == "AddOrder"][-1] == "bad_reply"
    assert api.query_private("CancelAll", timeout=5)["result"]["count"] >= 1


def test_star_fault_hits_public_and_private_until_cleared(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """endpoint "*" with count -1 affects every method until /sim/faults/clear."""
    sim.control("fault", {"endpoint": "*", "kind": "busy", "count": -1})
    faulty = client(sim, keys.faults)
    for _ in range(3):
        assert public(sim.url, "Time")["error"] == [errors.SERVICE_BUSY]
        assert faulty.call("Balance")["error"] == [errors.SERVICE_BUSY]
    assert _armed(sim)[0]["count"] == -1
    sim.control("faults/clear", {})
    assert public(sim.url, "Time")["error"] == []
    assert faulty.call("Balance")["error"] == []


def test_drop_reply_on_a_public_call(sim: SimProcess) -> None:
    """A dropped public reply is a connection error for the client."""
    sim.control("fault", {"endpoint": "Ticker", "kind": "drop_reply"})
    with pytest.raises(requests.ConnectionError):
        public(sim.url, "Ticker", pair="XBTUSD")
    assert public(sim.url, "Ticker", pair="XBTUSD")["error"] == []


def test_bad_fault_requests_are_refused(sim: SimProcess) -> None:
    """A control request that does not describe a fault is a 400 with the reason."""
    with pytest.raises(urllib.error.HTTPError) as caught:
        sim.control("fault", {"endpoint": "AddOrder", "kind": "explode"})
    assert caught.value.code == 400
    assert "'kind' must be one of" in caught.value.read().decode()
    assert _armed(sim) == []


def test_drop_reply_also_hides_a_rejection(sim: SimProcess, keys: SimAccounts) -> None:
    """The reply is dropped whatever the outcome: a refused order is a connection error too,
    and the request log shows what really happened."""
    sim.control("fault", {"endpoint": "AddOrder", "kind": "drop_reply"})
    faulty = client(sim, keys.faults)
    with pytest.raises(requests.ConnectionError):
        faulty.call("AddOrder", **{**LIMIT, "volume": "1000"})
    assert _open_orders(sim, keys) == {}
    last = sim.control(f"requests?key={keys.faults.key}")["requests"][-1]
    assert (last["error"], last["fault"]) == (errors.INSUFFICIENT_FUNDS, "drop_reply")


def test_refused_closes_before_reading_and_applies_nothing(
    sim: SimProcess, keys: SimAccounts, api: krakenex.API
) -> None:
    """refused: the server hangs up before reading, krakenex raises ConnectionError, nothing
    was placed and the nonce was not consumed, so the same request is accepted when re-sent."""
    sim.control("fault", {"endpoint": "AddOrder", "kind": "refused"})
    with pytest.raises(requests.ConnectionError) as refused:
        api.query_private("AddOrder", {**LIMIT, "cl_ord_id": "f-refused"}, timeout=5)
    assert _open_orders(sim, keys) == {}
    sent = refused.value.request
    assert isinstance(sent, requests.PreparedRequest)
    assert api.session.send(sent, timeout=5).json()["error"] == []
    (placed,) = _open_orders(sim, keys).values()
    assert placed["cl_ord_id"] == "f-refused"
    assert api.query_private("CancelAll", timeout=5)["result"] == {"count": 1}
