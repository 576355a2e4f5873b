"""The simulator's clock: real time plus an offset that tests can move forward.

Rate-counter decay, lockouts and the engine's timestamps all read this one clock, so a test can
skip a three-minute lockout with `POST /sim/clock {"advance_s": 180}` instead of sleeping.
"""

from __future__ import annotations

import time


class SimClock:
    """Wall-clock and monotonic time that share one forward-only offset."""

    def __init__(self) -> None:
        self._offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch, as the exchange sees them."""
        return time.time() + self._offset

    def monotonic(self) -> float:
        """Seconds for measuring intervals (decay, lockout expiry)."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward; time never goes back."""
        if seconds < 0:
            raise ValueError("the simulator's clock only moves forward")
        self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset
