"""One simulated account: its balances, its orders and trades, its matching-engine counters.

`hold_trade` is never stored: it is recomputed from the open orders each time it is asked for,
so it cannot drift from what the open orders reserve.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal

from kraken_sim.markets import Asset, Pair, find_asset
from kraken_sim.orders import SimOrder, Trade, order_hold
from kraken_sim.ratecounter import TIERS, PairCounter, TierLimits


class Wallet:
    def __init__(self, account_id: str, balances: Mapping[str, Decimal], tier: str) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; expected one of {sorted(TIERS)}")
        self.account_id = account_id
        self.limits: TierLimits = TIERS[tier]
        self.balances: dict[str, Decimal] = {}
        for name, amount in balances.items():
            asset = find_asset(name)
            key = asset.id if asset is not None else name
            self.balances[key] = self.balances.get(key, Decimal(0)) + Decimal(amount)
        self.orders: dict[str, SimOrder] = {}  # every order ever placed, by txid
        self.open: dict[str, SimOrder] = {}  # the open (and pending) ones, in placing order
        self.trades: dict[str, Trade] = {}
        self._counters: dict[str, PairCounter] = {}

    def counter(self, pair: Pair) -> PairCounter:
        if pair.id not in self._counters:
            self._counters[pair.id] = PairCounter(self.limits)
        return self._counters[pair.id]

    def balance(self, asset: Asset) -> Decimal:
        return self.balances.get(asset.id, Decimal(0))

    def credit(self, asset: Asset, amount: Decimal) -> None:
        self.balances[asset.id] = self.balance(asset) + amount

    def holds(self, *, excluding: SimOrder | None = None) -> dict[str, Decimal]:
        held: dict[str, Decimal] = {}
        for order in self.open.values():
            if order is excluding:
                continue
            asset, amount = order_hold(order)
            held[asset.id] = held.get(asset.id, Decimal(0)) + amount
        return held

    def available(self, asset: Asset, *, excluding: SimOrder | None = None) -> Decimal:
        """Balance minus what open orders (except `excluding`) hold of this asset."""
        return self.balance(asset) - self.holds(excluding=excluding).get(asset.id, Decimal(0))

    def open_on(self, pair: Pair) -> Iterator[SimOrder]:
        return (order for order in self.open.values() if order.pair is pair)

    def open_with_cl_ord_id(self, cl_ord_id: str) -> SimOrder | None:
        for order in self.open.values():
            if order.cl_ord_id == cl_ord_id:
                return order
        return None
