"""Where orders meet the market: placing, triggering, filling, expiring and cancelling.

The market is a single price per pair with unlimited depth (the "house" is every fill's
counterparty). Rules, all at the pair's current price `last`:
- a market order fills at once at `last`, as taker;
- a limit order that is marketable on arrival (buy at or above `last`, sell at or below) fills at
  once at `last` as taker, unless it is post-only: then it is cancelled ("Post only order");
- otherwise it rests; when `last` later reaches its limit it fills at its own limit price, as
  maker; an IOC or FOK order never rests (cancelled, reason "Insufficient liquidity"; with
  one price and unlimited depth, a FOK order that can fill at all fills entirely);
- stop-loss triggers when `last` >= trigger (buy) or <= trigger (sell); take-profit the opposite;
  a triggered stop/take-profit fills at `last` as taker (cancelled with "Insufficient funds" if
  the account cannot pay), a triggered *-limit becomes a limit at `price2` as above;
- orders fill completely or not at all; there are no partial fills.
Every asset a fill moves is recorded on the account, the house or the fee ledger, so their sum
per asset never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from kraken_sim.ids import IdGenerator
from kraken_sim.markets import Asset, Pair
from kraken_sim.orders import (
    REASON_FUNDS,
    REASON_IOC,
    REASON_POST_ONLY,
    Fill,
    OrderType,
    Side,
    SimOrder,
    Status,
    Trade,
    compute_fill,
    floor_lot,
)
from kraken_sim.prices import PriceBoard
from kraken_sim.wallet import Wallet


@dataclass(frozen=True)
class OrderEvent:
    """One change of an order, named by Kraken's WebSocket v2 `exec_type`: pending_new, new,
    trade, filled, canceled or expired. Observers are called synchronously while the order is
    in exactly this state, so they must copy what they need before returning."""

    account: str
    exec_type: str
    order: SimOrder
    time: float
    trade: Trade | None = None


OrderObserver = Callable[[OrderEvent], None]


class Exchange:
    def __init__(self, *, ids: IdGenerator, clock: Callable[[], float], prices: PriceBoard):
        self.ids = ids
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

    # -- fills -------------------------------------------------------------------------------

    def fill_for(
        self, order: SimOrder, price: Decimal, *, maker: bool, rate: Decimal | None = None
    ) -> Fill:
        """The fill this order would get at `price` (for viqc, the base volume its quote buys),
        at fee `rate`; without one, at the pair's first tier (the highest: what funds checks
        and holds assume)."""
        pair = order.pair
        volume = floor_lot(order.volume / price, pair) if order.viqc else order.volume
        if rate is None:
            rate = pair.maker_rate if maker else pair.taker_rate
        return compute_fill(pair, order.side, volume, price, order.fee_in_base, rate)

    @staticmethod
    def spent(pair: Pair, fill: Fill) -> tuple[Asset, Decimal]:
        """What a fill takes out of the account: (asset, positive amount)."""
        if fill.base_delta < 0:
            return pair.base, -fill.base_delta
        return pair.quote, -fill.quote_delta

    def _execute(self, wallet: Wallet, order: SimOrder, price: Decimal, *, maker: bool) -> None:
        pair = order.pair
        now = self.clock()
        fill = self.fill_for(
            order, price, maker=maker, rate=self.fee_rate(wallet, order.pair, maker)
        )
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
        self.prices.record_trade(pair, price, fill.vol, now)
        order.vol_exec = order.volume
        order.cost = fill.cost
        order.fee = fill.fee
        order.avg_price = price
        order.trade_ids.append(trade.txid)
        self._notify(wallet, "trade", order, now, trade)
        self._close(wallet, order, Status.CLOSED, None, now)

    @staticmethod
    def _book(ledger: dict[str, Decimal], asset: Asset, amount: Decimal) -> None:
        ledger[asset.id] = ledger.get(asset.id, Decimal(0)) + amount

    def _close(
        self, wallet: Wallet, order: SimOrder, status: Status, reason: str | None, when: float
    ) -> None:
        wallet.open.pop(order.txid, None)
        self._timed.pop(order.txid, None)
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
        """Put a validated order into play (funds were checked by the caller)."""
        wallet.orders[order.txid] = order
        if order.ordertype is not OrderType.MARKET:
            wallet.open[order.txid] = order
        if order.expiretm or order.starttm > self.clock():
            self._timed[order.txid] = (wallet, order)
        # Kraken's order sequence: pending_new (accepted, not live) first, then new when live.
        self._notify(wallet, "pending_new", order, self.clock())
        if order.starttm > self.clock():
            order.status = Status.PENDING
            return
        self._activate(wallet, order)

    def _activate(self, wallet: Wallet, order: SimOrder) -> None:
        order.status = Status.OPEN
        self._notify(wallet, "new", order, self.clock())
        last = self.last(order.pair)
        if order.ordertype is OrderType.MARKET:
            self._execute(wallet, order, last, maker=False)
        elif order.ordertype is OrderType.LIMIT:
            self._limit_arrives(wallet, order, last)
        elif self._triggered_by(order, last):
            self._trigger(wallet, order, last)

    def _limit_arrives(self, wallet: Wallet, order: SimOrder, last: Decimal) -> None:
        """A limit (or a just-triggered *-limit) meets the market for the first time."""
        limit = order.reserve_price
        marketable = limit >= last if order.side is Side.BUY else limit <= last
        if marketable:
            if order.post_only:
                self.cancel(wallet, order, REASON_POST_ONLY)
            else:
                self._execute(wallet, order, last, maker=False)
        elif order.timeinforce.never_rests:
            self.cancel(wallet, order, REASON_IOC)

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
        if order.ordertype.has_limit_after_trigger:
            self._limit_arrives(wallet, order, last)
            return
        asset, need = self.spent(order.pair, self.fill_for(order, last, maker=False))
        if wallet.available(asset, excluding=order) < need:
            self.cancel(wallet, order, REASON_FUNDS)
        else:
            self._execute(wallet, order, last, maker=False)

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
            elif order.status is Status.PENDING and now >= order.starttm:
                self._activate(wallet, order)

    def price_moved(self, pair: Pair) -> None:
        """Trigger and fill what the new price crosses, oldest order first."""
        last = self.last(pair)
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
