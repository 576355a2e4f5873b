"""The simulator's clock: a time source plus an offset that tests can move forward.

Rate-counter decay, lockouts, tokens and the engine's timestamps all read this one clock, so a
test can skip a three-minute lockout with `POST /sim/clock {"advance_s": 180}` (or
`InProcessExchange.advance_clock(180)`) instead of sleeping. The sources are injectable:
`SimClock()` follows the machine's clocks, `SimClock.frozen(start)` stands still until advanced.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# 2023-11-14T22:13:20Z: a round, recent instant for clocks that do not follow the machine.
DEFAULT_FROZEN_START = 1_700_000_000.0


class SimClock:
    """Wall-clock and monotonic time that share one forward-only offset."""

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._offset = 0.0

    @classmethod
    def frozen(cls, start: float = DEFAULT_FROZEN_START) -> SimClock:
        """A clock that only moves when `advance` is called: `time()` starts at `start`."""
        return cls(wall=lambda: start, monotonic=lambda: 0.0)

    def time(self) -> float:
        """Seconds since the epoch, as the exchange sees them."""
        return self._wall() + self._offset

    def monotonic(self) -> float:
        """Seconds for measuring intervals (decay, lockout expiry)."""
        return self._monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward; time never goes back."""
        if seconds < 0:
            raise ValueError("the simulator's clock only moves forward")
        self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset
