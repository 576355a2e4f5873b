"""Per-key nonce high-water mark with Kraken's optional nonce window, and replay protection.

Semantics (Kraken leaves equal nonces inside the window unspecified; this is our choice):
- window 0: a nonce is accepted only if it is greater than the highest accepted so far.
- window W > 0: a nonce greater than the high-water mark H is accepted; a nonce n with
  H - W <= n <= H is accepted only if it was never accepted before (a set of the nonces used
  inside the window is kept). So requests that arrive out of order pass, while an exact replay of
  a request (same nonce) is rejected and cannot place an order twice. Anything lower is rejected.
"""

from __future__ import annotations

import heapq

UINT64_MAX = 2**64 - 1


class NonceGuard:
    """The nonce state of one API key."""

    def __init__(self, window: int = 0, high_water: int = 0) -> None:
        self.window = window
        self._high_water = high_water
        self._used: set[int] = set()
        self._used_heap: list[int] = []

    @property
    def high_water(self) -> int:
        return self._high_water

    def accepts(self, nonce: int) -> bool:
        """Whether this nonce would be accepted now (does not consume it)."""
        if nonce > self._high_water:
            return True
        if self.window == 0:
            return False
        return nonce >= self._high_water - self.window and nonce not in self._used

    def consume(self, nonce: int) -> bool:
        """Accept and record the nonce if allowed; False (and no change) otherwise."""
        if not self.accepts(nonce):
            return False
        self._high_water = max(self._high_water, nonce)
        if self.window:
            self._used.add(nonce)
            heapq.heappush(self._used_heap, nonce)
            self._forget_below(self._high_water - self.window)
        return True

    def reset(self, high_water: int) -> None:
        """Set the high-water mark (a test control); the mark itself counts as used."""
        self._high_water = high_water
        self._used.clear()
        self._used_heap.clear()
        if self.window:
            self._used.add(high_water)
            heapq.heappush(self._used_heap, high_water)

    def _forget_below(self, floor: int) -> None:
        # Nonces below the window's floor are rejected by the range check already.
        while self._used_heap and self._used_heap[0] < floor:
            self._used.discard(heapq.heappop(self._used_heap))


def parse_nonce(value: object) -> tuple[int, str] | None:
    """The nonce as an int plus the exact text the client signed, or None if it is not one.

    Form bodies give text; JSON bodies give a string or an integer. Anything else (floats,
    negatives, signs, spaces, values above uint64) is not a nonce.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        return None
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    if number > UINT64_MAX:
        return None
    return number, text
