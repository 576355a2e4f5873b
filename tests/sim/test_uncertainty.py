"""Kraken's uncertainty as faults, over HTTP (the session's simulator process) and in-process
(a fresh InProcessExchange on a frozen clock): late visibility, gateway errors that may have
applied the request, EService: Throttled, EService:Deadline elapsed and AddOrder's `deadline`."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ccxt
import krakenex
import pytest
import requests

from kraken_sim import errors
from kraken_sim.clock import DEFAULT_FROZEN_START, SimClock
from kraken_sim.control import ControlError
from kraken_sim.inprocess import InProcessExchange
from tests.sim.conftest import ACCOUNTS_TOML, BASE_URL, Key, SimAccounts
from tests.sim.kraken_http import RawClient
from tests.simproc import SimProcess

LIMIT: dict[str, Any] = {
    "pair": "XBTUSD",
    "type": "buy",
    "ordertype": "limit",
    "price": "40000",
    "volume": "0.001",
}
MARKET: dict[str, Any] = {"pair": "XBTUSD", "type": "buy", "ordertype": "market",
                          "volume": "0.001"}  # fmt: skip
HTTP_TIMEOUT_S = 5.0


@dataclass
class Venue:
    """One simulator, reached over HTTP or in-process, with what the tests need of it."""

    name: str
    base_url: str
    control: Callable[..., Any]
    session: Callable[[], requests.Session]
    wall_clock: bool  # True: the simulator's clock follows the machine's

    def client(self, key: Key) -> RawClient:
        return RawClient(self.base_url, key.key, key.secret, session=self.session())

    def krakenex(self, key: Key) -> krakenex.API:
        api = krakenex.API(key.key, key.secret)
        api.uri = self.base_url
        api.session = self.session()
        return api

    def ccxt(self, key: Key) -> ccxt.kraken:
        exchange = ccxt.kraken({"apiKey": key.key, "secret": key.secret,
                                "enableRateLimit": False, "timeout": 5000})  # fmt: skip
        exchange.urls["api"]["public"] = exchange.urls["api"]["private"] = self.base_url
        exchange.session = self.session()
        return exchange

    def now(self) -> float:
        """The simulator's clock (machine time plus its offset, or the frozen start plus it)."""
        offset = float(self.control("state")["clock_offset_s"])
        return (time.time() if self.wall_clock else DEFAULT_FROZEN_START) + offset

    def advance(self, seconds: float) -> None:
        self.control("clock", {"advance_s": seconds})

    def refusal(self, spec: dict[str, Any]) -> str:
        """Arm a fault spec the simulator must refuse; the reason it gives (HTTP 400)."""
        if self.wall_clock:
            with pytest.raises(urllib.error.HTTPError) as http_error:
                self.control("fault", spec)
            assert http_error.value.code == 400
            reason: str = json.loads(http_error.value.read())["error"]
            return reason
        with pytest.raises(ControlError) as control_error:
            self.control("fault", spec)
        assert control_error.value.status == 400
        return str(control_error.value)

    def open_orders(self, key: Key) -> dict[str, Any]:
        found: dict[str, Any] = self.control("state")["accounts"][key.account]["open_orders"]
        return found


@pytest.fixture(params=["http", "inprocess"])
def venue(request: pytest.FixtureRequest, keys: SimAccounts) -> Iterator[Venue]:
    if request.param == "http":
        sim: SimProcess = request.getfixturevalue("sim")
        yield Venue("http", sim.url, sim.control, requests.Session, wall_clock=True)
        # The session's simulator is shared: leave the faulty account without open orders.
        RawClient(sim.url, keys.faults.key, keys.faults.secret).call("CancelAll")
    else:
        exchange = InProcessExchange(ACCOUNTS_TOML, seed=7, clock=SimClock.frozen())
        yield Venue("inprocess", BASE_URL, exchange.control,
                    lambda: exchange.session(BASE_URL), wall_clock=False)  # fmt: skip


def _ok(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


def _rfc3339(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- late_visibility -----------------------------------------------------------------------


def test_late_visibility_lists_a_new_order_only_after_its_delay(
    venue: Venue, keys: SimAccounts
) -> None:
    """The order is on the book at once (state, cancel), but OpenOrders, QueryOrders and
    ClosedOrders leave it out until the simulator's clock has moved past the delay."""
    venue.control("fault", {"endpoint": "AddOrder", "kind": "late_visibility", "delay_s": 30})
    faulty = venue.client(keys.faults)
    (txid,) = _ok(faulty.call("AddOrder", **LIMIT, cl_ord_id="late-open"))["txid"]
    assert list(venue.open_orders(keys.faults)) == [txid]
    assert _ok(faulty.call("OpenOrders", cl_ord_id="late-open")) == {"open": {}}
    assert _ok(faulty.call("QueryOrders", txid=txid)) == {}
    venue.advance(29)
    assert _ok(faulty.call("OpenOrders", cl_ord_id="late-open")) == {"open": {}}
    venue.advance(2)
    assert list(_ok(faulty.call("OpenOrders", cl_ord_id="late-open"))["open"]) == [txid]
    assert _ok(faulty.call("QueryOrders", txid=txid))[txid]["status"] == "open"
    assert _ok(faulty.call("CancelOrder", txid=txid)) == {"count": 1}


def test_late_visibility_keeps_a_filled_order_out_of_closed_orders(
    venue: Venue, keys: SimAccounts
) -> None:
    """A market order under late_visibility fills, yet neither order list nor QueryOrders shows
    it (ClosedOrders' count leaves it out too) until the delay has passed."""
    venue.control("fault", {"endpoint": "AddOrder", "kind": "late_visibility", "delay_s": 10})
    faulty = venue.client(keys.faults)
    (txid,) = _ok(faulty.call("AddOrder", **MARKET, cl_ord_id="late-market"))["txid"]
    assert _ok(faulty.call("ClosedOrders", cl_ord_id="late-market")) == {"closed": {}, "count": 0}
    assert _ok(faulty.call("OpenOrders", cl_ord_id="late-market")) == {"open": {}}
    assert _ok(faulty.call("QueryOrders", txid=txid)) == {}
    venue.advance(11)
    closed = _ok(faulty.call("ClosedOrders", cl_ord_id="late-market"))
    assert (list(closed["closed"]), closed["count"]) == ([txid], 1)
    assert _ok(faulty.call("QueryOrders", txid=txid))[txid]["status"] == "closed"


def test_late_visibility_spec_is_checked(venue: Venue) -> None:
    """A late_visibility fault needs a positive delay; other kinds refuse `delay_s`."""
    assert "delay_s" in venue.refusal({"endpoint": "AddOrder", "kind": "late_visibility"})
    assert "delay_s" in venue.refusal({"endpoint": "AddOrder", "kind": "busy", "delay_s": 1})


# --- gateway faults that may have applied the request -------------------------------------------


def test_http502_with_apply_probability_1_places_the_order_then_fails(
    venue: Venue, keys: SimAccounts
) -> None:
    """krakenex sees HTTP 502, yet the order reached the engine: it is on the book, the nonce is
    used up (the very same request is now refused), and the request log names the fault."""
    venue.control("fault", {"endpoint": "AddOrder", "kind": "http502", "apply_probability": 1})
    api = venue.krakenex(keys.faults)
    with pytest.raises(requests.HTTPError, match="502"):
        api.query_private("AddOrder", {**LIMIT, "cl_ord_id": "applied-502"}, timeout=5)
    (placed,) = venue.open_orders(keys.faults).values()
    assert placed["cl_ord_id"] == "applied-502"
    resent = api.session.send(api.response.request, timeout=5).json()
    assert resent["error"] == [errors.INVALID_NONCE]
    found = api.query_private("OpenOrders", {"cl_ord_id": "applied-502"}, timeout=5)["result"]
    assert len(found["open"]) == 1
    logged = venue.control("requests?" + urllib.parse.urlencode({"key": keys.faults.key}))
    adds = [entry for entry in logged["requests"] if entry["method"] == "AddOrder"]
    assert [(entry["fault"], entry["error"]) for entry in adds[-2:]] == [
        ("http502", None),
        (None, errors.INVALID_NONCE),
    ]


def test_http520_with_apply_probability_1_reaches_ccxt_as_exchange_not_available(
    venue: Venue, keys: SimAccounts
) -> None:
    """ccxt raises ExchangeNotAvailable for the 520, and the order was placed all the same."""
    exchange = venue.ccxt(keys.faults)
    exchange.load_markets()
    venue.control("fault", {"endpoint": "AddOrder", "kind": "http520", "apply_probability": 1})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.create_order("BTC/USD", "limit", "buy", 0.001, 40000, {"clientOrderId": "cx-520"})
    (placed,) = venue.open_orders(keys.faults).values()
    assert placed["cl_ord_id"] == "cx-520"
    assert [order["clientOrderId"] for order in exchange.fetch_open_orders()] == ["cx-520"]


def test_hang_with_apply_probability_1_times_out_after_placing(
    venue: Venue, keys: SimAccounts
) -> None:
    """The client times out, and the order is on the book: a timeout is no proof of nothing."""
    venue.control("fault", {"endpoint": "AddOrder", "kind": "hang", "apply_probability": 1})
    faulty = venue.client(keys.faults)
    nonce = faulty.next_nonce()
    body = urllib.parse.urlencode({"nonce": nonce, **LIMIT, "cl_ord_id": "applied-hang"})
    with pytest.raises(requests.ReadTimeout):
        faulty.post_raw("AddOrder", body.encode(), nonce_text=str(nonce), timeout=0.5)
    (placed,) = venue.open_orders(keys.faults).values()
    assert placed["cl_ord_id"] == "applied-hang"


def _applied_pattern(venue: Venue, key: Key, tries: int) -> list[bool]:
    """Send `tries` AddOrders under the armed fault; which of them reached the engine."""
    faulty = venue.client(key)
    for n in range(tries):
        nonce = faulty.next_nonce()
        body = urllib.parse.urlencode({"nonce": nonce, **LIMIT, "cl_ord_id": f"maybe-{n}"})
        reply = faulty.post_raw("AddOrder", body.encode(), nonce_text=str(nonce), timeout=5)
        assert reply.status_code == 502
    placed = {order["cl_ord_id"] for order in venue.open_orders(key).values()}
    return [f"maybe-{n}" in placed for n in range(tries)]


def test_apply_probability_draws_are_seeded(venue: Venue, keys: SimAccounts) -> None:
    """A 502 with apply_probability 0.5 applies some requests and not others; the same seed gives
    the same pattern on a fresh in-process exchange, over HTTP as in-process."""
    spec = {"endpoint": "AddOrder", "kind": "http502", "apply_probability": 0.5, "seed": 11,
            "count": -1}  # fmt: skip
    venue.control("fault", spec)
    pattern = _applied_pattern(venue, keys.faults, 16)
    assert True in pattern
    assert False in pattern
    again = InProcessExchange(ACCOUNTS_TOML, seed=99, clock=SimClock.frozen())
    other = Venue("again", BASE_URL, again.control, lambda: again.session(BASE_URL), False)
    other.control("fault", spec)
    assert _applied_pattern(other, keys.faults, 16) == pattern
    armed = venue.control("faults")["faults"]
    assert armed == [{"endpoint": "AddOrder", "kind": "http502", "count": -1, "latency_ms": 0.0,
                      "apply_probability": 0.5, "seed": 11}]  # fmt: skip


def test_apply_probability_must_be_a_probability(venue: Venue) -> None:
    """0 to 1, and only on the gateway kinds (http502, http520, hang)."""
    spec = {"endpoint": "AddOrder", "kind": "http502", "apply_probability": 2}
    assert "between 0 and 1" in venue.refusal(spec)
    spec = {"endpoint": "AddOrder", "kind": "busy", "apply_probability": 1}
    assert "apply_probability" in venue.refusal(spec)


# --- EService: Throttled, EService:Deadline elapsed ---------------------------------------------


def test_throttled_names_the_time_to_come_back_and_applies_nothing(
    venue: Venue, keys: SimAccounts
) -> None:
    """`EService: Throttled: <ts>` with ts = the simulator's now + retry_after_s, rounded up;
    no order is placed and the next request goes through."""
    venue.control("fault", {"endpoint": "AddOrder", "kind": "throttled", "retry_after_s": 3})
    faulty = venue.client(keys.faults)
    before = venue.now()
    (error,) = faulty.call("AddOrder", **LIMIT)["error"]
    after = venue.now()
    prefix = "EService: Throttled: "
    assert error.startswith(prefix)
    until = int(error[len(prefix) :])
    assert before + 3 <= until <= after + 4
    if not venue.wall_clock:
        assert until == int(DEFAULT_FROZEN_START) + 3
    assert venue.open_orders(keys.faults) == {}
    assert len(_ok(faulty.call("AddOrder", **LIMIT))["txid"]) == 1


def test_deadline_elapsed_fault_applies_nothing_and_uses_the_nonce(
    venue: Venue, keys: SimAccounts
) -> None:
    venue.control("fault", {"endpoint": "AddOrder", "kind": "deadline_elapsed"})
    faulty = venue.client(keys.faults)
    nonce = faulty.next_nonce()
    body = urllib.parse.urlencode({"nonce": nonce, **LIMIT}).encode()
    first = faulty.post_raw("AddOrder", body, nonce_text=str(nonce)).json()
    assert first == {"error": [errors.DEADLINE_ELAPSED]}
    assert venue.open_orders(keys.faults) == {}
    again = faulty.post_raw("AddOrder", body, nonce_text=str(nonce)).json()
    assert again["error"] == [errors.INVALID_NONCE]


# --- AddOrder's deadline --------------------------------------------------------------------


def test_addorder_deadline_is_honoured(venue: Venue, keys: SimAccounts) -> None:
    """A deadline already passed: EService:Deadline elapsed, nothing placed. One ahead (up to
    60 s): placed. Further ahead, or not an RFC 3339 time: EGeneral:Invalid arguments:deadline."""
    faulty = venue.client(keys.faults)
    now = venue.now()
    assert faulty.call("AddOrder", **LIMIT, deadline=_rfc3339(now - 5))["error"] == [
        errors.DEADLINE_ELAPSED
    ]
    assert venue.open_orders(keys.faults) == {}
    for bad in (_rfc3339(now + 120), "tomorrow", "2030-01-01T00:00:00"):
        assert faulty.call("AddOrder", **LIMIT, deadline=bad)["error"] == [
            errors.invalid_arguments("deadline")
        ]
    placed = _ok(faulty.call("AddOrder", **LIMIT, deadline=_rfc3339(now + 30)))["txid"]
    assert list(venue.open_orders(keys.faults)) == placed


def test_deadline_passes_while_the_request_waits(keys: SimAccounts) -> None:
    """In-process, a latency fault's wait moves the frozen clock: an order whose deadline falls
    inside the wait is refused with EService:Deadline elapsed when it reaches the engine."""
    exchange = InProcessExchange(ACCOUNTS_TOML, seed=7, clock=SimClock.frozen())
    faulty = RawClient(BASE_URL, keys.faults.key, keys.faults.secret,
                       session=exchange.session(BASE_URL))  # fmt: skip
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "latency", "latency_ms": 8_000})
    deadline = _rfc3339(DEFAULT_FROZEN_START + 5)
    assert faulty.call("AddOrder", **LIMIT, deadline=deadline)["error"] == [errors.DEADLINE_ELAPSED]
    assert exchange.state()["accounts"][keys.faults.account]["open_orders"] == {}


def test_deadline_passes_while_the_request_waits_over_http(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """The same over HTTP, where the wait is real: 1.5 s of latency against a deadline 1 s on."""
    faulty = RawClient(sim.url, keys.faults.key, keys.faults.secret)
    sim.control("fault", {"endpoint": "AddOrder", "kind": "latency", "latency_ms": 1500})
    offset = float(sim.control("state")["clock_offset_s"])
    deadline = dt.datetime.fromtimestamp(time.time() + offset + 1, dt.UTC).isoformat()
    assert faulty.call("AddOrder", **LIMIT, deadline=deadline)["error"] == [errors.DEADLINE_ELAPSED]
    assert sim.control("state")["accounts"][keys.faults.account]["open_orders"] == {}
