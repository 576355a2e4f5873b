"""Order and trade ids shaped like Kraken's (`OQCLML-BW3P3-BUCMWZ`), reproducible from a seed."""

from __future__ import annotations

import base64
import hashlib
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

    def amend_id(self) -> str:
        """An AmendOrder's `amend_id` (Kraken's example: `TEZA4R-DSDGT-IJBOJK`)."""
        return self._draw("T")


def derived_id(prefix: str, seed: str) -> str:
    """A 6-5-6 id that is a function of `seed` alone (for records the simulator derives rather
    than stores, so reading them draws nothing from the seeded generator)."""
    body = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    raw = prefix + body[:16]
    return f"{raw[:6]}-{raw[6:11]}-{raw[11:17]}"
