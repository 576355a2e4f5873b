"""The market's side of every pair: a book of resting liquidity around the pair's price.

Each pair's book has `levels` price levels per side. The best ask sits half the spread above the
pair's price (`last`), rounded up to the tick grid, the best bid half the spread below it, rounded
down; each further level is `step_bps` further out (at least one tick). Level `i` holds
`level_volume * (1 + growth * i)` base units, times a fixed factor between 0.8 and 1.2 drawn per
(pair, side, level) from a generator seeded by the simulator's seed, so a seed always gives the
same book. What takers consume is taken out of the level and comes back linearly over
`refill_seconds` (a fully consumed level is whole again after that long). The levels follow the
pair's price when it moves; what is consumed stays consumed (by level number) until refilled.

The book is the house's liquidity: the accounts' own resting orders are not in it (they are
filled by price moves and by the `trade` control operation, see matching.py).

`market_delay_ms` (default 0) makes market orders asynchronous as on Kraken: AddOrder answers
while the order is pending; it goes live and walks the book that much later (applied lazily,
at the next request or WebSocket heartbeat, like expiries).

Books are off unless configured (`BookSettings.enabled`): then the market is one price with
unlimited depth, every taker fill happens at `last`, and Depth/Spread show one level each side at
`last`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from kraken_sim.markets import Pair

# A level of a disabled (flat) book: shown in Depth with this volume, never runs out.
FLAT_VOLUME = Decimal(1000)
SPREAD_HISTORY = 200  # Spread entries kept per pair


class BookSpecError(ValueError):
    """A `[books]` value that cannot be used; the message names the field."""


@dataclass(frozen=True)
class PairBook:
    """The shape of one pair's book. `level_volume` None: the pair's `ordermin` x 2000."""

    levels: int = 25
    spread_bps: Decimal = Decimal(2)
    step_bps: Decimal = Decimal(1)
    level_volume: Decimal | None = None
    growth: Decimal = Decimal("0.2")
    refill_seconds: float = 10.0

    def volume_of(self, pair: Pair) -> Decimal:
        volume = self.level_volume if self.level_volume is not None else pair.ordermin * 2000
        return volume.quantize(pair.lot_quantum, rounding=ROUND_DOWN)


@dataclass(frozen=True)
class BookSettings:
    """The accounts file's `[books]` section: on/off, defaults, and per-pair overrides."""

    enabled: bool = False
    market_delay_ms: float = 0.0  # how long a market order waits (pending) for the engine
    default: PairBook = field(default_factory=PairBook)
    pairs: Mapping[str, PairBook] = field(default_factory=dict)  # by pair id

    def for_pair(self, pair: Pair) -> PairBook:
        return self.pairs.get(pair.id, self.default)


_SHAPE_FIELDS = ("levels", "spread_bps", "step_bps", "level_volume", "growth", "refill_seconds")


def parse_book_settings(raw: Mapping[str, Any], find_pair_id: Any) -> BookSettings:
    """`[books]` as parsed TOML: `enabled`, the shape fields as defaults, and one sub-table per
    pair (`[books.XBTUSD]`, any name Kraken accepts) overriding them. Present means enabled unless
    `enabled = false`. `find_pair_id(name)` gives the pair id or None."""
    if not isinstance(raw, Mapping):
        raise BookSpecError("must be a table")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BookSpecError("field 'enabled': must be true or false")
    delay = raw.get("market_delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60_000:
        raise BookSpecError("field 'market_delay_ms': milliseconds from 0 to 60000")
    default = _shape(raw, PairBook(), "")
    pairs: dict[str, PairBook] = {}
    for name, value in raw.items():
        if name in ("enabled", "market_delay_ms") or name in _SHAPE_FIELDS:
            continue
        if not isinstance(value, Mapping):
            raise BookSpecError(f"unknown field {name!r} (a pair's table must be [books.{name}])")
        pair_id = find_pair_id(name)
        if pair_id is None:
            raise BookSpecError(f"[books.{name}]: unknown pair")
        unknown = sorted(set(value) - set(_SHAPE_FIELDS))
        if unknown:
            raise BookSpecError(f"[books.{name}]: unknown field(s): {', '.join(unknown)}")
        pairs[pair_id] = _shape(value, default, f"[books.{name}]: ")
    return BookSettings(enabled=enabled, market_delay_ms=float(delay), default=default, pairs=pairs)


def _shape(raw: Mapping[str, Any], base: PairBook, where: str) -> PairBook:
    changes: dict[str, Any] = {}
    if "levels" in raw:
        levels = raw["levels"]
        if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 500:
            raise BookSpecError(f"{where}field 'levels': an integer from 1 to 500")
        changes["levels"] = levels
    for name in ("spread_bps", "step_bps", "growth"):
        if name in raw:
            changes[name] = _decimal(raw[name], f"{where}field '{name}'")
    if "level_volume" in raw:
        changes["level_volume"] = _decimal(raw["level_volume"], f"{where}field 'level_volume'")
        if changes["level_volume"] == 0:
            raise BookSpecError(f"{where}field 'level_volume': must be greater than 0")
    if "refill_seconds" in raw:
        seconds = raw["refill_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise BookSpecError(f"{where}field 'refill_seconds': a number of seconds > 0")
        changes["refill_seconds"] = float(seconds)
    return replace(base, **changes)


def _decimal(value: Any, where: str, *, allow_zero: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BookSpecError(f'{where}: write it as a string, e.g. "1.5"')
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise BookSpecError(f"{where}: not a decimal number") from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
        raise BookSpecError(f"{where}: must be a number {'>=' if allow_zero else '>'} 0")
    return amount


@dataclass(frozen=True)
class Level:
    price: Decimal
    volume: Decimal  # what is there now (after consumption and refill)


@dataclass(frozen=True)
class Take:
    """One piece of a taker's walk: `volume` at one level's `price`."""

    level: int
    price: Decimal
    volume: Decimal


class Book:
    """One pair's house liquidity (module docstring)."""

    def __init__(self, pair: Pair, shape: PairBook, *, enabled: bool, seed: int | None) -> None:
        self.pair = pair
        self.shape = shape
        self.enabled = enabled
        rng = random.Random(f"{seed or 0}:{pair.id}")
        full = shape.volume_of(pair)
        self._full: dict[str, list[Decimal]] = {}
        for side in ("ask", "bid"):
            self._full[side] = [
                max(
                    pair.lot_quantum,
                    (full * (1 + shape.growth * i) * Decimal(rng.randint(80, 120)) / 100).quantize(
                        pair.lot_quantum, rounding=ROUND_DOWN
                    ),
                )
                for i in range(shape.levels)
            ]
        self._consumed: dict[str, list[Decimal]] = {
            side: [Decimal(0)] * shape.levels for side in ("ask", "bid")
        }
        self._refilled_at: float | None = None
        self.spreads: deque[tuple[int, Decimal, Decimal]] = deque(maxlen=SPREAD_HISTORY)

    # -- prices ----------------------------------------------------------------------------------

    def _prices(self, side: str, last: Decimal) -> list[Decimal]:
        if not self.enabled:
            return [last]
        tick = self.pair.tick_size
        half = last * self.shape.spread_bps / 20000
        step = max(tick, (last * self.shape.step_bps / 10000).quantize(tick, ROUND_HALF_UP))
        if side == "ask":
            best = ((last + half) / tick).to_integral_value(ROUND_CEILING) * tick
            if best <= last:
                best = last + tick
            return [best + step * i for i in range(self.shape.levels)]
        best = ((last - half) / tick).to_integral_value(ROUND_FLOOR) * tick
        if best >= last:
            best = last - tick
        found = [best - step * i for i in range(self.shape.levels)]
        return [price for price in found if price > 0] or [tick]

    # -- volumes ---------------------------------------------------------------------------------

    def refill(self, now: float) -> None:
        """Give back what takers consumed, in proportion to the time since the last refill."""
        if self._refilled_at is None or now <= self._refilled_at:
            self._refilled_at = now if self._refilled_at is None else max(self._refilled_at, now)
            return
        fraction = Decimal(str((now - self._refilled_at) / self.shape.refill_seconds))
        self._refilled_at = now
        for side, consumed in self._consumed.items():
            for i, taken in enumerate(consumed):
                if taken:
                    back = (self._full[side][i] * fraction).quantize(
                        self.pair.lot_quantum, rounding=ROUND_DOWN
                    )
                    consumed[i] = max(Decimal(0), taken - back)

    def levels(self, side: str, last: Decimal) -> list[Level]:
        """The side's levels now, best first ("ask" or "bid"); empty levels left out."""
        if not self.enabled:
            return [Level(last, FLAT_VOLUME)]
        found = []
        for i, price in enumerate(self._prices(side, last)):
            volume = self._full[side][i] - self._consumed[side][i]
            if volume > 0:
                found.append(Level(price, volume))
        return found

    def best(self, side: str, last: Decimal) -> Level | None:
        found = self.levels(side, last)
        return found[0] if found else None

    def walk(
        self,
        taker_side: str,
        last: Decimal,
        *,
        volume: Decimal | None = None,
        quote: Decimal | None = None,
        limit: Decimal | None = None,
    ) -> list[Take]:
        """What a taker buying ("buy" lifts asks) or selling would take, best price first, without
        changing the book: up to `volume` base units, or as much as `quote` buys (viqc), at prices
        no worse than `limit`. A disabled book gives one take at `last` (none past `limit`)."""
        side = "ask" if taker_side == "buy" else "bid"
        lot = self.pair.lot_quantum
        if not self.enabled:
            if limit is not None and (last > limit if side == "ask" else last < limit):
                return []
            wanted = volume if volume is not None else _floor(quote or Decimal(0), last, lot)
            return [Take(0, last, wanted)] if wanted > 0 else []
        takes: list[Take] = []
        left_volume = volume
        left_quote = quote
        for i, price in enumerate(self._prices(side, last)):
            if limit is not None and (price > limit if side == "ask" else price < limit):
                break
            there = self._full[side][i] - self._consumed[side][i]
            if there <= 0:
                continue
            if left_volume is not None:
                take = min(there, left_volume)
            else:
                take = min(there, _floor(left_quote or Decimal(0), price, lot))
            if take <= 0:
                break
            takes.append(Take(i, price, take))
            if left_volume is not None:
                left_volume -= take
                if left_volume <= 0:
                    break
            else:
                left_quote = (left_quote or Decimal(0)) - take * price
        return takes

    def consume(self, takes: list[Take], taker_side: str) -> None:
        if not self.enabled:
            return
        side = "ask" if taker_side == "buy" else "bid"
        for take in takes:
            self._consumed[side][take.level] += take.volume

    # -- what the public endpoints show ----------------------------------------------------------

    def note_spread(self, now: float, last: Decimal) -> None:
        """Record the top of the book for Spread when it differs from the last entry."""
        bid = self.best("bid", last)
        ask = self.best("ask", last)
        entry = (
            int(now),
            bid.price if bid else Decimal(0),
            ask.price if ask else Decimal(0),
        )
        if not self.spreads or self.spreads[-1][1:] != entry[1:]:
            self.spreads.append(entry)


def _floor(quote: Decimal, price: Decimal, lot: Decimal) -> Decimal:
    return (quote / price).quantize(lot, rounding=ROUND_DOWN) if quote > 0 else Decimal(0)
