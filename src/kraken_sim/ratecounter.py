"""Kraken's matching-engine rate limit: one decaying counter per account and pair.

Thresholds and decay per tier, and the cost of cancelling a young order, are Kraken's published
numbers (reference kraken-api.md §3). The counter is not money, so plain floats are fine here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TierLimits:
    threshold: float
    decay_per_second: float
    open_orders_per_pair: int  # Kraken's open-order limit per pair for the tier


TIERS: dict[str, TierLimits] = {
    "starter": TierLimits(60.0, 1.0, 60),
    "intermediate": TierLimits(125.0, 2.34, 80),
    "pro": TierLimits(180.0, 3.75, 225),
}

ADD_ORDER_COST = 1.0
# (order younger than N seconds, extra cost of cancelling it)
_CANCEL_COSTS = ((5.0, 8.0), (10.0, 6.0), (15.0, 5.0), (45.0, 4.0), (90.0, 2.0), (300.0, 1.0))


def cancel_cost(age_seconds: float) -> float:
    """The counter cost of cancelling an order `age_seconds` after it was placed."""
    for younger_than, cost in _CANCEL_COSTS:
        if age_seconds < younger_than:
            return cost
    return 0.0


class PairCounter:
    """One account's counter on one pair; decays continuously with the injected clock's time."""

    def __init__(self, limits: TierLimits) -> None:
        self._limits = limits
        self._value = 0.0
        self._at: float | None = None

    def value(self, now: float) -> float:
        if self._at is not None:
            elapsed = max(0.0, now - self._at)
            self._value = max(0.0, self._value - elapsed * self._limits.decay_per_second)
        self._at = now
        return self._value

    def would_exceed(self, cost: float, now: float) -> bool:
        return self.value(now) + cost > self._limits.threshold

    def charge(self, cost: float, now: float) -> None:
        self._value = self.value(now) + cost
