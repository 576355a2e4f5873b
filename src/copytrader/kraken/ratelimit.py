"""Client-side models of Kraken's rate limits, so the broker waits instead of being refused.

REST call counter (kraken-api.md §3): one counter per API key, +1 per call (+2 for ledgers and
trade history, 0 for AddOrder/CancelOrder, which the matching engine limits instead), decaying by
tier. `RestCounter.reserve(cost)` books a call and says how long to wait before sending it, like a
GCRA: the level may run ahead of "now" by the reservations not yet due.

The counter is shared by every broker of one key in this process (`rate_state_for`). Across
processes it is best effort: two processes on one key each see only their own calls, so they can
still earn `EAPI:Rate limit exceeded`; when that happens the counter is marked full
(`penalize()`), which makes the next calls wait a full decay instead of hammering.

Matching engine: one counter per pair, which we do not model call by call. After
`EOrder:Rate limit exceeded` the pair backs off for 1, 2, 4, ... seconds (capped), and the first
success clears it (`PairBackoff`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from copytrader.domain import RateTier

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RestLimit:
    maximum: float
    decay_per_s: float


REST_LIMITS: dict[RateTier, RestLimit] = {
    RateTier.STARTER: RestLimit(maximum=15, decay_per_s=0.33),
    RateTier.INTERMEDIATE: RestLimit(maximum=20, decay_per_s=0.5),
    RateTier.PRO: RestLimit(maximum=20, decay_per_s=1.0),
}
# We stay this far below the maximum: Kraken's clock and ours never tick together.
HEADROOM = 1.0
# Calls the matching engine limits instead of the REST counter.
_ENGINE_METHODS = frozenset(
    {"AddOrder", "AddOrderBatch", "CancelOrder", "CancelOrderBatch", "EditOrder", "AmendOrder"}
)
# +2 per call (QueryTrades is unconfirmed; counted as 2 to be safe).
_DOUBLE_COST_METHODS = frozenset({"Ledgers", "QueryLedgers", "TradesHistory", "QueryTrades"})

PAIR_BACKOFF_FIRST_S = 1.0
PAIR_BACKOFF_MAX_S = 30.0


def rest_cost(method: str) -> int:
    """What one private call adds to the key's REST counter."""
    if method in _ENGINE_METHODS:
        return 0
    if method in _DOUBLE_COST_METHODS:
        return 2
    return 1


class RestCounter:
    """The decaying REST call counter of one API key, as this process sees it."""

    def __init__(self, limit: RestLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._level = 0.0
        self._updated = clock()

    def _decay_locked(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._level = max(0.0, self._level - elapsed * self.limit.decay_per_s)

    def reserve(self, cost: float) -> float:
        """Book a call of this cost; returns the seconds to wait before sending it."""
        if cost <= 0:
            return 0.0
        with self._lock:
            self._decay_locked()
            self._level += cost
            excess = self._level - (self.limit.maximum - HEADROOM)
        return max(0.0, excess / self.limit.decay_per_s)

    def penalize(self) -> None:
        """Kraken said the counter is full: assume it is (another process may share the key)."""
        with self._lock:
            self._decay_locked()
            self._level = max(self._level, self.limit.maximum)

    @property
    def level(self) -> float:
        with self._lock:
            self._decay_locked()
            return self._level


class PairBackoff:
    """Per-pair waits after `EOrder:Rate limit exceeded`, doubling while they keep coming."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}
        self._step: dict[str, float] = {}

    def wait_s(self, pair: str) -> float:
        """Seconds until this pair may be sent to again (0 if it is not backing off)."""
        with self._lock:
            until = self._until.get(pair)
        return 0.0 if until is None else max(0.0, until - self._clock())

    def penalize(self, pair: str) -> float:
        """Start (or double) this pair's backoff; returns its length in seconds."""
        with self._lock:
            step = min(self._step.get(pair, PAIR_BACKOFF_FIRST_S / 2) * 2, PAIR_BACKOFF_MAX_S)
            self._step[pair] = step
            self._until[pair] = self._clock() + step
        return step

    def clear(self, pair: str) -> None:
        """The pair accepted an order: forget its backoff."""
        with self._lock:
            self._until.pop(pair, None)
            self._step.pop(pair, None)


@dataclass
class KeyRateState:
    """Everything rate-related about one API key, shared by all brokers of that key."""

    tier: RateTier
    rest: RestCounter
    pairs: PairBackoff


_registry_lock = threading.Lock()
_registry: dict[str, KeyRateState] = {}


def rate_state_for(api_key: str, tier: RateTier) -> KeyRateState:
    """The process-wide rate state of this key (created on first use with this tier)."""
    # The registry holds a digest, not the key, so a memory dump of it reveals nothing.
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    with _registry_lock:
        state = _registry.get(digest)
        if state is None:
            state = KeyRateState(
                tier=tier, rest=RestCounter(REST_LIMITS[tier]), pairs=PairBackoff()
            )
            _registry[digest] = state
    if state.tier != tier:
        log.warning(
            "broker.tier_mismatch",
            message=f"two brokers of one key disagree on the tier; keeping {state.tier.value}",
            tier=tier.value,
            kept=state.tier.value,
        )
    return state
