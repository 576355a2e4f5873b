"""Order and trade ids shaped like Kraken's (`OQCLML-BW3P3-BUCMWZ`), reproducible from a seed."""

from __future__ import annotations

import random

# Kraken's ids use upper-case letters and the digits 2-7 (base32's alphabet).
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class IdGenerator:
    """Draws unique 6-5-6 ids from a seeded `random.Random`, so a seed gives the same ids."""

    def __init__(self, seed: int | None) -> None:
        self._random = random.Random(seed)
        self._issued: set[str] = set()

    def _draw(self, prefix: str) -> str:
        while True:
            body = "".join(self._random.choice(_ALPHABET) for _ in range(16))
            raw = prefix + body[:5] + "-" + body[5:10] + "-" + body[10:16]
            if raw not in self._issued:
                self._issued.add(raw)
                return raw

    def order_id(self) -> str:
        return self._draw("O")

    def trade_id(self) -> str:
        return self._draw("T")
