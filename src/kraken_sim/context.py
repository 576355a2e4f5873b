"""State shared by the simulator's request handlers (HTTP, WebSocket and in-process), built from
an accounts setup, and the JSON encoding of every reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web

from kraken_sim.accounts import AccountsFileError, ApiKeySpec, SimSetup
from kraken_sim.auth import Authenticator
from kraken_sim.clock import SimClock
from kraken_sim.engine import Engine
from kraken_sim.errors import SimError
from kraken_sim.faults import FaultBook
from kraken_sim.markets import Pair
from kraken_sim.matching import OrderObserver
from kraken_sim.orders import SimOrder, Trade
from kraken_sim.reqlog import RequestLog
from kraken_sim.tokens import WsTokens


class Exchange(Protocol):
    """What the request handlers need from the engine (engine.py)."""

    def add_account(
        self, account_id: str, *, balances: Mapping[str, Decimal], tier: str
    ) -> None: ...
    def public(self, method: str, params: Mapping[str, Any]) -> Any: ...
    def private(self, account_id: str, method: str, params: Mapping[str, Any]) -> Any: ...
    def set_price(self, pair: str, price: Decimal) -> None: ...
    def trade(self, pair: str, side: str, price: Decimal, volume: Decimal) -> Decimal: ...
    def state(self) -> dict[str, Any]: ...
    def add_order_observer(self, observer: OrderObserver) -> None: ...
    def remove_order_observer(self, observer: OrderObserver) -> None: ...
    def tick(self) -> None: ...
    def open_orders_of(self, account_id: str) -> list[SimOrder]: ...
    def recent_trades_of(self, account_id: str, limit: int) -> list[tuple[SimOrder, Trade]]: ...
    def max_rate_count(self, account_id: str) -> int: ...
    def rate_count(self, account_id: str, pair: Pair) -> float: ...

    order_limits: bool


@dataclass
class SimContext:
    """Everything the request handlers share; one per simulated exchange."""

    engine: Exchange
    auth: Authenticator
    clock: SimClock
    ws_tokens: WsTokens
    latency_ms: float = 0.0
    faults: FaultBook = field(default_factory=FaultBook)
    requests: RequestLog = field(default_factory=RequestLog)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def from_setup(
        cls, setup: SimSetup, *, seed: int | None, clock: SimClock, latency_ms: float = 0.0
    ) -> SimContext:
        """A fresh exchange with the setup's accounts, keys and starting prices.

        Raises AccountsFileError for a starting price the engine refuses."""
        engine = Engine(seed=seed, clock=clock.time, books=setup.books)
        for account in setup.accounts:
            engine.add_account(account.name, balances=account.balances, tier=account.tier)
        for pair, price in setup.prices.items():
            try:
                engine.set_price(pair, price)
            except SimError as exc:
                raise AccountsFileError(f"[prices]: {pair!r}: {exc.error}") from None
        keys: dict[str, tuple[ApiKeySpec, str]] = {
            spec.key: (spec, account.tier) for account in setup.accounts for spec in account.keys
        }
        return cls(
            engine=engine,
            auth=Authenticator(keys, setup.lockout, clock.monotonic),
            clock=clock,
            ws_tokens=WsTokens(clock.monotonic),
            latency_ms=latency_ms,
        )


CONTEXT = web.AppKey("copytrader_sim_context", SimContext)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(payload: object) -> str:
    """The JSON text of a reply; Decimals become strings, as Kraken sends numbers."""
    return json.dumps(payload, default=_json_default)


def json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(text=to_json(payload), status=status, content_type="application/json")
