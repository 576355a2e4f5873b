"""A user's equity and balances as sizing reads them: cached, invalidated by fills."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal

from copytrader.copying.accounts import CopyBroker
from copytrader.kraken.models import AssetBalance


class AccountSnapshots:
    """An account's equity and balances, read when needed and kept `ttl_s`.

    `invalidate()` (after a fill) makes them stale: the next use reads them again, unless
    `refresh_stale()` (called by the user's lane once it has nothing else to do) already did,
    which takes that read off the next copy's critical path.
    """

    def __init__(
        self,
        broker: CopyBroker,
        *,
        equity_asset: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._asset = equity_asset
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # (read at, value); None: never read; read at -inf: stale
        self._equity: tuple[float, Decimal] | None = None
        self._balances: tuple[float, dict[str, AssetBalance]] | None = None

    def invalidate(self, *, equity: bool = True, balances: bool = True) -> None:
        with self._lock:
            if equity and self._equity is not None:
                self._equity = (float("-inf"), self._equity[1])
            if balances and self._balances is not None:
                self._balances = (float("-inf"), self._balances[1])

    def _fresh(self, cached: tuple[float, object] | None) -> bool:
        return cached is not None and self._clock() - cached[0] < self._ttl_s

    def equity(self) -> Decimal:
        with self._lock:
            cached = self._equity
        if cached is not None and self._fresh(cached):
            return cached[1]
        value = self._broker.trade_balance(self._asset).equity
        with self._lock:
            self._equity = (self._clock(), value)
        return value

    def balances(self) -> dict[str, AssetBalance]:
        with self._lock:
            cached = self._balances
        if cached is not None and self._fresh(cached):
            return cached[1]
        value = self._broker.balances_ex()
        with self._lock:
            self._balances = (self._clock(), value)
        return value

    def fresh_equity(self) -> Decimal | None:
        """The equity if it is cached and fresh, without any call (None: use `equity`)."""
        with self._lock:
            cached = self._equity
        return cached[1] if cached is not None and self._fresh(cached) else None

    def fresh_balances(self) -> dict[str, AssetBalance] | None:
        """The balances if cached and fresh, without any call (None: use `balances`)."""
        with self._lock:
            cached = self._balances
        return cached[1] if cached is not None and self._fresh(cached) else None

    def stale(self) -> bool:
        """Whether something sizing has read before was invalidated since."""
        with self._lock:
            return any(
                cached is not None and cached[0] == float("-inf")
                for cached in (self._equity, self._balances)
            )

    def refresh_stale(self) -> None:
        """Read again what was invalidated (only what sizing has used before)."""
        with self._lock:
            equity_stale = self._equity is not None and self._equity[0] == float("-inf")
            balances_stale = self._balances is not None and self._balances[0] == float("-inf")
        if equity_stale:
            self.equity()
        if balances_stale:
            self.balances()
