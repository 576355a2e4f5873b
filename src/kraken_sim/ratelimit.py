"""Kraken's REST call-rate counter, one per API key, by the account's tier (kraken-api.md §3).

Each call adds its cost (+2 for trade history and ledgers, +1 for others; AddOrder, CancelOrder
and the other order-entry calls cost 0 here because the matching engine's per-pair counter limits
them). The counter decays continuously. A call whose cost takes the counter above the maximum is
rejected with EAPI:Rate limit exceeded.

Rejected calls still add their cost ("restricted for a few seconds, or longer if calls continue"),
but the counter never goes above twice the maximum, so a client that keeps hammering waits at most
`max / decay` seconds (40 s on intermediate) after it stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TierLimit:
    maximum: float
    decay_per_s: float


TIER_LIMITS = {
    "starter": TierLimit(maximum=15, decay_per_s=0.33),
    "intermediate": TierLimit(maximum=20, decay_per_s=0.5),
    "pro": TierLimit(maximum=20, decay_per_s=1.0),
}

_DOUBLE_COST = frozenset({"TradesHistory", "Ledgers", "QueryLedgers"})
# Order entry goes through the matching engine's per-pair limiter instead (the engine's job).
_FREE = frozenset(
    {"AddOrder", "AddOrderBatch", "CancelOrder", "CancelOrderBatch", "EditOrder", "AmendOrder"}
)


def call_cost(method: str) -> int:
    """What one call of this private method adds to the REST counter."""
    if method in _FREE:
        return 0
    if method in _DOUBLE_COST:
        return 2
    return 1


class RestRateCounter:
    """The decaying call counter of one API key."""

    def __init__(self, tier: str, clock: Callable[[], float]) -> None:
        self._limit = TIER_LIMITS[tier]
        self._clock = clock
        self._value = 0.0
        self._updated = clock()

    @property
    def value(self) -> float:
        self._decay()
        return self._value

    def charge(self, method: str) -> bool:
        """Add the call's cost; False means the call must be rejected (rate limit exceeded)."""
        cost = call_cost(method)
        if cost == 0:
            return True
        self._decay()
        self._value = min(self._value + cost, 2 * self._limit.maximum)
        return self._value <= self._limit.maximum

    def _decay(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._value = max(0.0, self._value - elapsed * self._limit.decay_per_s)
