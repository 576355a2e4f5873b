"""The in-process exchange: unchanged krakenex and ccxt through its requests adapter, faults as
specified (with the exceptions requests raises), its clock and its control operations."""

from __future__ import annotations

import threading
import urllib.parse
from decimal import Decimal
from typing import Any

import ccxt
import krakenex
import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from kraken_sim import errors
from kraken_sim.clock import DEFAULT_FROZEN_START, SimClock
from kraken_sim.control import ControlError
from kraken_sim.inprocess import InProcessExchange
from tests.sim.conftest import (
    ACCOUNTS_TOML,
    BASE_URL,
    Key,
    SimAccounts,
    Sleeps,
    inprocess_client,
)

# krakenex adds "nonce" to the dict it is given: always pass it a copy ({**LIMIT}).
LIMIT: dict[str, Any] = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "price": "40000",
    "volume": "0.001",
}


def _krakenex(exchange: InProcessExchange, key: Key) -> krakenex.API:
    api = krakenex.API(key.key, key.secret)
    api.uri = BASE_URL
    api.session.mount(BASE_URL, exchange.adapter())
    return api


def _open_orders(exchange: InProcessExchange, key: Key) -> dict[str, Any]:
    orders: dict[str, Any] = exchange.state()["accounts"][key.account]["open_orders"]
    return orders


def _ok(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


# --- clients, unchanged ------------------------------------------------------------------------


def test_krakenex_works_unchanged_through_the_adapter(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """krakenex with only `uri` set and the adapter mounted: public and private calls, an order
    placed, found and cancelled, all agreeing with the exchange's state."""
    api = _krakenex(exchange, keys.krakenex)
    assert _ok(api.query_public("Time", timeout=5))["unixtime"] == int(DEFAULT_FROZEN_START)
    ticker = _ok(api.query_public("Ticker", {"pair": "XBTUSD"}, timeout=5))
    assert ticker["XXBTZUSD"]["c"][0] == "60000.00000"
    balances = _ok(api.query_private("Balance", timeout=5))
    assert balances == exchange.state()["accounts"][keys.krakenex.account]["balances"]
    placed = _ok(api.query_private("AddOrder", {**LIMIT, "cl_ord_id": "ip-1"}, timeout=5))
    (txid,) = placed["txid"]
    assert list(_open_orders(exchange, keys.krakenex)) == [txid]
    found = _ok(api.query_private("OpenOrders", {"cl_ord_id": "ip-1"}, timeout=5))["open"]
    assert list(found) == [txid]
    assert _ok(api.query_private("CancelOrder", {"txid": txid}, timeout=5)) == {"count": 1}
    assert _open_orders(exchange, keys.krakenex) == {}
    logged = exchange.requests_log(keys.krakenex.key)
    assert [entry["method"] for entry in logged] == [
        "Balance", "AddOrder", "OpenOrders", "CancelOrder",
    ]  # fmt: skip


def test_krakenex_http_errors_and_moving_prices(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """A 502 reaches krakenex as requests.HTTPError; a price move fills a resting order."""
    api = _krakenex(exchange, keys.krakenex)
    placed = _ok(api.query_private("AddOrder", {**LIMIT}, timeout=5))
    exchange.arm_fault({"endpoint": "Balance", "kind": "http502"})
    with pytest.raises(requests.HTTPError, match="502"):
        api.query_private("Balance", timeout=5)
    exchange.set_price("XXBTZUSD", "39000")
    (txid,) = placed["txid"]
    closed = _ok(api.query_private("QueryOrders", {"txid": txid}, timeout=5))[txid]
    assert (closed["status"], closed["vol_exec"]) == ("closed", "0.00100000")


def test_ccxt_works_through_the_adapter(exchange: InProcessExchange, keys: SimAccounts) -> None:
    """ccxt's kraken class with the adapter mounted on its session: markets, balance, an order
    with a client id, and a 520 seen as ExchangeNotAvailable."""
    cx = ccxt.kraken({"apiKey": keys.ccxt.key, "secret": keys.ccxt.secret,
                      "enableRateLimit": False, "timeout": 5000})  # fmt: skip
    cx.urls["api"]["public"] = cx.urls["api"]["private"] = BASE_URL
    cx.session.mount(BASE_URL, exchange.adapter())
    assert cx.load_markets()["BTC/USD"]["id"] == "XXBTZUSD"
    balance = cx.fetch_balance()
    state = exchange.state()["accounts"][keys.ccxt.account]
    assert Decimal(str(balance["total"]["USD"])) == Decimal(state["balances"]["ZUSD"])
    order = cx.create_order("BTC/USD", "limit", "buy", 0.001, 40000, {"clientOrderId": "cx-ip"})
    assert list(_open_orders(exchange, keys.ccxt)) == [order["id"]]
    assert cx.fetch_open_orders()[0]["clientOrderId"] == "cx-ip"
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "http520"})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        cx.create_order("BTC/USD", "limit", "buy", 0.001, 40000)
    assert len(_open_orders(exchange, keys.ccxt)) == 1


def test_clients_on_several_threads_are_served_one_at_a_time(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """Calls from several threads through one exchange all land, in nonce order per key.

    (A raw client per key: krakenex's millisecond nonce repeats when calls are this fast.)"""
    exchange.set_limits(rest=False, orders=False)
    chosen = [keys.krakenex, keys.ccxt, keys.misc, keys.window]
    failures: list[object] = []

    def place(key: Key) -> None:
        raw = inprocess_client(exchange, key)
        for n in range(10):
            reply = raw.call("AddOrder", **LIMIT, cl_ord_id=f"t-{n}")
            if reply["error"]:
                failures.append(reply["error"])

    threads = [threading.Thread(target=place, args=(key,)) for key in chosen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    for key in chosen:
        assert len(_open_orders(exchange, key)) == 10
        nonces = [int(entry["nonce"]) for entry in exchange.requests_log(key.key)]
        assert nonces == sorted(nonces)
        assert len(set(nonces)) == 10


# --- faults ------------------------------------------------------------------------------------


def test_drop_reply_applies_the_order_then_raises_connection_error(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """drop_reply: the order is placed, krakenex sees requests.ConnectionError (connection
    aborted), and re-sending the same request is refused as a used nonce."""
    api = _krakenex(exchange, keys.faults)
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "drop_reply"})
    with pytest.raises(requests.ConnectionError) as dropped:
        api.query_private("AddOrder", {**LIMIT, "cl_ord_id": "drop-1"}, timeout=5)
    assert isinstance(dropped.value.args[0], ProtocolError)
    (placed,) = _open_orders(exchange, keys.faults).values()
    assert placed["cl_ord_id"] == "drop-1"
    sent = dropped.value.request
    assert isinstance(sent, requests.PreparedRequest)
    assert api.session.send(sent, timeout=5).json()["error"] == [errors.INVALID_NONCE]
    assert [entry["fault"] for entry in exchange.requests_log(keys.faults.key)] == [
        "drop_reply", None,
    ]  # fmt: skip


def test_hang_times_out_after_the_read_timeout_and_applies_nothing(
    exchange: InProcessExchange, keys: SimAccounts, sleeps: Sleeps
) -> None:
    """hang: requests.ReadTimeout after "waiting" the read timeout (through the injected
    sleep); nothing placed, so the very same request is accepted later, once."""
    raw = inprocess_client(exchange, keys.faults)
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "hang"})
    nonce = raw.next_nonce()
    body = f"nonce={nonce}&pair=XBTUSD&type=buy&ordertype=limit&price=40000&volume=0.001".encode()
    with pytest.raises(requests.ReadTimeout, match="read timeout=0.5"):
        raw.post_raw("AddOrder", body, nonce_text=str(nonce), timeout=(3, 0.5))
    assert sleeps.asked == [0.5]
    assert _open_orders(exchange, keys.faults) == {}
    assert raw.post_raw("AddOrder", body, nonce_text=str(nonce)).json()["error"] == []
    assert raw.post_raw("AddOrder", body, nonce_text=str(nonce)).json()["error"] == [
        errors.INVALID_NONCE
    ]
    assert len(_open_orders(exchange, keys.faults)) == 1


def test_refused_raises_new_connection_error_before_anything_is_read(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """refused: requests.ConnectionError caused by urllib3's NewConnectionError, as for a
    closed port; the nonce is not consumed and nothing is logged as a private call."""
    api = _krakenex(exchange, keys.faults)
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "refused"})
    with pytest.raises(requests.ConnectionError) as refused:
        api.query_private("AddOrder", {**LIMIT}, timeout=5)
    cause = refused.value.args[0]
    assert isinstance(cause, MaxRetryError)
    assert isinstance(cause.reason, NewConnectionError)
    assert _open_orders(exchange, keys.faults) == {}
    assert exchange.requests_log(keys.faults.key) == []
    sent = refused.value.request
    assert isinstance(sent, requests.PreparedRequest)
    assert api.session.send(sent, timeout=5).json()["error"] == []


def test_latency_goes_through_the_injected_sleep(
    exchange: InProcessExchange, keys: SimAccounts, sleeps: Sleeps
) -> None:
    """A latency fault asks the injected sleep for its delay and then serves normally; one at
    least the read timeout applies the call and raises ReadTimeout, as a slow server would."""
    raw = inprocess_client(exchange, keys.faults)
    exchange.arm_fault({"endpoint": "Balance", "kind": "latency", "latency_ms": 250})
    assert raw.call("Balance")["error"] == []
    assert sleeps.asked == [0.25]
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "latency", "latency_ms": 9000})
    nonce = raw.next_nonce()
    body = urllib.parse.urlencode({"nonce": nonce, **LIMIT}).encode()
    with pytest.raises(requests.ReadTimeout):
        raw.post_raw("AddOrder", body, nonce_text=str(nonce), timeout=2.0)
    assert sleeps.asked == [0.25, 2.0]
    assert len(_open_orders(exchange, keys.faults)) == 1


def test_without_a_sleep_latency_moves_the_simulators_clock(keys: SimAccounts) -> None:
    """By default nobody waits: `--latency-ms`-like latency advances the simulator's clock."""
    exchange = InProcessExchange(ACCOUNTS_TOML, clock=SimClock.frozen(), latency_ms=1500)
    raw = inprocess_client(exchange, keys.misc)
    assert raw.call("Balance")["error"] == []
    assert raw.call("Balance")["error"] == []
    assert exchange.state()["clock_offset_s"] == 3.0
    assert exchange.requests_log(keys.misc.key)[-1]["time"] == DEFAULT_FROZEN_START + 3.0


def test_mutate_changes_a_successful_reply_only(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """mutate sets what its path reaches in the next reply's result; the exchange's own state is
    untouched; an error reply goes out unchanged but still uses the fault up."""
    raw = inprocess_client(exchange, keys.faults)
    (txid,) = raw.call("AddOrder", **LIMIT)["result"]["txid"]
    exchange.arm_fault(
        {"endpoint": "OpenOrders", "kind": "mutate", "path": "open.*.vol", "value": "NaN"}
    )
    assert raw.call("OpenOrders")["result"]["open"][txid]["vol"] == "NaN"
    assert raw.call("OpenOrders")["result"]["open"][txid]["vol"] == "0.00100000"
    assert _open_orders(exchange, keys.faults)[txid]["vol"] == "0.00100000"
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "mutate", "path": "txid", "delete": True})
    refused = raw.call("AddOrder", **{**LIMIT, "volume": "1000"})
    assert refused == {"error": [errors.INSUFFICIENT_FUNDS]}
    assert exchange.faults() == []


def test_error_string_turns_the_error_list_into_a_string(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """error_string: a success answers `"error": ""` with its result (the call applied); a
    refusal answers its error as a plain string."""
    raw = inprocess_client(exchange, keys.faults)
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "error_string", "count": 2})
    placed = raw.call("AddOrder", **LIMIT)
    assert placed["error"] == ""
    assert list(_open_orders(exchange, keys.faults)) == placed["result"]["txid"]
    assert raw.call("AddOrder", **{**LIMIT, "volume": "1000"}) == {
        "error": errors.INSUFFICIENT_FUNDS
    }


# --- clock and control ---------------------------------------------------------------------


def test_injected_clock_drives_lockouts_and_order_times(keys: SimAccounts) -> None:
    """With a frozen clock a lockout lasts until the test advances the clock past it; orders
    carry the clock's time."""
    clock = SimClock.frozen(1_800_000_000.0)
    exchange = InProcessExchange(ACCOUNTS_TOML, clock=clock)
    bad = inprocess_client(exchange, Key(keys.locky.account, keys.locky.key, keys.misc.secret))
    for _ in range(5):
        assert bad.call("Balance")["error"] == [errors.INVALID_SIGNATURE]
    good = inprocess_client(exchange, keys.locky)
    assert good.call("Balance")["error"] == [errors.TEMPORARY_LOCKOUT]
    assert exchange.advance_clock(179) == 179
    assert good.call("Balance")["error"] == [errors.TEMPORARY_LOCKOUT]
    exchange.advance_clock(2)
    placed = good.call("AddOrder", **LIMIT)
    (txid,) = placed["result"]["txid"]
    assert _open_orders(exchange, keys.locky)[txid]["opentm"] == 1_800_000_181.0


def test_control_operations_refuse_bad_requests_as_http_does(
    exchange: InProcessExchange, keys: SimAccounts
) -> None:
    """A bad control request raises ControlError with the status HTTP would answer; over the
    adapter, /sim/ answers the same JSON as the HTTP server."""
    with pytest.raises(ControlError, match="'kind' must be one of") as bad:
        exchange.arm_fault({"endpoint": "AddOrder", "kind": "explode"})
    assert bad.value.status == 400
    with pytest.raises(ControlError) as unknown:
        exchange.control("nothing-here")
    assert unknown.value.status == 404
    with pytest.raises(ControlError) as wrong_verb:
        exchange.control("state", {})
    assert wrong_verb.value.status == 405
    session = exchange.session()
    reply = session.post(f"{BASE_URL}/sim/price", json={"pair": "XXBTZUSD"}, timeout=5)
    assert (reply.status_code, reply.json()) == (
        400, {"ok": False, "error": "'price' must be a decimal string"},
    )  # fmt: skip
    reply = session.post(f"{BASE_URL}/sim/price", json={"pair": "XXBTZUSD", "price": "1"},
                         timeout=5)  # fmt: skip
    assert reply.json() == {"ok": True}
    assert exchange.state()["prices"]["XXBTZUSD"] == "1"
    exchange.set_nonce(keys.misc.key, 10**15)
    assert exchange.state()["keys"][keys.misc.key]["nonce"] == 10**15
