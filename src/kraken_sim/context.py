"""State shared by the simulator's request handlers, and Kraken's response envelope."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web

from kraken_sim.auth import Authenticator
from kraken_sim.clock import SimClock
from kraken_sim.faults import FaultBook
from kraken_sim.matching import OrderObserver
from kraken_sim.orders import SimOrder, Trade
from kraken_sim.reqlog import RequestLog
from kraken_sim.tokens import WsTokens


class Exchange(Protocol):
    """What the server needs from the engine (sim/engine.py)."""

    def add_account(
        self, account_id: str, *, balances: Mapping[str, Decimal], tier: str
    ) -> None: ...
    def public(self, method: str, params: Mapping[str, Any]) -> Any: ...
    def private(self, account_id: str, method: str, params: Mapping[str, Any]) -> Any: ...
    def set_price(self, pair: str, price: Decimal) -> None: ...
    def state(self) -> dict[str, Any]: ...
    def add_order_observer(self, observer: OrderObserver) -> None: ...
    def remove_order_observer(self, observer: OrderObserver) -> None: ...
    def tick(self) -> None: ...
    def open_orders_of(self, account_id: str) -> list[SimOrder]: ...
    def recent_trades_of(self, account_id: str, limit: int) -> list[tuple[SimOrder, Trade]]: ...
    def max_rate_count(self, account_id: str) -> int: ...

    order_limits: bool


@dataclass
class SimContext:
    """Everything the request handlers share; lives on the aiohttp app."""

    engine: Exchange
    auth: Authenticator
    clock: SimClock
    ws_tokens: WsTokens
    latency_ms: float = 0.0
    faults: FaultBook = field(default_factory=FaultBook)
    requests: RequestLog = field(default_factory=RequestLog)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


CONTEXT = web.AppKey("copytrader_sim_context", SimContext)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, default=_json_default),
        status=status,
        content_type="application/json",
    )


def kraken_ok(result: object) -> web.Response:
    return json_response({"error": [], "result": result})


def kraken_error(error: str, status: int = 200) -> web.Response:
    return json_response({"error": [error]}, status=status)
