"""A client of the simulator's WebSocket v2 for the tests: REST calls through krakenex, an
aiohttp socket on ws://127.0.0.1:PORT/v2 (`Feed`), and the accounts file of one trading key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import krakenex

from tests.simproc import SimProcess

TIMEOUT_S = 10.0


def trader_accounts(name: str, key: tuple[str, str]) -> str:
    """An accounts file with one pro-tier account holding USD and BTC, BTC/USD at 60000."""
    return f"""
[[accounts]]
name = "{name}"
key = "{key[0]}"
secret = "{key[1]}"
tier = "pro"
balances = {{ ZUSD = "100000", XXBT = "2" }}

[prices]
XXBTZUSD = "60000"
"""


def _api(sim: SimProcess, key: tuple[str, str]) -> krakenex.API:
    api = krakenex.API(key[0], key[1])
    api.uri = sim.url
    return api


def _ok(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


def private(sim: SimProcess, key: tuple[str, str], method: str, data: dict[str, Any]) -> Any:
    api = _api(sim, key)
    try:
        return _ok(api.query_private(method, data, timeout=TIMEOUT_S))
    finally:
        api.close()


class Feed:
    """One client socket; `next()` skips heartbeats and the status frame unless asked for."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.sequence = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def next(self, *, skip: tuple[str, ...] = ("heartbeat", "status")) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.ws.receive(), TIMEOUT_S)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            # Decimal, so that prices and quantities compare exactly.
            parsed: dict[str, Any] = json.loads(message.data, parse_float=Decimal)
            if "sequence" in parsed:  # counts up on this connection, 1 for the snapshot
                assert parsed["sequence"] > self.sequence, (parsed, self.sequence)
                self.sequence = parsed["sequence"]
            if parsed.get("channel") not in skip:
                return parsed

    async def updates(self, count: int) -> list[dict[str, Any]]:
        """The next `count` executions items, with their frames' sequences checked."""
        items: list[dict[str, Any]] = []
        while len(items) < count:
            frame = await self.next()
            assert (frame["channel"], frame["type"]) == ("executions", "update"), frame
            items.extend(frame["data"])
        return items

    async def subscribe(self, token: str, **flags: bool) -> dict[str, Any]:
        params = {"channel": "executions", "token": token, **flags}
        await self.send({"method": "subscribe", "params": params, "req_id": 7})
        return await self.next()


def run(sim: SimProcess, body: Callable[[Feed], Awaitable[None]]) -> None:
    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=60, connect=TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.ws_connect(sim.url.replace("http://", "ws://") + "/v2") as ws,
        ):
            await asyncio.wait_for(body(Feed(ws)), 45)

    asyncio.run(main())


def in_thread(call: Callable[[], Any]) -> Awaitable[Any]:
    """REST calls block; run them off the loop so the socket keeps being read."""
    return asyncio.to_thread(call)


def add(sim: SimProcess, key: tuple[str, str], **order: str) -> Awaitable[str]:
    data = {"pair": "XBTUSD", "ordertype": "limit", **order}
    return in_thread(lambda: private(sim, key, "AddOrder", data)["txid"][0])


def token_for(sim: SimProcess, key: tuple[str, str]) -> str:
    token: str = private(sim, key, "GetWebSocketsToken", {})["token"]
    return token
