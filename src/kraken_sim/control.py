"""Test-only control operations: prices, trades through the book, faults, state, nonces,
clock, limits.

One function per operation, on the shared SimContext; served over HTTP under /sim/<name> and
in-process by `InProcessExchange.control` (and its typed methods), through `run` in both cases.
JSON in, JSON out. A bad control request is refused with HTTP 400 and
`{"ok": false, "error": "<why>"}` (in-process: ControlError) so a test that misuses one fails
loudly.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from kraken_sim.context import CONTEXT, SimContext, json_response
from kraken_sim.errors import SimError
from kraken_sim.faults import FaultSpecError, parse_fault
from kraken_sim.nonces import UINT64_MAX

OK = {"ok": True}
BAD_REQUEST = 400

Payload = Mapping[str, Any]
Query = Mapping[str, str]
Operation = Callable[[SimContext, Payload, Query], dict[str, Any]]


class ControlError(Exception):
    """A control request that cannot be carried out; `status` is its HTTP status."""

    def __init__(self, message: str, status: int = BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def run(
    context: SimContext, verb: str, name: str, body: bytes, query_string: str
) -> dict[str, Any]:
    """One control request, `verb /sim/<name>?<query_string>` with this body; raises
    ControlError (404 unknown name, 405 wrong verb, 400 bad request)."""
    found = OPERATIONS.get(name)
    if found is None:
        raise ControlError("Not Found", 404)
    expected_verb, operation = found
    if verb != expected_verb:
        raise ControlError("Method Not Allowed", 405)
    payload = _payload(body) if verb == "POST" else {}
    query = dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True))
    return operation(context, payload, query)


def add_control_routes(app: web.Application) -> None:
    app.router.add_route("*", "/sim/{name:.*}", _handle_control)


async def _handle_control(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        reply = run(
            request.app[CONTEXT],
            request.method,
            request.match_info["name"],
            body,
            request.rel_url.raw_query_string,
        )
    except ControlError as exc:
        return json_response({"ok": False, "error": str(exc)}, status=exc.status)
    return json_response(reply)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise ControlError("body must be JSON") from None
    if not isinstance(payload, dict):
        raise ControlError("body must be a JSON object")
    return payload


def set_price(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """{"pair": "XXBTZUSD", "price": "61000"}: fills (all that is left of) every resting limit
    the price crosses, at its limit, and triggers the stops it crosses; the book follows."""
    pair = payload.get("pair")
    if not isinstance(pair, str) or not pair:
        raise ControlError("'pair' must be a pair id, altname or wsname")
    try:
        price = Decimal(str(payload.get("price")))
    except InvalidOperation:
        raise ControlError("'price' must be a decimal string") from None
    if not price.is_finite() or price <= 0:
        raise ControlError("'price' must be greater than 0")
    try:
        context.engine.set_price(pair, price)
    except SimError as exc:
        raise ControlError(exc.error) from None
    return dict(OK)


def trade_through(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """{"pair": "XBTUSD", "side": "sell", "price": "59900", "volume": "0.3"}: an outside taker
    on `side` trades up to `volume` through `price`, filling the accounts' resting limits it
    reaches (price-time priority, the last one partly). The pair's price does not move.
    Answers {"ok": true, "traded": "<volume filled>"}."""
    pair = payload.get("pair")
    if not isinstance(pair, str) or not pair:
        raise ControlError("'pair' must be a pair id, altname or wsname")
    side = payload.get("side")
    if side not in ("buy", "sell"):
        raise ControlError("'side' must be 'buy' (lifts asks) or 'sell' (hits bids)")
    values = {}
    for name in ("price", "volume"):
        try:
            values[name] = Decimal(str(payload.get(name)))
        except InvalidOperation:
            raise ControlError(f"'{name}' must be a decimal string") from None
        if not values[name].is_finite() or values[name] <= 0:
            raise ControlError(f"'{name}' must be greater than 0")
    try:
        traded = context.engine.trade(pair, side, values["price"], values["volume"])
    except SimError as exc:
        raise ControlError(exc.error) from None
    return {"ok": True, "traded": f"{traded:f}"}


def arm_fault(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """{"endpoint": "AddOrder", "kind": "drop_reply", "count": 1}: the spec is in faults.py."""
    try:
        fault = parse_fault(dict(payload))
    except FaultSpecError as exc:
        raise ControlError(str(exc)) from None
    context.faults.arm(fault)
    return dict(OK)


def list_faults(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    return {"faults": context.faults.armed()}


def clear_faults(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    context.faults.clear()
    return dict(OK)


def get_state(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """The engine's snapshot plus each key's nonce mark, the counters and the armed faults."""
    state = dict(context.engine.state())
    state["keys"] = {
        key: {
            "account": key_state.account,
            "nonce": key_state.nonces.high_water,
            "nonce_window": key_state.nonces.window,
            "locked_out": context.auth.is_key_locked(key),
            "rate_counter": round(key_state.rate.value, 3),
        }
        for key, key_state in context.auth.keys.items()
    }
    log = context.requests
    state["counters"] = {
        "requests": log.requests,
        "invalid_nonce": context.auth.invalid_nonces,
        "by_method": dict(log.by_method),
        "by_error": dict(log.by_error),
    }
    state["faults"] = context.faults.armed()
    state["clock_offset_s"] = context.clock.offset
    return state


def set_nonce(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """{"key": "user-key", "nonce": 123}: the exchange now remembers this high-water mark."""
    key_state = context.auth.keys.get(str(payload.get("key")))
    if key_state is None:
        raise ControlError("'key' is not a key of any account")
    nonce = payload.get("nonce")
    if isinstance(nonce, str) and nonce.isdigit():
        nonce = int(nonce)
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce <= UINT64_MAX:
        raise ControlError("'nonce' must be an unsigned 64-bit integer")
    key_state.nonces.reset(nonce)
    return dict(OK)


def get_requests(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """?key=<api key> (optional): recent private requests, oldest first."""
    key = query.get("key")
    return {"requests": context.requests.private_requests(key)}


def advance_clock(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """{"advance_s": 180}: time passes for rate counters, lockouts, tokens and the engine."""
    seconds = payload.get("advance_s")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ControlError("'advance_s' must be a number of seconds >= 0")
    context.clock.advance(float(seconds))
    return {"ok": True, "clock_offset_s": context.clock.offset}


def clear_lockouts(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    context.auth.lockouts.clear()
    return dict(OK)


def set_limits(context: SimContext, payload: Payload, query: Query) -> dict[str, Any]:
    """{"rest": false, "orders": false}: private calls stop counting against the keys' REST
    limits, AddOrder/CancelOrder against the matching engine's per-pair limits (true: again).

    For stress tests about something else (nonces under many threads): with a fast client
    every limit would be hit, and moving the clock forward to empty the counters races it."""
    switches: dict[str, Any] = {n: payload[n] for n in ("rest", "orders") if n in payload}
    if not switches or any(not isinstance(value, bool) for value in switches.values()):
        raise ControlError("give 'rest' and/or 'orders' as true or false")
    if "rest" in switches:
        context.auth.rest_limits = switches["rest"]
    if "orders" in switches:
        context.engine.order_limits = switches["orders"]
    return {"ok": True, **switches}


OPERATIONS: dict[str, tuple[str, Operation]] = {
    "price": ("POST", set_price),
    "trade": ("POST", trade_through),
    "fault": ("POST", arm_fault),
    "faults": ("GET", list_faults),
    "faults/clear": ("POST", clear_faults),
    "state": ("GET", get_state),
    "nonce": ("POST", set_nonce),
    "requests": ("GET", get_requests),
    "clock": ("POST", advance_clock),
    "lockouts/clear": ("POST", clear_lockouts),
    "limits": ("POST", set_limits),
}
