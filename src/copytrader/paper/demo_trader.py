"""A pretend human trader for paper mode: places master orders on the simulator every few seconds.

It stands for the master's own trading app, so it trades through krakenex directly with an API
key of its own on the master account (the daemon reads the master through a different key),
and it never imports the copy engine. Each step it moves the simulated prices a little (through
the simulator's `/sim/price` control endpoint, so resting limit orders get filled, or trading
part of a resting limit's volume through `/sim/trade`, so it fills partly) and does one
thing a trader does: a market buy or sell, a limit order a little away from the price, an
amend of a resting limit (AmendOrder: a new quantity and a price a little further away, same
txid), or a cancel of one of its resting limits. The first steps follow a fixed script so that
even a short run shows every kind; after that the choice is random.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any

import krakenex
import requests

from copytrader.domain import OrderType, Side
from copytrader.errors import KrakenError
from copytrader.logs import get_logger

log = get_logger(__name__)

PriceControl = Callable[[str, Decimal], None]
# An outside trader's order through a price (pair id, the outside taker's side, price, volume):
# the simulator's `/sim/trade`, which fills resting limits partly.
TradeControl = Callable[[str, Side, Decimal, Decimal], None]
"""Sets a pair's last price on the simulator (fills the limit orders it crosses)."""


@dataclass(frozen=True)
class DemoPair:
    pair_id: str  # what AddOrder and /sim/price take: XXBTZUSD
    altname: str  # XBTUSD, what people read
    tick: Decimal  # price increment
    min_volume: Decimal  # the demo's own range of order sizes, in base units
    max_volume: Decimal


DEMO_PAIRS: tuple[DemoPair, ...] = (
    DemoPair("XXBTZUSD", "XBTUSD", Decimal("0.1"), Decimal("0.002"), Decimal("0.02")),
    DemoPair("XETHZUSD", "ETHUSD", Decimal("0.01"), Decimal("0.05"), Decimal("0.6")),
    DemoPair("SOLUSD", "SOLUSD", Decimal("0.01"), Decimal("1"), Decimal("12")),
)
LOT = Decimal("0.00000001")


class Action(StrEnum):
    MARKET_BUY = "market_buy"
    MARKET_SELL = "market_sell"
    LIMIT_BUY = "limit_buy"
    LIMIT_SELL = "limit_sell"
    CANCEL = "cancel"
    AMEND = "amend"


# (action, pair index, fraction of the pair's size range): every kind shows up in the first
# minute; the first order is big enough that even the smallest demo user can copy it.
OPENING_SCRIPT: tuple[tuple[Action, int, Decimal], ...] = (
    (Action.MARKET_BUY, 0, Decimal("0.6")),
    (Action.LIMIT_BUY, 1, Decimal("0.6")),
    (Action.MARKET_SELL, 1, Decimal("0.4")),
    (Action.LIMIT_SELL, 0, Decimal("0.5")),
    (Action.CANCEL, 0, Decimal(0)),
    (Action.MARKET_BUY, 2, Decimal("0.5")),
    (Action.LIMIT_BUY, 0, Decimal("0.4")),
    (Action.MARKET_SELL, 0, Decimal("0.3")),
    (Action.AMEND, 0, Decimal("0.5")),
)
RANDOM_WEIGHTS: Mapping[Action, int] = {
    Action.MARKET_BUY: 2,
    Action.MARKET_SELL: 2,
    Action.LIMIT_BUY: 2,
    Action.LIMIT_SELL: 2,
    Action.CANCEL: 1,
    Action.AMEND: 1,
}


@dataclass(frozen=True)
class PlacedOrder:
    txid: str
    pair: DemoPair
    side: Side
    order_type: OrderType
    volume: Decimal
    price: Decimal | None
    placed_at: float  # time.time() when the exchange acknowledged it


def _refused(errors: list[str]) -> KrakenError:
    return KrakenError(", ".join(errors), account="MASTER (demo trader)", errors=tuple(errors))


class DemoTrader:
    """Trades on the master account with its own key until stopped. Not thread-safe: one thread."""

    def __init__(
        self,
        *,
        api_url: str,
        key: str,
        secret: str,
        set_price: PriceControl,
        trade_through: TradeControl | None = None,
        rng: random.Random | None = None,
        interval_s: tuple[float, float] = (2.0, 3.5),
        timeout_s: float = 5.0,
        pairs: tuple[DemoPair, ...] = DEMO_PAIRS,
    ) -> None:
        self._api = krakenex.API(key=key, secret=secret)
        self._api.uri = api_url.rstrip("/")
        # krakenex's own nonce is the clock in ms: two calls in one millisecond would collide.
        nonces = itertools.count(time.time_ns() // 1_000_000)
        self._api._nonce = lambda: next(nonces)
        self._set_price = set_price
        self._trade_through = trade_through
        self._rng = rng or random.Random()
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._pairs = pairs
        self._prices: dict[str, Decimal] = {}
        self._resting: list[PlacedOrder] = []  # our limits that may still be open, oldest first
        self._steps = 0
        self.placed: list[PlacedOrder] = []
        self.cancelled: list[str] = []
        self.amended: list[str] = []
        self.failures = 0

    # ------------------------------------------------------------------ running

    def run(self, stop: threading.Event) -> None:
        """Step right away, then every few seconds, until `stop` is set. Never raises."""
        try:
            self._load_prices()
            while not stop.is_set():
                self.step()
                if stop.wait(self._rng.uniform(*self._interval_s)):
                    break
        except Exception as error:  # noqa: BLE001 - the demo must not take paper mode down
            log.error("demo.trader_crashed", message=f"demo trader stopped: {error!r}")

    def step(self) -> None:
        """Move the prices a little, then do one trading action."""
        if not self._prices:
            self._load_prices()
        self._move_prices()
        if self._steps < len(OPENING_SCRIPT):
            action, index, size = OPENING_SCRIPT[self._steps]
            pair = self._pairs[index % len(self._pairs)]
        else:
            actions = list(RANDOM_WEIGHTS)
            action = self._rng.choices(actions, weights=[RANDOM_WEIGHTS[a] for a in actions])[0]
            pair = self._rng.choice(self._pairs)
            size = Decimal(str(round(self._rng.random(), 3)))
        self._steps += 1
        if action in (Action.CANCEL, Action.AMEND):
            if self._resting:
                if action is Action.CANCEL:
                    self._cancel_oldest()
                else:
                    self._amend_newest(size)
                return
            action = Action.LIMIT_BUY
        self._place(action, pair, size)

    # ------------------------------------------------------------------ exchange calls

    def _private(self, method: str, data: dict[str, str]) -> Any:
        reply = self._api.query_private(method, data, timeout=self._timeout_s)
        if reply.get("error"):
            raise _refused(reply["error"])
        return reply["result"]

    def _load_prices(self) -> None:
        ids = ",".join(p.pair_id for p in self._pairs)
        reply = self._api.query_public("Ticker", {"pair": ids}, timeout=self._timeout_s)
        if reply.get("error"):
            raise _refused(reply["error"])
        for pair in self._pairs:
            self._prices[pair.pair_id] = Decimal(reply["result"][pair.pair_id]["c"][0])

    def _place(self, action: Action, pair: DemoPair, size: Decimal) -> None:
        side = Side.BUY if action in (Action.MARKET_BUY, Action.LIMIT_BUY) else Side.SELL
        is_limit = action in (Action.LIMIT_BUY, Action.LIMIT_SELL)
        volume = (pair.min_volume + (pair.max_volume - pair.min_volume) * size).quantize(
            LOT, rounding=ROUND_DOWN
        )
        data = {
            "pair": pair.pair_id,
            "type": side.value,
            "ordertype": OrderType.LIMIT.value if is_limit else OrderType.MARKET.value,
            "volume": str(volume),
        }
        price: Decimal | None = None
        if is_limit:
            # A few tenths of a percent away from the market: it rests, and a later price move
            # fills it.
            away = Decimal(str(round(self._rng.uniform(0.002, 0.005), 4)))
            last = self._prices[pair.pair_id]
            raw = last * (1 - away) if side is Side.BUY else last * (1 + away)
            price = raw.quantize(pair.tick, rounding=ROUND_DOWN)
            data["price"] = str(price)
        kind = f"{data['ordertype']} {side.value}"
        try:
            result = self._private("AddOrder", data)
        except (KrakenError, requests.RequestException) as error:
            self.failures += 1
            log.warning(
                "demo.order_failed",
                message=f"demo trader: {kind} {volume} {pair.altname} refused: {error}",
                pair=pair.altname,
                error=str(error),
            )
            return
        txid = str(result["txid"][0])
        order = PlacedOrder(
            txid=txid,
            pair=pair,
            side=side,
            order_type=OrderType.LIMIT if is_limit else OrderType.MARKET,
            volume=volume,
            price=price,
            placed_at=time.time(),
        )
        self.placed.append(order)
        if is_limit:
            self._resting.append(order)
        log.info(
            "demo.master_order",
            message=f"demo trader placed master {result['descr']['order']} ({txid})",
            txid=txid,
            pair=pair.altname,
            side=side.value,
            order_type=order.order_type.value,
            volume=str(volume),
            price=None if price is None else str(price),
        )

    def _cancel_oldest(self) -> None:
        order = self._resting.pop(0)
        try:
            self._private("CancelOrder", {"txid": order.txid})
        except (KrakenError, requests.RequestException) as error:
            # Most often it filled in the meantime; a trader shrugs and moves on.
            log.info(
                "demo.cancel_failed",
                message=f"demo trader could not cancel {order.txid}: {error}",
                txid=order.txid,
                error=str(error),
            )
            return
        self.cancelled.append(order.txid)
        log.info(
            "demo.master_cancel",
            message=f"demo trader cancelled master order {order.txid}",
            txid=order.txid,
            pair=order.pair.altname,
        )

    def _amend_newest(self, size: Decimal) -> None:
        """AmendOrder on the newest resting limit: its quantity scaled by 0.7-1.3 (by `size`)
        and its price moved one to three ticks further from the market, so it still rests."""
        order = self._resting[-1]
        assert order.price is not None
        factor = Decimal("0.7") + Decimal("0.6") * size
        volume = max(order.volume * factor, order.pair.min_volume).quantize(
            LOT, rounding=ROUND_DOWN
        )
        ticks = order.pair.tick * self._rng.randint(1, 3)
        price = order.price - ticks if order.side is Side.BUY else order.price + ticks
        data = {"txid": order.txid, "order_qty": str(volume), "limit_price": str(price)}
        try:
            self._private("AmendOrder", data)
        except (KrakenError, requests.RequestException) as error:
            # Most often it filled in the meantime.
            log.info(
                "demo.amend_failed",
                message=f"demo trader could not amend {order.txid}: {error}",
                txid=order.txid,
                error=str(error),
            )
            return
        self._resting[-1] = dataclasses.replace(order, volume=volume, price=price)
        self.amended.append(order.txid)
        log.info(
            "demo.master_amend",
            message=f"demo trader amended master order {order.txid}: {order.volume} @ "
            f"{order.price} -> {volume} @ {price}",
            txid=order.txid,
            pair=order.pair.altname,
            volume=str(volume),
            price=str(price),
        )

    def _move_prices(self) -> None:
        """A small random walk on every pair; now and then a jump onto a resting limit, or an
        outside trade that fills part of it (the order rests on, partly filled)."""
        fill_target = self._resting[0] if self._resting and self._rng.random() < 0.4 else None
        if fill_target is not None and self._trade_through is not None and self._rng.random() < 0.5:
            self._fill_part(fill_target)
            fill_target = None
        for pair in self._pairs:
            last = self._prices[pair.pair_id]
            if fill_target is not None and fill_target.pair == pair and fill_target.price:
                # Just through the limit, so the simulator fills it as a maker.
                nudge = pair.tick if fill_target.side is Side.SELL else -pair.tick
                new = fill_target.price + nudge
                self._resting.remove(fill_target)
            else:
                step = Decimal(str(round(self._rng.gauss(0, 0.0015), 5)))
                new = (last * (1 + step)).quantize(pair.tick, rounding=ROUND_DOWN)
            if new <= 0:
                continue
            try:
                self._set_price(pair.pair_id, new)
            except OSError as error:
                log.warning(
                    "demo.price_failed",
                    message=f"demo trader could not move {pair.altname}: {error}",
                    pair=pair.altname,
                )
                continue
            self._prices[pair.pair_id] = new
            log.debug("demo.price", pair=pair.altname, price=str(new))

    def _fill_part(self, order: PlacedOrder) -> None:
        """An outside taker trades half of the order's volume through its limit."""
        if self._trade_through is None or order.price is None:
            return
        part = (order.volume / 2).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
        taker = Side.SELL if order.side is Side.BUY else Side.BUY
        try:
            self._trade_through(order.pair.pair_id, taker, order.price, part)
        except OSError as error:
            log.warning(
                "demo.trade_failed",
                message=f"demo trader could not trade through {order.pair.altname}: {error}",
                pair=order.pair.altname,
            )
            return
        log.info(
            "demo.partial_fill",
            message=f"an outside trade filled part ({part}) of master order {order.txid}",
            master_txid=order.txid,
            volume=str(part),
        )
