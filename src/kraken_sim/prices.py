"""Current prices per pair, the tape of trades, and what Ticker, Trades and OHLC report.

Each pair has a reference price (`last`), which `/sim/price` moves and the pair's book
(books.py) is centred on. Every fill is printed on the tape with its side, its kind (market or
limit, as Kraken's Trades shows it) and a per-pair trade number; price moves are printed with no
volume, so OHLC candles follow them too. History older than 24 hours is dropped.
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
    side: str = ""  # the taker's side of a trade: "b" or "s"
    kind: str = ""  # "m" market or "l" limit (the taker's order type)
    number: int = 0  # the pair's trade number (Trades' trade_id)
    stamp: int = 0  # nanoseconds, strictly increasing per pair: Trades' `since`/`last` cursor


class PriceBoard:
    def __init__(self, now: float) -> None:
        self.last: dict[str, Decimal] = {}
        self._prints: dict[str, deque[_Print]] = {}
        self._numbers: dict[str, int] = {}
        self._stamps: dict[str, int] = {}
        for pair in PAIRS.values():
            self.last[pair.id] = pair.default_price
            self._prints[pair.id] = deque([_Print(now, pair.default_price, Decimal(0))])

    def set(self, pair: Pair, price: Decimal, now: float) -> None:
        self.last[pair.id] = price
        self._record(pair, _Print(now, price, Decimal(0)))

    def record_trade(
        self,
        pair: Pair,
        price: Decimal,
        volume: Decimal,
        now: float,
        *,
        side: str = "buy",
        market: bool = True,
    ) -> None:
        """Print a trade; `side` is the taker's ("buy"/"sell"), `market` its order kind."""
        number = self._numbers.get(pair.id, 0) + 1
        self._numbers[pair.id] = number
        stamp = max(round(now * 1_000_000_000), self._stamps.get(pair.id, 0) + 1)
        self._stamps[pair.id] = stamp
        entry = _Print(now, price, volume, side[0], "m" if market else "l", number, stamp)
        self._record(pair, entry)

    def _record(self, pair: Pair, entry: _Print) -> None:
        prints = self._prints[pair.id]
        prints.append(entry)
        # Keep one print older than 24 h: it is the price the window starts from.
        while len(prints) > 1 and prints[1].time <= entry.time - DAY_SECONDS:
            prints.popleft()

    def ticker(
        self,
        pair: Pair,
        now: float,
        ask: tuple[Decimal, Decimal] | None = None,
        bid: tuple[Decimal, Decimal] | None = None,
    ) -> dict[str, Any]:
        """Kraken's Ticker entry; `ask`/`bid` are the book's best (price, volume)."""
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

        def top(level: tuple[Decimal, Decimal] | None) -> list[str]:
            if level is None:
                return [price(last), "1", "1.000"]
            whole = int(level[1]) if level[1] >= 1 else 1
            return [price(level[0]), str(whole), f"{level[1]:.3f}"]

        return {
            "a": top(ask),
            "b": top(bid),
            "c": [price(last), volume(last_volume)],
            "v": [vol_t, vol_d],
            "p": [vwap_t, vwap_d],
            "t": [count_t, count_d],
            "l": [low_t, low_d],
            "h": [high_t, high_d],
            "o": price(opening),
        }

    def trades(self, pair: Pair, since_ns: int, count: int) -> tuple[list[list[Any]], str]:
        """Kraken's Trades rows after `since_ns` (oldest first, at most `count`) and `last`."""
        places = max(pair.pair_decimals, pair.cost_decimals)
        rows: list[list[Any]] = []
        last_ns = since_ns
        for entry in self._prints[pair.id]:
            if entry.volume <= 0 or entry.stamp <= since_ns:
                continue
            rows.append(
                [
                    f"{entry.price:.{places}f}",
                    f"{entry.volume:.{pair.lot_decimals}f}",
                    entry.time,
                    entry.side,
                    entry.kind,
                    "",
                    entry.number,
                ]
            )
            last_ns = entry.stamp
            if len(rows) >= count:
                break
        return rows, str(last_ns)

    def ohlc(
        self, pair: Pair, interval_min: int, since: int, now: float
    ) -> tuple[list[list[Any]], int]:
        """Kraken's OHLC rows (time, open, high, low, close, vwap, volume, count) for candles of
        `interval_min` minutes from the first print (or `since`) up to the current candle, at
        most 720, and `last`: the start of the newest committed (closed) candle."""
        places = max(pair.pair_decimals, pair.cost_decimals)
        width = interval_min * 60
        prints = list(self._prints[pair.id])
        current = int(now // width) * width
        first = int(prints[0].time // width) * width
        start = max(first, current - 719 * width, (since // width) * width if since else 0)
        price = _price_before(prints, start - 1e-9) or prints[0].price
        rows: list[list[Any]] = []
        index = 0
        while index < len(prints) and prints[index].time < start:
            index += 1
        for bucket in range(start, current + width, width):
            inside: list[_Print] = []
            while index < len(prints) and prints[index].time < bucket + width:
                inside.append(prints[index])
                index += 1
            seen = [price, *(p.price for p in inside)]
            traded = [p for p in inside if p.volume > 0]
            total = sum((p.volume for p in traded), Decimal(0))
            vwap = sum((p.price * p.volume for p in traded), Decimal(0)) / total if total else None
            close = inside[-1].price if inside else price
            opening = inside[0].price if inside else price
            rows.append(
                [
                    bucket,
                    f"{opening:.{places}f}",
                    f"{max(seen[1:] or seen):.{places}f}",
                    f"{min(seen[1:] or seen):.{places}f}",
                    f"{close:.{places}f}",
                    f"{(vwap if vwap is not None else close):.{places}f}",
                    f"{total:.{pair.lot_decimals}f}",
                    len(traded),
                ]
            )
            price = close
        if since:
            rows = [row for row in rows if row[0] > since]
        return rows, current - width


def _price_before(prints: Iterable[_Print], moment: float) -> Decimal | None:
    found: Decimal | None = None
    for entry in prints:
        if entry.time <= moment:
            found = entry.price
    return found
