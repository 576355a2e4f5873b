"""Kraken's REST API as two transport-free steps, shared by the HTTP server (server.py) and the
in-process exchange (inprocess.py), so both answer every request the same way.

Public methods: GET /0/public/<Method>?query. Private methods: POST /0/private/<Method>,
authenticated as Kraken does (see auth.py). Every answer is Kraken's envelope
`{"error": [...], "result": ...}`; nothing a client sends produces a traceback or an HTTP 500.

1. `admit(context, verb, path)`: routes the path, counts the request, refuses a wrong HTTP verb
   or an unknown private method, and takes the request's fault (faults.py). It says how long the
   transport waits before serving (global latency plus a latency fault), or gives the final
   reply at once (wrong verb, unknown path, a fault in front of the exchange that does not let
   the request through this time).
2. `serve(context, admission, request)`, after that wait: authentication, error faults, the
   engine, the request log, Kraken's envelope and the reply faults (including a gateway fault
   that let the request through and now answers 502/520 or nothing, and `late_visibility`,
   whose orders the order lists leave out until their time).

The transport only waits, reads the body and delivers: `ApiReply.delivery` says whether to
answer, close the connection without a reply (the call was applied), close it before reading
(nothing applied), or never answer (nothing applied).
"""

from __future__ import annotations

import enum
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import structlog

from kraken_sim import errors
from kraken_sim.account_info import api_key_info
from kraken_sim.auth import METHOD_PERMISSIONS, short_key
from kraken_sim.context import SimContext, to_json
from kraken_sim.errors import SimError
from kraken_sim.faults import Fault, FaultKind
from kraken_sim.reqlog import LoggedRequest
from kraken_sim.wire import parse_body

log = structlog.get_logger("kraken_sim")

JSON = "application/json"
# Kraken answered POSTs to public endpoints with HTTP 405 after 2024-01-31 (krakenex#139);
# the body carries the envelope so a client that reads it sees why.
METHOD_NOT_ALLOWED = 405
NOT_FOUND = 404


class Delivery(enum.Enum):
    ANSWER = "answer"  # send status, content type and body
    DROP = "drop"  # close the connection without a reply (the call was applied)
    REFUSE = "refuse"  # close the connection before reading the request (nothing applied)
    HANG = "hang"  # never answer (nothing applied)


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: bytes
    content_type: str = JSON  # the body is UTF-8 text
    delivery: Delivery = Delivery.ANSWER


@dataclass(frozen=True)
class ApiRequest:
    """What `serve` reads of a request, whatever carried it."""

    query_string: str  # raw, still percent-encoded
    body: bytes
    content_type: str
    api_key: str | None
    api_sign: str | None
    source: str  # the client's address, for source lockouts


@dataclass(frozen=True)
class Admission:
    """`admit`'s verdict: either a final `reply`, or wait `delay_s` and then `serve`."""

    path: str
    section: str  # "public" | "private" | "" (unknown path)
    method: str
    fault: Fault | None = None
    delay_s: float = 0.0
    reply: ApiReply | None = None
    # A gateway fault that lets the request through: serve it, then answer this instead.
    reply_after_serving: ApiReply | None = None


def envelope_reply(envelope: dict[str, Any], status: int = 200) -> ApiReply:
    return ApiReply(status=status, body=to_json(envelope).encode())


def error_reply(error: str, status: int = 200) -> ApiReply:
    return envelope_reply({"error": [error]}, status)


_GATEWAY_REPLIES = {
    FaultKind.HTTP502: ApiReply(502, b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    FaultKind.HTTP520: ApiReply(520, b"error code: 520", "text/plain"),
    FaultKind.HANG: ApiReply(0, b"", delivery=Delivery.HANG),
    FaultKind.REFUSED: ApiReply(0, b"", delivery=Delivery.REFUSE),
}


def route(path: str) -> tuple[str, str]:
    """`/0/public/Time` -> ("public", "Time"); anything else -> ("", "")."""
    parts = path.split("/")
    if len(parts) == 4 and parts[:2] == ["", "0"] and parts[2] in ("public", "private"):
        return (parts[2], parts[3]) if parts[3] else ("", "")
    return "", ""


def admit(context: SimContext, verb: str, path: str) -> Admission:
    """Step 1 (module docstring): everything that happens before the exchange looks at the
    request's content."""
    section, method = route(path)
    if not section:
        return Admission(path, section, method, reply=error_reply(errors.UNKNOWN_METHOD, NOT_FOUND))
    context.requests.count(method)
    if verb != ("GET" if section == "public" else "POST"):
        reply = error_reply(errors.UNKNOWN_METHOD, METHOD_NOT_ALLOWED)
        return Admission(path, section, method, reply=reply)
    if section == "private" and method not in METHOD_PERMISSIONS:
        context.requests.record_error(errors.UNKNOWN_METHOD)
        return Admission(path, section, method, reply=error_reply(errors.UNKNOWN_METHOD))
    delay_s = context.latency_ms / 1000
    fault = context.faults.take(method)
    if fault is None:
        return Admission(path, section, method, delay_s=delay_s)
    applied = fault.applies_first()
    log.info("sim.fault_fired", method=method, kind=fault.kind.value, remaining=fault.remaining,
             applied_first=applied)  # fmt: skip
    if fault.kind is FaultKind.LATENCY:
        delay_s += fault.latency_ms / 1000
    gateway = _GATEWAY_REPLIES.get(fault.kind)
    if applied:
        return Admission(
            path, section, method, fault=fault, delay_s=delay_s, reply_after_serving=gateway
        )
    return Admission(path, section, method, fault=fault, delay_s=delay_s, reply=gateway)


def serve(context: SimContext, admission: Admission, request: ApiRequest) -> ApiReply:
    """Step 2 (module docstring): the exchange's answer, with the reply faults applied."""
    try:
        if admission.section == "public":
            envelope = _public(context, admission, request)
        else:
            envelope = _private(context, admission, request)
    except Exception:
        log.exception("sim.handler_crashed", path=admission.path)
        envelope = {"error": [errors.INTERNAL_ERROR]}
    if admission.reply_after_serving is not None:
        return admission.reply_after_serving
    _late_visibility(context, admission, envelope)
    return _with_reply_fault(admission, envelope)


def _public(context: SimContext, admission: Admission, request: ApiRequest) -> dict[str, Any]:
    # The first value of a repeated query parameter counts.
    params: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(request.query_string, keep_blank_values=True):
        params.setdefault(name, value)
    fault = admission.fault
    try:
        fault_error = None if fault is None else fault.error(context.clock.time())
        if fault_error is not None:
            raise SimError(fault_error)
        result = context.engine.public(admission.method, params)
    except SimError as exc:
        context.requests.record_error(exc.error)
        return {"error": [exc.error]}
    return {"error": [], "result": result}


def _private(context: SimContext, admission: Admission, request: ApiRequest) -> dict[str, Any]:
    method, fault = admission.method, admission.fault
    params = parse_body(request.content_type, request.body)
    api_key = request.api_key
    account: str | None = None
    error: str | None = None
    result: object = None
    try:
        key_state = context.auth.authenticate(
            method=method,
            urlpath=admission.path,
            api_key=api_key,
            api_sign=request.api_sign,
            body=request.body,
            params=params,
            source=request.source,
        )
        account = key_state.account
        fault_error = None if fault is None else fault.error(context.clock.time())
        if fault_error is not None:
            raise SimError(fault_error)
        if method == "GetWebSocketsToken":
            result = context.ws_tokens.issue(account, key_state.spec.permissions)
        elif method == "GetApiKeyInfo":
            now = context.clock.time()
            result = api_key_info(key_state.spec, key_state.nonces.high_water, now, now)
        else:
            assert params is not None  # authenticate() rejects unparseable bodies
            result = context.engine.private(account, method, params)
    except SimError as exc:
        error = exc.error
    nonce = params.get("nonce") if params is not None else None
    context.requests.record_private(
        LoggedRequest(
            time=context.clock.time(),
            key=api_key if api_key in context.auth.keys else None,
            account=account,
            method=method,
            nonce=None if nonce is None else str(nonce),
            error=error,
            fault=None if fault is None else fault.kind.value,
        )
    )
    if error is not None:
        context.requests.record_error(error)
        log.debug("sim.private_rejected", method=method, account=account, error=error,
                  key_hint=short_key(api_key or ""))  # fmt: skip
        return {"error": [error]}
    return {"error": [], "result": result}


# The order lists a late_visibility fault filters, and where their orders sit in `result`.
_ORDER_LISTS = {"OpenOrders": "open", "ClosedOrders": "closed", "QueryOrders": ""}


def _created_txids(result: object) -> list[str]:
    """The order ids a write's result names: AddOrder's and EditOrder's `txid` (a list or one id),
    AddOrderBatch's `orders[*].txid`."""
    if not isinstance(result, dict):
        return []
    found: list[str] = []
    txid = result.get("txid")
    if isinstance(txid, str):
        found.append(txid)
    elif isinstance(txid, list):
        found.extend(t for t in txid if isinstance(t, str))
    orders = result.get("orders")
    if isinstance(orders, list):
        for entry in orders:
            if isinstance(entry, dict) and isinstance(entry.get("txid"), str):
                found.append(entry["txid"])
    return found


def _late_visibility(context: SimContext, admission: Admission, envelope: dict[str, Any]) -> None:
    """Hide the orders a `late_visibility` write created; leave hidden orders out of the order
    lists (ClosedOrders' `count` goes down by the ones left out of the page)."""
    fault, now = admission.fault, context.clock.time()
    if envelope["error"]:
        return
    if fault is not None and fault.kind is FaultKind.LATE_VISIBILITY:
        context.faults.hide(_created_txids(envelope.get("result")), now + fault.delay_s)
        return
    key = _ORDER_LISTS.get(admission.method)
    if key is None or admission.section != "private":
        return
    hidden = context.faults.hidden(now)
    result = envelope.get("result")
    orders = result.get(key) if key and isinstance(result, dict) else result
    if not hidden or not isinstance(orders, dict):
        return
    left_out = [txid for txid in orders if txid in hidden]
    for txid in left_out:
        del orders[txid]
    if isinstance(result, dict) and isinstance(result.get("count"), int):
        result["count"] -= len(left_out)


def _with_reply_fault(admission: Admission, envelope: dict[str, Any]) -> ApiReply:
    """The answer, unless a reply fault eats, garbles or changes it (whatever the outcome was)."""
    fault = admission.fault
    kind = None if fault is None else fault.kind
    if kind is FaultKind.DROP_REPLY:
        return ApiReply(0, b"", delivery=Delivery.DROP)
    if kind is FaultKind.BAD_REPLY:
        return envelope_reply({"unexpected": True})
    if kind is FaultKind.ERROR_STRING:
        envelope["error"] = ", ".join(envelope["error"])
    elif fault is not None and fault.mutation is not None:
        # Through JSON first: the mutation sees exactly what the client would (Decimals as
        # strings), and never touches the engine's own objects.
        plain: dict[str, Any] = json.loads(to_json(envelope))
        changed = 0 if plain["error"] else fault.mutation.apply(plain)
        if changed == 0:
            log.info("sim.fault_missed", method=admission.method, kind=fault.kind.value,
                     path=fault.mutation.path, error=plain["error"])  # fmt: skip
        return envelope_reply(plain)
    return envelope_reply(envelope)
