"""Where orders meet the market: placing, triggering, filling, expiring and cancelling.

The market's side of every fill is the "house": each pair's book (books.py) when books are
enabled, else one price `last` with unlimited depth. Rules:
- a market order walks the book from the best level out, one trade per level it takes from, as
  taker; what the book cannot give is cancelled ("Insufficient liquidity"); a viqc buy walks until
  its quote amount is spent;
- a limit order that is marketable on arrival (buy at or above the best ask, sell at or below the
  best bid) walks the book up to its limit price as taker, unless it is post-only (cancelled,
  "Post only order"); what is left rests, or is cancelled for IOC ("Insufficient liquidity");
  a FOK order takes only if the walk up to its limit fills all of it, else it is cancelled with
  nothing filled ("Insufficient liquidity"); it never rests;
- a resting limit fills at its own limit price, as maker: all of what is left of it when the
  pair's price (`last`) reaches the limit (`price_moved`), or part of it when the `trade` control
  operation trades a volume through it (`trade_through`, price-time priority across accounts);
- stop-loss triggers when `last` >= trigger (buy) or <= trigger (sell); take-profit the opposite;
  a triggered stop/take-profit walks the book as a market order (cancelled with "Insufficient
  funds" if the account cannot pay), a triggered *-limit becomes a limit at `price2` as above;
- an order left open, cancelled or expired with 0 < vol_exec < vol says `partial` in `misc`.
The accounts' own orders never trade with each other. Every asset a fill moves is recorded on the
account, the house or the fee ledger, so their sum per asset never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from kraken_sim.books import Book, BookSettings, Take
from kraken_sim.ids import IdGenerator
from kraken_sim.markets import PAIRS, Asset, Pair
from kraken_sim.orders import (
    REASON_FUNDS,
    REASON_IOC,
    REASON_POST_ONLY,
    Fill,
    OrderType,
    Side,
    SimOrder,
    Status,
    TimeInForce,
    Trade,
    compute_fill,
)
from kraken_sim.prices import PriceBoard
from kraken_sim.wallet import Wallet


@dataclass(frozen=True)
class OrderEvent:
    """One change of an order, named by Kraken's WebSocket v2 `exec_type`: pending_new, new,
    trade, filled, canceled, expired, amended (a user's AmendOrder) or status (a stop or
    take-profit triggered). Observers are called synchronously while the order is
    in exactly this state, so they must copy what they need before returning."""

    account: str
    exec_type: str
    order: SimOrder
    time: float
    trade: Trade | None = None


OrderObserver = Callable[[OrderEvent], None]


class Exchange:
    def __init__(
        self,
        *,
        ids: IdGenerator,
        clock: Callable[[], float],
        prices: PriceBoard,
        books: BookSettings | None = None,
        seed: int | None = None,
    ):
        self.ids = ids
        settings = books if books is not None else BookSettings()
        self.market_delay = settings.market_delay_ms / 1000
        self._books = {
            pair.id: Book(pair, settings.for_pair(pair), enabled=settings.enabled, seed=seed)
            for pair in PAIRS.values()
        }
        self.clock = clock
        self.prices = prices
        self.wallets: dict[str, Wallet] = {}
        self.house: dict[str, Decimal] = {}  # the counterparty's net flow per asset
        self.fees: dict[str, Decimal] = {}  # fees collected per asset
        self._seq = 0
        self._close_seq = 0
        self._trade_number = 0
        # Open orders that time can change (an expiry time, or not started yet), by txid: the
        # only ones `tick()` looks at, so a request does not cost O(every open order).
        self._timed: dict[str, tuple[Wallet, SimOrder]] = {}
        # Plain callbacks (the WebSocket feed subscribes here); the engine knows nothing of I/O.
        self.observers: list[OrderObserver] = []
        # The fee rate of (account, pair, maker): the account's 30-day volume tier. Without it,
        # every account pays the pair's first tier.
        self.fee_rates: Callable[[str, Pair, bool], Decimal] | None = None

    def _notify(
        self,
        wallet: Wallet,
        exec_type: str,
        order: SimOrder,
        when: float,
        trade: Trade | None = None,
    ) -> None:
        event = OrderEvent(wallet.account_id, exec_type, order, when, trade)
        for observer in list(self.observers):
            observer(event)

    def notify(self, wallet: Wallet, exec_type: str, order: SimOrder) -> None:
        """Tell the observers of a change made outside this module (an amend), now."""
        self._notify(wallet, exec_type, order, self.clock())

    def fee_rate(self, wallet: Wallet, pair: Pair, maker: bool) -> Decimal:
        """The fee rate a fill of this account on this pair pays (its 30-day volume tier)."""
        if self.fee_rates is not None:
            return self.fee_rates(wallet.account_id, pair, maker)
        return pair.maker_rate if maker else pair.taker_rate

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def last(self, pair: Pair) -> Decimal:
        return self.prices.last[pair.id]

    def book(self, pair: Pair) -> Book:
        """The pair's book, refilled up to now."""
        book = self._books[pair.id]
        book.refill(self.clock())
        return book

    # -- fills -------------------------------------------------------------------------------

    def remaining(self, order: SimOrder) -> Decimal:
        return order.volume - order.vol_exec

    def taker_walk(self, order: SimOrder, *, limit: Decimal | None = None) -> list[Take]:
        """What this order would take from the book now (a viqc order: as much as its quote
        amount buys), without taking it."""
        book = self.book(order.pair)
        last = self.last(order.pair)
        if order.viqc:
            return book.walk(str(order.side), last, quote=order.volume, limit=limit)
        return book.walk(str(order.side), last, volume=self.remaining(order), limit=limit)

    def taker_fills(self, order: SimOrder, takes: list[Take]) -> list[Fill]:
        pair = order.pair
        return [
            compute_fill(pair, order.side, take.volume, take.price, order.fee_in_base,
                         pair.taker_rate)
            for take in takes
        ]  # fmt: skip

    def market_need(self, order: SimOrder) -> tuple[Asset, Decimal]:
        """What a market order (or a triggered stop) would take out of the account now."""
        fills = self.taker_fills(order, self.taker_walk(order))
        asset = order.pair.quote if order.side is Side.BUY else order.pair.base
        return asset, sum((self.spent(order.pair, fill)[1] for fill in fills), Decimal(0))

    @staticmethod
    def spent(pair: Pair, fill: Fill) -> tuple[Asset, Decimal]:
        """What a fill takes out of the account: (asset, positive amount)."""
        if fill.base_delta < 0:
            return pair.base, -fill.base_delta
        return pair.quote, -fill.quote_delta

    def _fill(
        self, wallet: Wallet, order: SimOrder, volume: Decimal, price: Decimal, *, maker: bool
    ) -> Trade:
        """One trade of `volume` at `price` for this order; the caller closes the order."""
        pair = order.pair
        now = self.clock()
        rate = self.fee_rate(wallet, pair, maker)
        fill = compute_fill(pair, order.side, volume, price, order.fee_in_base, rate)
        wallet.credit(pair.base, fill.base_delta)
        wallet.credit(pair.quote, fill.quote_delta)
        signed = fill.vol if order.side is Side.BUY else -fill.vol
        self._book(self.house, pair.base, -signed)
        self._book(self.house, pair.quote, fill.cost if order.side is Side.BUY else -fill.cost)
        self._book(self.fees, pair.base if order.fee_in_base else pair.quote, fill.fee)
        self._trade_number += 1
        trade = Trade(
            txid=self.ids.trade_id(),
            ordertxid=order.txid,
            postxid=self.ids.trade_id(),
            trade_id=self._trade_number,
            pair=pair,
            time=now,
            side=order.side,
            ordertype=order.ordertype,
            price=price,
            vol=fill.vol,
            cost=fill.cost,
            fee=fill.fee,
            fee_in_base=order.fee_in_base,
            maker=maker,
        )
        wallet.trades[trade.txid] = trade
        # The tape shows the taker: this order, or the market's side against a maker fill.
        taker = order.side if not maker else (Side.SELL if order.side is Side.BUY else Side.BUY)
        self.prices.record_trade(
            pair, price, fill.vol, now, side=str(taker),
            market=not maker and order.ordertype is not OrderType.LIMIT,
        )  # fmt: skip
        order.vol_exec += fill.vol
        order.cost += fill.cost
        order.fee += fill.fee
        order.avg_price = order.cost / order.vol_exec
        order.trade_ids.append(trade.txid)
        self._notify(wallet, "trade", order, now, trade)
        return trade

    def _take(self, wallet: Wallet, order: SimOrder, takes: list[Take]) -> None:
        """Fill this order as taker against the book, one trade per level, and consume it."""
        for take in takes:
            self._fill(wallet, order, take.volume, take.price, maker=False)
        self.book(order.pair).consume(takes, str(order.side))
        self.book(order.pair).note_spread(self.clock(), self.last(order.pair))

    def _finish_market(self, wallet: Wallet, order: SimOrder) -> None:
        takes = self.taker_walk(order)
        self._take(wallet, order, takes)
        if order.vol_exec > 0 and (order.viqc or self.remaining(order) <= 0):
            self._close(wallet, order, Status.CLOSED, None, self.clock())
        else:
            self.cancel(wallet, order, REASON_IOC)

    def _execute(self, wallet: Wallet, order: SimOrder, price: Decimal, *, maker: bool) -> None:
        """Fill all of what is left of the order at one price, and close it."""
        self._fill(wallet, order, self.remaining(order), price, maker=maker)
        self._close(wallet, order, Status.CLOSED, None, self.clock())

    def trade_through(
        self, pair: Pair, taker_side: Side, price: Decimal, volume: Decimal
    ) -> Decimal:
        """An outside taker trades up to `volume` through `price`: it fills the accounts'
        resting limits it reaches (buys at or above `price` for a selling taker, sells at or
        below for a buying one), best price first, then oldest first, each at its own limit as
        maker, the last one partly if the volume runs out. Returns the volume traded."""
        resting_side = Side.BUY if taker_side is Side.SELL else Side.SELL
        candidates = []
        for wallet, order in self._all_open(pair):
            if order.side is not resting_side or order.status is not Status.OPEN:
                continue
            if order.ordertype.is_trigger and not order.triggered:
                continue
            limit = order.reserve_price
            if limit < price if resting_side is Side.BUY else limit > price:
                continue
            candidates.append((wallet, order))
        direction = -1 if resting_side is Side.BUY else 1
        candidates.sort(key=lambda item: (direction * item[1].reserve_price, item[1].seq))
        left = volume
        for wallet, order in candidates:
            if left <= 0:
                break
            take = min(left, self.remaining(order))
            self._fill(wallet, order, take, order.reserve_price, maker=True)
            left -= take
            if self.remaining(order) <= 0:
                self._close(wallet, order, Status.CLOSED, None, self.clock())
            else:
                _mark_partial(order)
        return volume - left

    @staticmethod
    def _book(ledger: dict[str, Decimal], asset: Asset, amount: Decimal) -> None:
        ledger[asset.id] = ledger.get(asset.id, Decimal(0)) + amount

    def _close(
        self, wallet: Wallet, order: SimOrder, status: Status, reason: str | None, when: float
    ) -> None:
        wallet.open.pop(order.txid, None)
        self._timed.pop(order.txid, None)
        if status is not Status.CLOSED and order.vol_exec > 0:
            _mark_partial(order)
        self._close_seq += 1
        order.status = status
        order.reason = reason
        order.closetm = when
        order.close_seq = self._close_seq
        exec_type = {Status.CLOSED: "filled", Status.CANCELED: "canceled"}.get(status, "expired")
        self._notify(wallet, exec_type, order, when)

    def cancel(self, wallet: Wallet, order: SimOrder, reason: str) -> None:
        self._close(wallet, order, Status.CANCELED, reason, self.clock())

    # -- placing and activating --------------------------------------------------------------

    def place(self, wallet: Wallet, order: SimOrder) -> None:
        """Put a validated order into play (funds were checked by the caller).

        A market order is worked at once, or `market_delay` later: until then it is pending,
        shown in OpenOrders and holding what its walk of the book cost on arrival."""
        now = self.clock()
        wallet.orders[order.txid] = order
        delayed = order.ordertype is OrderType.MARKET and self.market_delay > 0
        if delayed:
            order.due = now + self.market_delay
        if order.ordertype is not OrderType.MARKET or delayed:
            wallet.open[order.txid] = order
        if order.expiretm or order.starttm > now or delayed:
            self._timed[order.txid] = (wallet, order)
        # Kraken's order sequence: pending_new (accepted, not live) first, then new when live.
        self._notify(wallet, "pending_new", order, now)
        if order.starttm > now or delayed:
            order.status = Status.PENDING
            return
        self._activate(wallet, order)

    def _activate(self, wallet: Wallet, order: SimOrder) -> None:
        order.status = Status.OPEN
        self._notify(wallet, "new", order, self.clock())
        last = self.last(order.pair)
        if order.ordertype is OrderType.MARKET:
            asset, need = self.market_need(order)
            if order.due and wallet.available(asset, excluding=order) < need:
                self.cancel(wallet, order, REASON_FUNDS)
            else:
                self._finish_market(wallet, order)
        elif order.ordertype is OrderType.LIMIT:
            self._limit_arrives(wallet, order, last)
        elif self._triggered_by(order, last):
            self._trigger(wallet, order, last)

    def _limit_arrives(self, wallet: Wallet, order: SimOrder, last: Decimal) -> None:
        """A limit (or a just-triggered *-limit) meets the market for the first time."""
        limit = order.reserve_price
        book = self.book(order.pair)
        best = book.best("ask" if order.side is Side.BUY else "bid", last)
        marketable = best is not None and (
            limit >= best.price if order.side is Side.BUY else limit <= best.price
        )
        if marketable:
            if order.post_only:
                self.cancel(wallet, order, REASON_POST_ONLY)
                return
            takes = self.taker_walk(order, limit=limit)
            if order.timeinforce is TimeInForce.FOK and (
                sum((take.volume for take in takes), Decimal(0)) < self.remaining(order)
            ):
                self.cancel(wallet, order, REASON_IOC)
                return
            self._take(wallet, order, takes)
            if self.remaining(order) <= 0:
                self._close(wallet, order, Status.CLOSED, None, self.clock())
                return
        if order.timeinforce.never_rests:
            self.cancel(wallet, order, REASON_IOC)
        elif order.vol_exec > 0:
            _mark_partial(order)

    def amended(self, wallet: Wallet, order: SimOrder) -> None:
        """An amended order meets the market again: a limit (or a triggered *-limit) that now
        crosses the book trades as taker up to its limit, as a new order would; then what the
        price crosses (a trigger moved through the price) fills as `price_moved` says."""
        live = order.txid in wallet.open and order.status is Status.OPEN
        if live and (order.ordertype is OrderType.LIMIT or order.triggered):
            self._limit_arrives(wallet, order, self.last(order.pair))
        self.price_moved(order.pair)

    @staticmethod
    def _triggered_by(order: SimOrder, last: Decimal) -> bool:
        assert order.price is not None
        rising = last >= order.price
        falling = last <= order.price
        buy = order.side is Side.BUY
        if order.ordertype.is_stop_loss:
            return rising if buy else falling
        return falling if buy else rising

    def _trigger(self, wallet: Wallet, order: SimOrder, last: Decimal) -> None:
        order.triggered = True
        order.misc.append("stopped" if order.ordertype.is_stop_loss else "touched")
        self._notify(wallet, "status", order, self.clock())
        if order.ordertype.has_limit_after_trigger:
            self._limit_arrives(wallet, order, last)
            return
        asset, need = self.market_need(order)
        if wallet.available(asset, excluding=order) < need:
            self.cancel(wallet, order, REASON_FUNDS)
        else:
            self._finish_market(wallet, order)

    # -- the passage of time and prices ------------------------------------------------------

    def _all_open(self, pair: Pair | None = None) -> list[tuple[Wallet, SimOrder]]:
        found = [
            (wallet, order)
            for wallet in self.wallets.values()
            for order in wallet.open.values()
            if pair is None or order.pair is pair
        ]
        return sorted(found, key=lambda item: item[1].seq)

    def tick(self) -> None:
        """Expire orders whose time passed; start scheduled ones. Called before every request."""
        now = self.clock()
        for wallet, order in sorted(self._timed.values(), key=lambda item: item[1].seq):
            if order.txid not in wallet.open:
                continue
            if order.expiretm and now >= order.expiretm:
                self._close(wallet, order, Status.EXPIRED, None, order.expiretm)
            elif order.status is Status.PENDING and now >= max(order.starttm, order.due):
                self._activate(wallet, order)

    def price_moved(self, pair: Pair) -> None:
        """Trigger and fill what the new price crosses, oldest order first."""
        last = self.last(pair)
        self.book(pair).note_spread(self.clock(), last)
        for wallet, order in self._all_open(pair):
            if order.txid not in wallet.open or order.status is not Status.OPEN:
                continue
            if order.ordertype.is_trigger and not order.triggered:
                if self._triggered_by(order, last):
                    self._trigger(wallet, order, last)
                continue
            limit = order.reserve_price
            crossed = last <= limit if order.side is Side.BUY else last >= limit
            if crossed:
                self._execute(wallet, order, limit, maker=True)


def _mark_partial(order: SimOrder) -> None:
    if 0 < order.vol_exec < order.volume and "partial" not in order.misc:
        order.misc.append("partial")
