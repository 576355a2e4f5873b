"""Kraken's authenticated WebSocket v2, served at /v2 on the simulator: the `executions` and
`balances` channels, and trading (ws_trading.py).

Kraken serves it at wss://ws-auth.kraken.com/v2; a client points at ws://127.0.0.1:PORT/v2.
Shapes follow kraken-api.md §6 (the items themselves are built in ws_items.py): a status frame
on connect; `ping` → `pong`; `subscribe` with a token from GetWebSocketsToken → the ack, then a
`snapshot` and one `update` per change, whoever made it (REST on any key of the account, price
moves, `/sim/trade`, expiry); `{"channel":"heartbeat"}` about once a second when nothing else
was sent.

`executions` options: `snap_orders` (default true), `snap_trades` (default false; the last 50
fills), `order_status` (default true; false streams only new, trade, filled, canceled and
expired items), `ratecounter` (default false; true adds `ratecount`, the account's
matching-engine counter on the item's pair, to every item). `balances` option: `snapshot`
(default true). `sequence` counts the data frames of one connection, across both channels, and
is not reset by a resubscribe.

The engine calls `WsHub.on_event` synchronously inside a request; the hub turns the order into
its JSON item at once (the order object changes afterwards) and queues it per connection, so the
engine never waits on a socket. The sequence number is given when a frame is sent, so that:
- an order a `late_visibility` fault hides from REST is not on the socket either: its frames
  (and any later frame about it) wait until it is visible, then go out in their order; a
  snapshot leaves it out and sends a `new` update for it once visible;
- the socket faults (faults.py: `ws_skip`, `ws_drop`, `ws_stall` for `ws:executions` or
  `ws:balances`) act on the next frame of their channel sent on any connection.

Choices where Kraken's documentation is silent or the simulator simplifies:
- a bad or expired token: `ESession:Invalid session` (what Kraken's spot socket answers);
- only `executions` and `balances` can be subscribed; besides `ping`, `subscribe` and
  `unsubscribe` the methods are the trading methods of ws_trading.py; another channel or method
  gets a failure reply `EGeneral:Invalid arguments`;
- every change is its own `update` frame (Kraken may batch several);
- the engine applies expiries lazily; a subscribed socket applies them on each quiet second, so
  an `expired` update comes within about a second without any REST request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from kraken_sim.context import CONTEXT, SimContext, to_json
from kraken_sim.faults import FaultKind
from kraken_sim.markets import find_asset
from kraken_sim.matching import OrderEvent
from kraken_sim.orders import SimOrder
from kraken_sim.ws_items import (
    balance_snapshot_item,
    balance_update_item,
    event_item,
    order_item,
    rfc3339,
    snapshot_status,
    trade_item,
    trade_legs,
)
from kraken_sim.ws_trading import TRADING_METHODS, WsTrading

log = structlog.get_logger("kraken_sim.ws")

HEARTBEAT_S = 1.0
HELD_POLL_S = 0.1  # how often frames held back by late_visibility are looked at
SNAP_TRADES = 50  # Kraken's snapshot carries the last 50 fills
INVALID_SESSION = "ESession:Invalid session"
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
# What order_status:false still streams (Kraken: "only open / close transitions").
_OPEN_CLOSE = frozenset({"new", "trade", "filled", "canceled", "expired"})


@dataclass
class ExecutionsSub:
    account: str
    token: str
    order_status: bool
    ratecounter: bool


@dataclass
class BalancesSub:
    account: str
    token: str
    balances: dict[str, Decimal] = field(default_factory=dict)  # by asset id, kept up to date


@dataclass
class Frame:
    """A message waiting to be sent; a data frame (`channel` set) gets its sequence on sending."""

    message: dict[str, Any]
    channel: str | None = None
    order_ids: frozenset[str] = frozenset()


class Connection:
    """One client socket: its subscriptions and what is queued or held back for it."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.ws = ws
        self.transport = transport  # a ws_drop fault closes it under the socket
        self.executions: ExecutionsSub | None = None
        self.balances: BalancesSub | None = None
        self.sequence = 0
        self.queue: asyncio.Queue[Frame] = asyncio.Queue()
        self.held: list[Frame] = []  # frames about orders late_visibility still hides
        self.stalled = False

    @property
    def subscribed(self) -> bool:
        return self.executions is not None or self.balances is not None

    def tokens(self) -> list[str]:
        return [sub.token for sub in (self.executions, self.balances) if sub is not None]

    def send_later(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(Frame(message))

    def data(self, channel: str, kind: str, data: list[dict[str, Any]]) -> None:
        ids = frozenset(item["order_id"] for item in data if "order_id" in item)
        self.queue.put_nowait(Frame({"channel": channel, "type": kind, "data": data},
                                    channel, ids))  # fmt: skip


class WsHub:
    """The engine's observer: fans order changes out to the connections subscribed to them."""

    def __init__(self, context: SimContext) -> None:
        self.context = context
        self.connections: set[Connection] = set()

    def on_event(self, event: OrderEvent) -> None:
        item: dict[str, Any] | None = None
        for connection in list(self.connections):
            sub = connection.executions
            if (
                sub is not None
                and sub.account == event.account
                and (sub.order_status or event.exec_type in _OPEN_CLOSE)
            ):
                item = item or event_item(event)
                shown = item
                if sub.ratecounter:
                    count = self.context.engine.rate_count(event.account, event.order.pair)
                    shown = {**item, "ratecount": round(count, 4)}
                connection.data("executions", "update", [shown])
            balances = connection.balances
            if balances is not None and balances.account == event.account and event.trade:
                self._balance_update(connection, balances, event)

    @staticmethod
    def _balance_update(connection: Connection, sub: BalancesSub, event: OrderEvent) -> None:
        assert event.trade is not None
        items = []
        for asset, amount, fee in trade_legs(event.trade):
            balance = sub.balances.get(asset.id, Decimal(0)) + amount - fee
            sub.balances[asset.id] = balance
            items.append(balance_update_item(sub.account, event.trade, asset, amount, fee,
                                             balance))  # fmt: skip
        connection.data("balances", "update", items)


WS_HUB = web.AppKey("copytrader_sim_ws_hub", WsHub)


def add_websocket_routes(app: web.Application, context: SimContext) -> None:
    hub = WsHub(context)
    app[WS_HUB] = hub
    app.router.add_get("/v2", _handle_ws)
    context.engine.add_order_observer(hub.on_event)

    async def forget(_: web.Application) -> None:
        context.engine.remove_order_observer(hub.on_event)

    app.on_cleanup.append(forget)


async def _handle_ws(request: web.Request) -> web.WebSocketResponse:
    context = request.app[CONTEXT]
    hub = request.app[WS_HUB]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    connection = Connection(ws, request.transport)
    hub.connections.add(connection)
    connection.send_later({"channel": "status", "type": "update", "data": [{
        "api_version": "v2", "connection_id": secrets.randbits(63), "system": "online",
        "version": "2.0.10"}]})  # fmt: skip
    sender = asyncio.create_task(_send_loop(connection, context))
    try:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            _handle_text(connection, context, message.data)
            if context.stopping.is_set():
                break
    finally:
        hub.connections.discard(connection)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


async def _send_loop(connection: Connection, context: SimContext) -> None:
    """Send what is queued and what late_visibility no longer holds back; after a quiet second
    on a subscribed socket, a heartbeat."""
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    with contextlib.suppress(ConnectionError, RuntimeError):
        while not connection.ws.closed:
            wait = HELD_POLL_S if connection.held else HEARTBEAT_S
            try:
                frame: Frame | None = await asyncio.wait_for(connection.queue.get(), wait)
            except TimeoutError:
                frame = None
            if connection.stalled:
                continue  # a ws_stall fault: silence until the client closes
            if frame is None and connection.subscribed:
                # Expiries happen lazily in the engine; apply them so the feed reports them.
                context.engine.tick()
                for token in connection.tokens():
                    context.ws_tokens.keep_alive(token)
            sent = await _release_held(connection, context)
            if frame is not None:
                sent = await _offer(connection, context, frame) or sent
            if sent:
                last_sent = loop.time()
            elif (frame is None and connection.subscribed and connection.queue.empty()
                  and loop.time() - last_sent >= HEARTBEAT_S):  # fmt: skip
                await connection.ws.send_str(json.dumps({"channel": "heartbeat"}))
                last_sent = loop.time()


def _hidden(context: SimContext) -> frozenset[str]:
    return context.faults.hidden(context.clock.time())


async def _offer(connection: Connection, context: SimContext, frame: Frame) -> bool:
    """Send a frame now, or hold it back behind an order late_visibility hides (or behind a
    held frame about the same order). Returns whether anything went out."""
    if frame.order_ids and frame.channel == "executions":
        waiting = set().union(*(held.order_ids for held in connection.held))
        if frame.order_ids & (_hidden(context) | waiting):
            connection.held.append(frame)
            return False
    return await _deliver(connection, context, frame)


async def _release_held(connection: Connection, context: SimContext) -> bool:
    """Send, in their order, the held frames whose orders are visible now."""
    if not connection.held:
        return False
    hidden = set(_hidden(context))
    still: list[Frame] = []
    sent = False
    for frame in connection.held:
        if frame.order_ids & hidden:
            still.append(frame)
            hidden |= frame.order_ids  # later frames about these orders keep waiting too
        else:
            sent = await _deliver(connection, context, frame) or sent
    connection.held = still
    return sent


async def _deliver(connection: Connection, context: SimContext, frame: Frame) -> bool:
    """Send one frame, numbering a data frame; a socket fault may eat it (and the
    connection). Returns whether it went out."""
    if connection.stalled or connection.ws.closed:
        return False
    message = frame.message
    if frame.channel is not None:
        connection.sequence += 1
        message = {**message, "sequence": connection.sequence}
        fault = context.faults.take_socket(frame.channel)
        if fault is not None:
            log.info("sim.ws_fault_fired", channel=frame.channel, kind=fault.kind.value,
                     sequence=connection.sequence, remaining=fault.remaining)  # fmt: skip
            if fault.kind is FaultKind.WS_DROP and connection.transport is not None:
                connection.transport.close()  # no close frame: the client sees the line drop
                connection.stalled = True
            elif fault.kind is FaultKind.WS_STALL:
                connection.stalled = True
            return False
    await connection.ws.send_str(to_json(message))
    return True


def _reply(connection: Connection, method: str, request: dict[str, Any], time_in: float,
           context: SimContext, *, result: Any = None,
           error: str | None = None) -> None:  # fmt: skip
    reply: dict[str, Any] = {"method": method}
    if "req_id" in request:
        reply["req_id"] = request["req_id"]
    if error is None:
        if result is not None:
            reply["result"] = result
        if method != "pong":
            reply["success"] = True
    else:
        reply["error"] = error
        reply["success"] = False
    reply["time_in"] = rfc3339(time_in)
    reply["time_out"] = rfc3339(context.clock.time())
    connection.send_later(reply)


def _handle_text(connection: Connection, context: SimContext, text: str) -> None:
    time_in = context.clock.time()
    try:
        # Decimal numbers reach the REST handlers as the text the client wrote.
        request = json.loads(text, parse_float=str)
    except ValueError:
        request = None
    if not isinstance(request, dict):
        connection.send_later({"error": INVALID_ARGUMENTS, "success": False,
                               "time_in": rfc3339(time_in),
                               "time_out": rfc3339(context.clock.time())})  # fmt: skip
        return
    method = request.get("method")
    params = request.get("params")
    params = params if isinstance(params, dict) else {}
    channel = params.get("channel")
    if method == "ping":
        _reply(connection, "pong", request, time_in, context)
    elif method in TRADING_METHODS:
        _trade(connection, context, request, params, time_in)
    elif method == "subscribe" and channel in ("executions", "balances"):
        _subscribe(connection, context, request, params, time_in)
    elif method == "unsubscribe" and channel in ("executions", "balances"):
        if getattr(connection, str(channel)) is None:
            _reply(connection, "unsubscribe", request, time_in, context, error=INVALID_ARGUMENTS)
            return
        setattr(connection, str(channel), None)
        _reply(connection, "unsubscribe", request, time_in, context,
               result={"channel": channel})  # fmt: skip
    else:
        _reply(connection, str(method), request, time_in, context, error=INVALID_ARGUMENTS)


def _trade(connection: Connection, context: SimContext, request: dict[str, Any],
           params: dict[str, Any], time_in: float) -> None:  # fmt: skip
    """A trading method (ws_trading.py); each outcome is one reply."""
    method = str(request["method"])
    token = params.get("token")
    issued = context.ws_tokens.issued(token) if isinstance(token, str) else None
    if issued is None or not isinstance(token, str):
        _reply(connection, method, request, time_in, context, error=INVALID_SESSION)
        return
    context.ws_tokens.keep_alive(token)
    fields = {name: value for name, value in params.items() if name != "token"}
    trading = WsTrading(context, issued.account, issued.permissions)
    for result, error in trading.serve(method, fields):
        _reply(connection, method, request, time_in, context, result=result, error=error)


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    return value if isinstance(value, bool) else default


def _subscribe(connection: Connection, context: SimContext, request: dict[str, Any],
               params: dict[str, Any], time_in: float) -> None:  # fmt: skip
    token = params.get("token")
    account = context.ws_tokens.account_for(token) if isinstance(token, str) else None
    if account is None or not isinstance(token, str):
        _reply(connection, "subscribe", request, time_in, context, error=INVALID_SESSION)
        return
    context.ws_tokens.keep_alive(token)
    # Apply due expiries first, so their updates cannot come before this snapshot.
    context.engine.tick()
    if params.get("channel") == "balances":
        _subscribe_balances(connection, context, request, params, time_in, account, token)
    else:
        _subscribe_executions(connection, context, request, params, time_in, account, token)


def _subscribe_executions(connection: Connection, context: SimContext, request: dict[str, Any],
                          params: dict[str, Any], time_in: float, account: str,
                          token: str) -> None:  # fmt: skip
    # Kraken's deprecated options: `snapshot` means snap_orders; `snapshot_trades: true` means a
    # snapshot of trades only.
    trades_only = _flag(params, "snapshot_trades", False)
    snap_orders = _flag(params, "snap_orders", _flag(params, "snapshot", not trades_only))
    snap_trades = _flag(params, "snap_trades", trades_only)
    connection.executions = ExecutionsSub(
        account,
        token,
        order_status=_flag(params, "order_status", True),
        ratecounter=_flag(params, "ratecounter", False),
    )
    result = {
        "channel": "executions",
        "maxratecount": context.engine.max_rate_count(account),
        "snapshot": snap_orders or snap_trades,
        "snap_orders": snap_orders,
        "snap_trades": snap_trades,
        "warnings": ["cancel_reason is deprecated, use reason"],
    }
    _reply(connection, "subscribe", request, time_in, context, result=result)
    if not (snap_orders or snap_trades):
        return
    data: list[dict[str, Any]] = []
    hidden = _hidden(context)
    late: list[SimOrder] = []
    if snap_orders:
        for order in context.engine.open_orders_of(account):
            if order.txid in hidden:
                late.append(order)
            else:
                data.append(order_item(order, snapshot_status(order), order.opentm))
    if snap_trades:
        for order, trade in context.engine.recent_trades_of(account, SNAP_TRADES):
            if order.txid not in hidden:
                data.append(trade_item(order, trade, trade.time))
    connection.data("executions", "snapshot", data)
    for order in late:  # sent as a `new` update once late_visibility shows it
        connection.held.append(Frame({"channel": "executions", "type": "update",
                                      "data": [order_item(order, "new", order.opentm)]},
                                     "executions", frozenset({order.txid})))  # fmt: skip


def _subscribe_balances(connection: Connection, context: SimContext, request: dict[str, Any],
                        params: dict[str, Any], time_in: float, account: str,
                        token: str) -> None:  # fmt: skip
    snapshot = _flag(params, "snapshot", True)
    shown = context.engine.state()["accounts"][account]["balances"]
    sub = BalancesSub(account, token, {asset_id: Decimal(amount)
                                       for asset_id, amount in shown.items()})  # fmt: skip
    connection.balances = sub
    _reply(connection, "subscribe", request, time_in, context,
           result={"channel": "balances", "snapshot": snapshot})  # fmt: skip
    if not snapshot:
        return
    data = []
    for asset_id, amount in sub.balances.items():
        asset = find_asset(asset_id)
        if asset is not None:
            data.append(balance_snapshot_item(asset, amount))
    connection.data("balances", "snapshot", data)
