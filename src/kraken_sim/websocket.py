"""Kraken's authenticated WebSocket v2 `executions` channel, served at /v2 on the simulator.

Kraken serves it at wss://ws-auth.kraken.com/v2; a client points at ws://127.0.0.1:PORT/v2.
Shapes follow kraken-api.md §6: a status frame on connect; `ping` → `pong`; `subscribe` with a
token from GetWebSocketsToken → the ack, then a `snapshot` (sequence 1) and one `update` per
change of the account's orders, whoever made it (REST on any key of the account, price moves,
expiry); `{"channel":"heartbeat"}` about once a second when nothing else was sent.

The engine calls `WsHub.on_event` synchronously inside a request; the hub turns the order into
its JSON item at once (the order object changes afterwards) and queues it per connection, so the
engine never waits on a socket.

Choices where Kraken's documentation is silent or the simulator simplifies:
- a bad or expired token: `ESession:Invalid session` (what Kraken's spot socket answers).
- only `executions` can be subscribed; another channel or method gets a failure reply
  `EGeneral:Invalid arguments`.
- every change is its own `update` frame with one item (Kraken may batch several).
- the engine applies expiries lazily; a subscribed socket applies them on each quiet second,
  so an `expired` update comes within about a second without any REST request.
- trigger orders carry no `triggers` object; viqc market buys show `cash_order_qty`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from kraken_sim.context import CONTEXT, SimContext
from kraken_sim.matching import OrderEvent
from kraken_sim.orders import OrderType, SimOrder, Status, Trade

log = structlog.get_logger("kraken_sim.ws")

HEARTBEAT_S = 1.0
SNAP_TRADES = 50  # Kraken's snapshot carries the last 50 fills
INVALID_SESSION = "ESession:Invalid session"
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
# v2 names assets as ccxt does: XBT is BTC, XDG is DOGE (DOC-WS v2-vs-v1 table).
_V2_ASSET = {"XBT": "BTC", "XDG": "DOGE"}


def rfc3339(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def v2_asset(altname: str) -> str:
    return _V2_ASSET.get(altname, altname)


def v2_symbol(order: SimOrder) -> str:
    return f"{v2_asset(order.pair.base.altname)}/{v2_asset(order.pair.quote.altname)}"


def _num(value: Decimal) -> float:
    """v2 sends numbers as JSON numbers, not strings."""
    return float(value)


def _limit_price(order: SimOrder) -> Decimal | None:
    if order.ordertype is OrderType.LIMIT:
        return order.price
    if order.ordertype.has_limit_after_trigger:
        return order.price2
    return None


def _fee_usd(order: SimOrder, fee: Decimal, price: Decimal) -> float | None:
    """The fee in USD when the pair is quoted in USD (else unknown here, left out)."""
    if order.pair.quote.altname != "USD":
        return None
    return _num(fee * price if order.fee_in_base else fee)


def _ids(order: SimOrder) -> dict[str, Any]:
    item: dict[str, Any] = {"order_id": order.txid, "order_userref": order.userref or 0}
    if order.cl_ord_id is not None:
        item["cl_ord_id"] = order.cl_ord_id
    return item


def _status_head(order: SimOrder, exec_type: str) -> dict[str, Any]:
    """The first fields of an item whose exec_type is also the order's status."""
    item = _ids(order)
    item.update(
        exec_type=exec_type,
        order_status=exec_type,
        symbol=v2_symbol(order),
        side=order.side.value,
    )
    return item


def order_item(order: SimOrder, exec_type: str, when: float) -> dict[str, Any]:
    """A pending_new / new item (also the snapshot's open orders): the whole order."""
    item = _status_head(order, exec_type)
    item.update(
        order_type=order.ordertype.value,
        time_in_force=order.timeinforce.value,
        cum_qty=_num(order.vol_exec),
        cum_cost=_num(order.cost),
        fee_usd_equiv=0.0,
        fee_ccy_pref="fcib" if order.fee_in_base else "fciq",
        timestamp=rfc3339(when),
    )
    # viqc: the volume is in quote units, which v2 calls cash_order_qty.
    item["cash_order_qty" if order.viqc else "order_qty"] = _num(order.volume)
    limit = _limit_price(order)
    if limit is not None:
        item["limit_price"] = _num(limit)
        item["limit_price_type"] = "static"
    if order.post_only:
        item["post_only"] = True
    return item


def _complete(order: SimOrder) -> bool:
    if order.viqc:  # volume in quote units: complete once the engine has closed it
        return order.status is Status.CLOSED
    return order.vol_exec >= order.volume


def trade_item(order: SimOrder, trade: Trade, when: float) -> dict[str, Any]:
    item = _ids(order)
    fee_asset = order.pair.base if trade.fee_in_base else order.pair.quote
    item.update(
        exec_id=trade.txid,
        exec_type="trade",
        trade_id=trade.trade_id,
        symbol=v2_symbol(order),
        side=order.side.value,
        order_type=order.ordertype.value,
        last_qty=_num(trade.vol),
        last_price=_num(trade.price),
        liquidity_ind="m" if trade.maker else "t",
        cost=_num(trade.cost),
        # The order's totals so far (it is updated before observers hear of the trade). Kraken
        # may say partially_filled even on the trade that completes an order; a `filled` update
        # follows either way.
        order_status="filled" if _complete(order) else "partially_filled",
        cum_qty=_num(order.vol_exec),
        cum_cost=_num(order.cost),
        avg_price=_num(order.avg_price or trade.price),
        fees=[{"asset": v2_asset(fee_asset.altname), "qty": _num(trade.fee)}],
        timestamp=rfc3339(when),
    )
    fee_usd = _fee_usd(order, trade.fee, trade.price)
    if fee_usd is not None:
        item["fee_usd_equiv"] = fee_usd
    return item


def closed_item(order: SimOrder, exec_type: str, when: float) -> dict[str, Any]:
    """filled / canceled / expired: the order's totals and, for a cancel, the reason."""
    item = _status_head(order, exec_type)
    item.update(
        cum_qty=_num(order.vol_exec),
        cum_cost=_num(order.cost),
        avg_price=_num(order.avg_price or Decimal(0)),
        fee_usd_equiv=_fee_usd(order, order.fee, order.avg_price or Decimal(0)) or 0.0,
        timestamp=rfc3339(when),
    )
    if exec_type == "canceled" and order.reason is not None:
        # Kraken still sends the deprecated cancel_reason beside reason (KARS frames).
        item["cancel_reason"] = order.reason
        item["reason"] = order.reason
    return item


def event_item(event: OrderEvent) -> dict[str, Any]:
    if event.exec_type in ("pending_new", "new"):
        return order_item(event.order, event.exec_type, event.time)
    if event.exec_type == "trade":
        assert event.trade is not None
        return trade_item(event.order, event.trade, event.time)
    return closed_item(event.order, event.exec_type, event.time)


class Connection:
    """One client socket: its executions subscription (if any) and what is queued for it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.account: str | None = None
        self.token: str | None = None
        self.sequence = 0
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send_later(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(message)

    def executions(self, kind: str, data: list[dict[str, Any]]) -> None:
        self.sequence += 1
        self.send_later({"channel": "executions", "type": kind, "data": data,
                         "sequence": self.sequence})  # fmt: skip


class WsHub:
    """The engine's observer: fans order changes out to the connections subscribed to them."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()

    def on_event(self, event: OrderEvent) -> None:
        listeners = [c for c in self.connections if c.account == event.account]
        if not listeners:
            return
        item = event_item(event)
        for connection in listeners:
            connection.executions("update", [item])


WS_HUB = web.AppKey("copytrader_sim_ws_hub", WsHub)


def add_websocket_routes(app: web.Application, context: SimContext) -> None:
    hub = WsHub()
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
    connection = Connection(ws)
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
    """Send what is queued; after a quiet second on a subscribed socket, a heartbeat."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        while not connection.ws.closed:
            try:
                message = await asyncio.wait_for(connection.queue.get(), HEARTBEAT_S)
            except TimeoutError:
                if connection.account is None:
                    continue
                # Expiries happen lazily in the engine; apply them so the feed reports them.
                context.engine.tick()
                if connection.token is not None:
                    context.ws_tokens.keep_alive(connection.token)
                if connection.queue.empty():
                    message = {"channel": "heartbeat"}
                else:
                    continue
            await connection.ws.send_str(json.dumps(message))


def _reply(connection: Connection, method: str, request: dict[str, Any], time_in: float,
           context: SimContext, *, result: dict[str, Any] | None = None,
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
        request = json.loads(text)
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
    if method == "ping":
        _reply(connection, "pong", request, time_in, context)
    elif method == "subscribe" and params.get("channel") == "executions":
        _subscribe(connection, context, request, params, time_in)
    elif method == "unsubscribe" and params.get("channel") == "executions":
        if connection.account is None:
            _reply(connection, "unsubscribe", request, time_in, context, error=INVALID_ARGUMENTS)
            return
        connection.account = None
        connection.token = None
        _reply(connection, "unsubscribe", request, time_in, context,
               result={"channel": "executions"})  # fmt: skip
    else:
        _reply(connection, str(method), request, time_in, context, error=INVALID_ARGUMENTS)


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
    # snapshot / snapshot_trades are Kraken's deprecated aliases.
    snap_orders = _flag(params, "snap_orders", _flag(params, "snapshot", True))
    snap_trades = _flag(params, "snap_trades", _flag(params, "snapshot_trades", False))
    context.ws_tokens.keep_alive(token)
    # Apply due expiries first, so their updates cannot come before this snapshot.
    context.engine.tick()
    connection.account = account
    connection.token = token
    connection.sequence = 0
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
    if snap_orders:
        for order in context.engine.open_orders_of(account):
            status = "new" if order.status.value == "open" else "pending_new"
            data.append(order_item(order, status, order.opentm))
    if snap_trades:
        for order, trade in context.engine.recent_trades_of(account, SNAP_TRADES):
            data.append(trade_item(order, trade, trade.time))
    connection.executions("snapshot", data)
