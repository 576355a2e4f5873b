"""The simulator's HTTP server: Kraken's REST API (rest.py), the WebSocket v2 API
(websocket.py) and the test-only /sim/ control endpoints (control.py) on loopback.

This module is only the aiohttp transport: it waits, reads the body and delivers what rest.py
decides, including the faults that need a socket (closing a connection, hanging).
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

from kraken_sim import errors, rest
from kraken_sim.accounts import AccountsFileError, load_accounts_file
from kraken_sim.clock import SimClock
from kraken_sim.context import CONTEXT, SimContext, json_response
from kraken_sim.control import add_control_routes
from kraken_sim.websocket import add_websocket_routes

log = structlog.get_logger("kraken_sim")

SHUTDOWN_GRACE_S = 0.5
HANG_POLL_S = 0.2


def build_app(context: SimContext) -> web.Application:
    app = web.Application(middlewares=[_never_crash])
    app[CONTEXT] = context
    app.router.add_route("*", "/0/{tail:.*}", _handle_api)
    add_control_routes(app)
    add_websocket_routes(app, context)
    return app


def _as_response(reply: rest.ApiReply) -> web.Response:
    return web.Response(
        body=reply.body, status=reply.status, content_type=reply.content_type, charset="utf-8"
    )


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
            return _as_response(rest.error_reply(errors.UNKNOWN_METHOD, status=exc.status))
        return _as_response(rest.error_reply(errors.BAD_REQUEST, status=exc.status))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("sim.handler_crashed", path=request.path)
        if control:
            return json_response({"ok": False, "error": "internal error"}, status=500)
        return _as_response(rest.error_reply(errors.INTERNAL_ERROR))


async def _handle_api(request: web.Request) -> web.Response:
    """Every /0/ request: rest.admit, the wait, rest.serve, then delivery."""
    context = request.app[CONTEXT]
    admission = rest.admit(context, request.method, request.path)
    if admission.delay_s > 0:
        await asyncio.sleep(admission.delay_s)
    reply = admission.reply
    if reply is None:
        body = await request.read()
        reply = rest.serve(
            context,
            admission,
            rest.ApiRequest(
                query_string=request.rel_url.raw_query_string,
                body=body,
                content_type=request.headers.get("Content-Type", ""),
                api_key=request.headers.get("API-Key"),
                api_sign=request.headers.get("API-Sign"),
                source=request.remote or "unknown",
            ),
        )
    if reply.delivery is rest.Delivery.HANG:
        await _hang(request, context)
        return _drop_connection(request)
    if reply.delivery in (rest.Delivery.DROP, rest.Delivery.REFUSE):
        return _drop_connection(request)
    return _as_response(reply)


async def _hang(request: web.Request, context: SimContext) -> None:
    """Wait until the client gives up or the simulator stops; never answer."""
    while not context.stopping.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.stopping.wait(), HANG_POLL_S)


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
        context = SimContext.from_setup(
            setup, seed=args.seed, clock=clock, latency_ms=float(args.latency_ms)
        )
    except AccountsFileError as exc:
        sys.stderr.write(f"copytrader sim: {args.accounts}: {exc}\n"
                         if str(exc).startswith("[") else f"copytrader sim: {exc}\n")  # fmt: skip
        return 2
    try:
        return asyncio.run(_serve(context, args.host, args.port))
    except KeyboardInterrupt:  # only where signal handlers are not available
        return 0
