"""Current prices per pair, and the day's statistics that Kraken's Ticker reports.

The simulator has one price per pair (`last`); the ticker's ask and bid are that price too, and
every taker fill happens at it (see engine docs). History older than 24 hours is dropped.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kraken_sim.markets import PAIRS, Pair

DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class _Print:
    time: float
    price: Decimal
    volume: Decimal  # 0 for a price move without a trade


class PriceBoard:
    def __init__(self, now: float) -> None:
        self.last: dict[str, Decimal] = {}
        self._prints: dict[str, deque[_Print]] = {}
        for pair in PAIRS.values():
            self.last[pair.id] = pair.default_price
            self._prints[pair.id] = deque([_Print(now, pair.default_price, Decimal(0))])

    def set(self, pair: Pair, price: Decimal, now: float) -> None:
        self.last[pair.id] = price
        self._record(pair, _Print(now, price, Decimal(0)))

    def record_trade(self, pair: Pair, price: Decimal, volume: Decimal, now: float) -> None:
        self._record(pair, _Print(now, price, volume))

    def _record(self, pair: Pair, entry: _Print) -> None:
        prints = self._prints[pair.id]
        prints.append(entry)
        # Keep one print older than 24 h: it is the price the window starts from.
        while len(prints) > 1 and prints[1].time <= entry.time - DAY_SECONDS:
            prints.popleft()

    def ticker(self, pair: Pair, now: float) -> dict[str, Any]:
        places = max(pair.pair_decimals, pair.cost_decimals)
        last = self.last[pair.id]
        midnight = dt.datetime.fromtimestamp(now, dt.UTC).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        today_start = midnight.timestamp()
        prints = list(self._prints[pair.id])
        today = [p for p in prints if p.time >= today_start]
        day = [p for p in prints if p.time > now - DAY_SECONDS]
        before_today = [p for p in prints if p.time < today_start]
        opening = before_today[-1].price if before_today else (today or prints)[0].price
        trades = [p for p in prints if p.volume > 0]
        last_volume = trades[-1].volume if trades else Decimal(0)

        def price(value: Decimal) -> str:
            return f"{value:.{places}f}"

        def volume(value: Decimal) -> str:
            return f"{value:.{pair.lot_decimals}f}"

        def window(entries: list[_Print], start_price: Decimal) -> tuple[str, str, str, int, str]:
            seen = [start_price, last, *(p.price for p in entries)]
            traded = [p for p in entries if p.volume > 0]
            total = sum((p.volume for p in traded), Decimal(0))
            vwap = sum((p.price * p.volume for p in traded), Decimal(0)) / total if total else last
            return (
                price(min(seen)),
                price(max(seen)),
                volume(total),
                len(traded),
                price(vwap),
            )

        day_start = _price_before(prints, now - DAY_SECONDS) or prints[0].price
        low_t, high_t, vol_t, count_t, vwap_t = window(today, opening)
        low_d, high_d, vol_d, count_d, vwap_d = window(day, day_start)
        return {
            "a": [price(last), "1", "1.000"],
            "b": [price(last), "1", "1.000"],
            "c": [price(last), volume(last_volume)],
            "v": [vol_t, vol_d],
            "p": [vwap_t, vwap_d],
            "t": [count_t, count_d],
            "l": [low_t, low_d],
            "h": [high_t, high_d],
            "o": price(opening),
        }


def _price_before(prints: Iterable[_Print], moment: float) -> Decimal | None:
    found: Decimal | None = None
    for entry in prints:
        if entry.time <= moment:
            found = entry.price
    return found
