"""`copytrader sim`: Kraken's REST API on loopback, in front of the in-memory engine.

Public methods: GET /0/public/<Method>?query. Private methods: POST /0/private/<Method>,
authenticated as Kraken does (see auth.py). Every answer is Kraken's envelope
`{"error": [...], "result": ...}`; nothing a client sends produces a traceback or an HTTP 500.
Test-only control endpoints live under /sim/ (control.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web
from structlog.typing import EventDict

from kraken_sim import errors
from kraken_sim.accounts import AccountsFileError, ApiKeySpec, SimSetup, load_accounts_file
from kraken_sim.auth import METHOD_PERMISSIONS, Authenticator, short_key
from kraken_sim.clock import SimClock
from kraken_sim.context import (
    CONTEXT,
    Exchange,
    SimContext,
    json_response,
    kraken_error,
    kraken_ok,
)
from kraken_sim.control import add_control_routes
from kraken_sim.engine import Engine
from kraken_sim.errors import SimError
from kraken_sim.faults import ERROR_BY_KIND, Fault, FaultKind
from kraken_sim.reqlog import LoggedRequest
from kraken_sim.tokens import WsTokens
from kraken_sim.websocket import add_websocket_routes
from kraken_sim.wire import parse_body

log = structlog.get_logger("kraken_sim")

SHUTDOWN_GRACE_S = 0.5
HANG_POLL_S = 0.2
# Kraken answered POSTs to public endpoints with HTTP 405 after 2024-01-31 (krakenex#139);
# the body carries the envelope so a client that reads it sees why.
METHOD_NOT_ALLOWED = 405


def build_context(
    setup: SimSetup, engine: Exchange, clock: SimClock, latency_ms: float
) -> SimContext:
    """Wire the accounts' keys to authentication; the engine already knows the accounts."""
    keys: dict[str, tuple[ApiKeySpec, str]] = {
        spec.key: (spec, account.tier) for account in setup.accounts for spec in account.keys
    }
    auth = Authenticator(keys, setup.lockout, clock.monotonic)
    return SimContext(
        engine=engine,
        auth=auth,
        clock=clock,
        ws_tokens=WsTokens(clock.monotonic),
        latency_ms=latency_ms,
    )


def build_app(context: SimContext) -> web.Application:
    app = web.Application(middlewares=[_never_crash])
    app[CONTEXT] = context
    app.router.add_route("*", "/0/public/{method}", _handle_public)
    app.router.add_route("*", "/0/private/{method}", _handle_private)
    add_control_routes(app)
    add_websocket_routes(app, context)
    return app


# --- responses ---------------------------------------------------------------------------------


def _drop_connection(request: web.Request) -> web.Response:
    """Close the connection without a reply: the client sees the server hang up."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)  # never reaches the client: the transport is closed


@web.middleware
async def _never_crash(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths, oversized bodies and bugs all become an envelope, never a traceback."""
    control = request.path.startswith("/sim/")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if control:
            return json_response({"ok": False, "error": exc.reason}, status=exc.status)
        if exc.status in (404, 405):
            return kraken_error(errors.UNKNOWN_METHOD, status=exc.status)
        return kraken_error(errors.BAD_REQUEST, status=exc.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("sim.handler_crashed", path=request.path)
        if control:
            return json_response({"ok": False, "error": "internal error"}, status=500)
        return kraken_error(errors.INTERNAL_ERROR)


# --- the two API handlers ----------------------------------------------------------------------


async def _before_serving(
    request: web.Request, method: str
) -> tuple[Fault | None, web.Response | None]:
    """Global latency, then this request's fault: front-of-exchange faults answer here."""
    context = request.app[CONTEXT]
    context.requests.count(method)
    if context.latency_ms > 0:
        await asyncio.sleep(context.latency_ms / 1000)
    fault = context.faults.take(method)
    if fault is None:
        return None, None
    log.info("sim.fault_fired", method=method, kind=fault.kind.value, remaining=fault.remaining)
    if fault.kind is FaultKind.LATENCY:
        await asyncio.sleep(fault.latency_ms / 1000)
    elif fault.kind is FaultKind.HTTP502:
        return fault, web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>",
                                   content_type="text/html")  # fmt: skip
    elif fault.kind is FaultKind.HTTP520:
        return fault, web.Response(status=520, text="error code: 520", content_type="text/plain")
    elif fault.kind is FaultKind.HANG:
        await _hang(request, context)
        return fault, _drop_connection(request)
    return fault, None


async def _hang(request: web.Request, context: SimContext) -> None:
    """Wait until the client gives up or the simulator stops; never answer."""
    while not context.stopping.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.stopping.wait(), HANG_POLL_S)


async def _handle_public(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    method = request.match_info["method"]
    if request.method != "GET":
        context.requests.count(method)
        return kraken_error(errors.UNKNOWN_METHOD, status=METHOD_NOT_ALLOWED)
    fault, early = await _before_serving(request, method)
    if early is not None:
        return early
    try:
        if fault is not None and fault.kind in ERROR_BY_KIND:
            raise SimError(ERROR_BY_KIND[fault.kind])
        result = context.engine.public(method, dict(request.query))
    except SimError as exc:
        context.requests.record_error(exc.error)
        return _reply(request, fault, kraken_error(exc.error))
    return _reply(request, fault, kraken_ok(result))


async def _handle_private(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    method = request.match_info["method"]
    if request.method != "POST":
        context.requests.count(method)
        return kraken_error(errors.UNKNOWN_METHOD, status=METHOD_NOT_ALLOWED)
    if method not in METHOD_PERMISSIONS:
        context.requests.count(method)
        context.requests.record_error(errors.UNKNOWN_METHOD)
        return kraken_error(errors.UNKNOWN_METHOD)
    fault, early = await _before_serving(request, method)
    if early is not None:
        return early
    body = await request.read()
    params = parse_body(request.headers.get("Content-Type", ""), body)
    api_key = request.headers.get("API-Key")
    account: str | None = None
    error: str | None = None
    result: object = None
    try:
        key_state = context.auth.authenticate(
            method=method,
            urlpath=request.path,
            api_key=api_key,
            api_sign=request.headers.get("API-Sign"),
            body=body,
            params=params,
            source=request.remote or "unknown",
        )
        account = key_state.account
        if fault is not None and fault.kind in ERROR_BY_KIND:
            raise SimError(ERROR_BY_KIND[fault.kind])
        if method == "GetWebSocketsToken":
            result = context.ws_tokens.issue(account)
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
        return _reply(request, fault, kraken_error(error))
    return _reply(request, fault, kraken_ok(result))


def _reply(request: web.Request, fault: Fault | None, response: web.Response) -> web.Response:
    """The answer, unless a drop_reply fault eats it or a bad_reply fault garbles it (whatever
    the outcome was)."""
    if fault is not None and fault.kind is FaultKind.DROP_REPLY:
        return _drop_connection(request)
    if fault is not None and fault.kind is FaultKind.BAD_REPLY:
        return web.json_response({"unexpected": True})
    return response


# --- process entry point -----------------------------------------------------------------------


def _add_message(_: object, __: str, event_dict: EventDict) -> EventDict:
    """The project's log lines carry a human `message` beside the stable `event` name."""
    event = str(event_dict.get("event", ""))
    event_dict.setdefault("message", event.replace(".", " ").replace("_", " "))
    return event_dict


def _configure_logging() -> None:
    """One JSON object per line on stdout (the daemon's own setup is not imported here)."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _add_message,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def _make_engine(setup: SimSetup, seed: int | None, clock: SimClock) -> Exchange:
    engine = Engine(seed=seed, clock=clock.time)
    for account in setup.accounts:
        engine.add_account(account.name, balances=account.balances, tier=account.tier)
    for pair, price in setup.prices.items():
        try:
            engine.set_price(pair, price)
        except SimError as exc:
            raise AccountsFileError(f"[prices]: {pair!r}: {exc.error}") from None
    return engine


async def _serve(context: SimContext, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises instead
            loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(build_app(context), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=SHUTDOWN_GRACE_S)
        try:
            await site.start()
        except OSError as exc:
            sys.stderr.write(f"copytrader sim: cannot listen on {host}:{port}: {exc.strerror}\n")
            return 1
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        sys.stdout.write(f"listening on http://{shown_host}:{bound_port}\n")
        sys.stdout.flush()
        log.info("sim.started", host=host, port=bound_port, latency_ms=context.latency_ms)
        await stop.wait()
        log.info("sim.stopping")
    finally:
        context.stopping.set()  # releases hanging requests
        await runner.cleanup()
    return 0


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point of `copytrader sim` and `python -m kraken_sim` (called by cli.py)."""
    _configure_logging()
    clock = SimClock()
    try:
        setup = load_accounts_file(Path(args.accounts))
        engine = _make_engine(setup, args.seed, clock)
    except AccountsFileError as exc:
        sys.stderr.write(f"copytrader sim: {args.accounts}: {exc}\n"
                         if str(exc).startswith("[") else f"copytrader sim: {exc}\n")  # fmt: skip
        return 2
    context = build_context(setup, engine, clock, float(args.latency_ms))
    try:
        return asyncio.run(_serve(context, args.host, args.port))
    except KeyboardInterrupt:  # only where signal handlers are not available
        return 0
