"""Test-only control endpoints under /sim/: prices, faults, state, nonces, clock.

JSON in, JSON out. A bad control request is answered with HTTP 400 and
`{"ok": false, "error": "<why>"}` so a test that misuses one fails loudly.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from kraken_sim.context import CONTEXT, SimContext, json_response
from kraken_sim.errors import SimError
from kraken_sim.faults import FaultSpecError, parse_fault
from kraken_sim.nonces import UINT64_MAX

OK = {"ok": True}


class ControlError(Exception):
    """A control request that cannot be carried out; becomes HTTP 400."""


def add_control_routes(app: web.Application) -> None:
    routes = [
        ("POST", "/sim/price", set_price),
        ("POST", "/sim/fault", arm_fault),
        ("GET", "/sim/faults", list_faults),
        ("POST", "/sim/faults/clear", clear_faults),
        ("GET", "/sim/state", get_state),
        ("POST", "/sim/nonce", set_nonce),
        ("GET", "/sim/requests", get_requests),
        ("POST", "/sim/clock", advance_clock),
        ("POST", "/sim/lockouts/clear", clear_lockouts),
        ("POST", "/sim/limits", set_limits),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guarded(handler))


def _guarded(handler: Any) -> Any:
    async def guarded(request: web.Request) -> web.Response:
        try:
            response: web.Response = await handler(request, request.app[CONTEXT])
        except ControlError as exc:
            return json_response({"ok": False, "error": str(exc)}, status=400)
        return response

    return guarded


async def _payload(request: web.Request) -> dict[str, Any]:
    try:
        payload = json.loads(await request.read() or b"{}")
    except ValueError:
        raise ControlError("body must be JSON") from None
    if not isinstance(payload, dict):
        raise ControlError("body must be a JSON object")
    return payload


async def set_price(request: web.Request, context: SimContext) -> web.Response:
    """{"pair": "XXBTZUSD", "price": "61000"}: fills and triggers whatever the price crosses."""
    payload = await _payload(request)
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
    return json_response(OK)


async def arm_fault(request: web.Request, context: SimContext) -> web.Response:
    """{"endpoint": "AddOrder", "kind": "drop_reply", "count": 1, "latency_ms": 0}."""
    try:
        fault = parse_fault(await _payload(request))
    except FaultSpecError as exc:
        raise ControlError(str(exc)) from None
    context.faults.arm(fault)
    return json_response(OK)


async def list_faults(request: web.Request, context: SimContext) -> web.Response:
    return json_response({"faults": context.faults.armed()})


async def clear_faults(request: web.Request, context: SimContext) -> web.Response:
    context.faults.clear()
    return json_response(OK)


async def get_state(request: web.Request, context: SimContext) -> web.Response:
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
    return json_response(state)


async def set_nonce(request: web.Request, context: SimContext) -> web.Response:
    """{"key": "user-key", "nonce": 123}: the exchange now remembers this high-water mark."""
    payload = await _payload(request)
    key_state = context.auth.keys.get(str(payload.get("key")))
    if key_state is None:
        raise ControlError("'key' is not a key of any account")
    nonce = payload.get("nonce")
    if isinstance(nonce, str) and nonce.isdigit():
        nonce = int(nonce)
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce <= UINT64_MAX:
        raise ControlError("'nonce' must be an unsigned 64-bit integer")
    key_state.nonces.reset(nonce)
    return json_response(OK)


async def get_requests(request: web.Request, context: SimContext) -> web.Response:
    """?key=<api key> (optional): recent private requests, oldest first."""
    key = request.query.get("key")
    return json_response({"requests": context.requests.private_requests(key)})


async def advance_clock(request: web.Request, context: SimContext) -> web.Response:
    """{"advance_s": 180}: time passes for rate counters, lockouts, tokens and the engine."""
    seconds = (await _payload(request)).get("advance_s")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ControlError("'advance_s' must be a number of seconds >= 0")
    context.clock.advance(float(seconds))
    return json_response({"ok": True, "clock_offset_s": context.clock.offset})


async def clear_lockouts(request: web.Request, context: SimContext) -> web.Response:
    context.auth.lockouts.clear()
    return json_response(OK)


async def set_limits(request: web.Request, context: SimContext) -> web.Response:
    """{"rest": false, "orders": false}: private calls stop counting against the keys' REST
    limits, AddOrder/CancelOrder against the matching engine's per-pair limits (true: again).

    For stress tests about something else (nonces under many threads): with a fast client
    every limit would be hit, and moving the clock forward to empty the counters races it."""
    payload = await _payload(request)
    switches: dict[str, Any] = {n: payload[n] for n in ("rest", "orders") if n in payload}
    if not switches or any(not isinstance(value, bool) for value in switches.values()):
        raise ControlError("give 'rest' and/or 'orders' as true or false")
    if "rest" in switches:
        context.auth.rest_limits = switches["rest"]
    if "orders" in switches:
        context.engine.order_limits = switches["orders"]
    return json_response({"ok": True, **switches})
