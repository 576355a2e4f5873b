"""How big each copy is: pure functions of Decimals, exact to the last decimal.

    size_copy(SizingRequest(...)) -> Sized(volume, notes) | Skipped(reason)

Steps, in this order:
1. the raw size from the sizing mode
   - equity_ratio (default): buys scale by user equity / master equity; sells scale by the
     user's holding of the base asset / the master's holding before the sell, so a master
     selling half its position makes each user sell half of theirs; both times the multiplier;
   - multiplier: master volume x multiplier;
   - fixed_notional: the user's notional / the reference price;
2. caps: `max_order_fraction` (cost <= fraction x user equity), `max_notional` (cost <=
   notional), and for sells the user's available holding;
3. volume rounded DOWN to the pair's `lot_decimals` (never more than the rules allow);
4. minimums: below `ordermin` or `costmin` the copy is skipped, or rounded up to the smallest
   valid size when the user opted in, unless that breaks a cap (then skipped, saying which).

Intermediate values are exact rationals (`fractions.Fraction`), so no 28-digit Decimal context
ever rounds a value across a lot boundary; only the final volume is a Decimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from copytrader.domain import Side, SizingMode

__all__ = [
    "PairRules",
    "Sized",
    "SizingMode",
    "SizingRequest",
    "SizingResult",
    "Skipped",
    "round_price_to_tick",
    "round_volume_down",
    "size_copy",
]


@dataclass(frozen=True)
class PairRules:
    """A pair's order rules from AssetPairs."""

    altname: str
    base: str  # asset id of the base, e.g. XXBT
    lot_decimals: int
    tick_size: Decimal
    ordermin: Decimal
    costmin: Decimal | None = None


@dataclass(frozen=True)
class SizingRequest:
    """Everything one copy's size depends on. Money in Decimal; None = not measured."""

    mode: SizingMode
    side: Side
    master_volume: Decimal
    reference_price: Decimal | None  # the price the copy's cost is estimated at
    rules: PairRules
    multiplier: Decimal = Decimal(1)
    fixed_notional: Decimal | None = None
    master_equity: Decimal | None = None
    user_equity: Decimal | None = None
    master_base_before: Decimal | None = None  # the master's base holding before this sell
    user_base_holding: Decimal | None = None  # the user's base holding (total)
    user_base_available: Decimal | None = None  # the part not held by open orders
    max_order_fraction: Decimal | None = None
    max_notional: Decimal | None = None
    round_up_to_minimum: bool = False


@dataclass(frozen=True)
class Sized:
    """The copy's volume (a multiple of 10^-lot_decimals) and what changed it on the way."""

    volume: Decimal
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """No copy: `reason` says why, in words an operator understands."""

    reason: str


SizingResult = Sized | Skipped


def _exact(value: Decimal) -> Fraction:
    return Fraction(value)


def _to_decimal(value: Fraction, places: int) -> Decimal:
    """An exact Fraction that is a multiple of 10^-places, as a Decimal with `places` digits."""
    scaled = value * 10**places
    if scaled.denominator != 1:
        raise ValueError(f"{value} is not a multiple of 10^-{places}")
    # From text, not scaleb(): construction is exact, while scaleb rounds to the context's 28
    # significant digits (a huge ratio gave a volume with a digit fewer than lot_decimals).
    return Decimal(f"{scaled.numerator}E-{places}")


def floor_to_places(value: Fraction, places: int) -> Fraction:
    """The largest multiple of 10^-places that is <= value."""
    unit = Fraction(1, 10**places)
    return math.floor(value / unit) * unit


def ceil_to_places(value: Fraction, places: int) -> Fraction:
    unit = Fraction(1, 10**places)
    return math.ceil(value / unit) * unit


def round_volume_down(volume: Decimal, lot_decimals: int) -> Decimal:
    """`volume` rounded down to `lot_decimals` places (Kraken rejects more)."""
    return _to_decimal(floor_to_places(_exact(volume), lot_decimals), lot_decimals)


def round_price_to_tick(price: Decimal, tick_size: Decimal, *, side: Side, limit: bool) -> Decimal:
    """`price` on the pair's tick grid.

    A limit price is rounded in the copier's favour, never to a worse price than the master's
    (buys down, sells up); a trigger price to the nearest tick (halves away from zero).
    """
    if tick_size <= 0:
        raise ValueError("tick_size must be positive")
    ticks = _exact(price) / _exact(tick_size)
    if ticks.denominator == 1:
        return price
    if not limit:
        whole = math.floor(ticks + Fraction(1, 2))
    elif side is Side.BUY:
        whole = math.floor(ticks)
    else:
        whole = math.ceil(ticks)
    # whole x tick keeps the tick's exponent: plain digits, never an exponent form like 1E+2
    return Decimal(whole) * tick_size


def _plain(value: Decimal | Fraction) -> str:
    """A number for a message: no exponent, no trailing zeros."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return format(value.normalize(), "f")


def raw_volume(request: SizingRequest) -> Fraction | Skipped:
    """Step 1: the unrounded size the sizing mode asks for."""
    master_volume = _exact(request.master_volume)
    multiplier = _exact(request.multiplier)
    if request.master_volume <= 0:
        return Skipped("master order volume is not positive")
    if request.mode is SizingMode.MULTIPLIER:
        return master_volume * multiplier
    if request.mode is SizingMode.FIXED_NOTIONAL:
        if request.fixed_notional is None or request.fixed_notional <= 0:
            return Skipped("fixed_notional sizing needs a positive fixed_notional for this user")
        if request.reference_price is None or request.reference_price <= 0:
            return Skipped("no reference price to turn the fixed notional into a volume")
        return _exact(request.fixed_notional) / _exact(request.reference_price)
    if request.side is Side.BUY:
        if request.master_equity is None or request.master_equity <= 0:
            return Skipped("master equity is unknown or not positive")
        if request.user_equity is None or request.user_equity <= 0:
            return Skipped("user equity is unknown or not positive")
        ratio = _exact(request.user_equity) / _exact(request.master_equity)
        return master_volume * ratio * multiplier
    base = request.rules.base
    if request.master_base_before is None or request.master_base_before <= 0:
        return Skipped(f"master holding of {base} before the sell is unknown or not positive")
    if request.user_base_holding is None or request.user_base_holding <= 0:
        return Skipped(f"user holds no {base} to sell")
    ratio = _exact(request.user_base_holding) / _exact(request.master_base_before)
    return master_volume * ratio * multiplier


@dataclass(frozen=True)
class _Cap:
    volume: Fraction
    name: str


def _caps(request: SizingRequest) -> list[_Cap] | Skipped:
    """Step 2's upper bounds on the volume, each with its name for the notes."""
    caps: list[_Cap] = []
    price = request.reference_price
    needs_price = request.max_order_fraction is not None or request.max_notional is not None
    if needs_price and (price is None or price <= 0):
        return Skipped("no reference price to apply the user's cost caps")
    if request.max_order_fraction is not None:
        assert price is not None
        if request.user_equity is None or request.user_equity <= 0:
            return Skipped("max_order_fraction is set but the user's equity is unknown")
        budget = _exact(request.max_order_fraction) * _exact(request.user_equity)
        caps.append(
            _Cap(budget / _exact(price), f"max_order_fraction {request.max_order_fraction}")
        )
    if request.max_notional is not None:
        assert price is not None
        caps.append(
            _Cap(
                _exact(request.max_notional) / _exact(price), f"max_notional {request.max_notional}"
            )
        )
    if request.side is Side.SELL and request.user_base_available is not None:
        available = max(_exact(request.user_base_available), Fraction(0))
        caps.append(
            _Cap(available, f"available {request.rules.base} {request.user_base_available}")
        )
    return caps


def _minimum_volume(request: SizingRequest) -> Fraction:
    """The smallest volume on the lot grid that meets ordermin and costmin."""
    rules = request.rules
    smallest = _exact(rules.ordermin)
    if rules.costmin is not None and request.reference_price and request.reference_price > 0:
        smallest = max(smallest, _exact(rules.costmin) / _exact(request.reference_price))
    return ceil_to_places(smallest, rules.lot_decimals)


def _below_minimum(request: SizingRequest, volume: Fraction) -> str | None:
    rules = request.rules
    if volume < _exact(rules.ordermin):
        return (
            f"copy volume {_plain(volume)} is below {rules.altname} ordermin "
            f"{_plain(rules.ordermin)}"
        )
    price = request.reference_price
    if rules.costmin is not None and price is not None and price > 0:
        cost = volume * _exact(price)
        if cost < _exact(rules.costmin):
            return (
                f"copy cost {_plain(cost)} is below {rules.altname} costmin {_plain(rules.costmin)}"
            )
    return None


def size_copy(request: SizingRequest) -> SizingResult:
    """The copy's volume after mode, caps, lot rounding and minimums; or why there is none."""
    raw = raw_volume(request)
    if isinstance(raw, Skipped):
        return raw
    caps = _caps(request)
    if isinstance(caps, Skipped):
        return caps
    notes: list[str] = []
    volume = raw
    for cap in caps:
        if cap.volume < volume:
            volume = cap.volume
            notes.append(f"capped by {cap.name}")
    lot = request.rules.lot_decimals
    rounded = floor_to_places(volume, lot)
    if rounded != volume:
        notes.append(f"rounded down to {lot} decimals")
    below = _below_minimum(request, rounded)
    if below is None:
        return Sized(_to_decimal(rounded, lot), tuple(notes))
    if not request.round_up_to_minimum:
        return Skipped(below)
    minimum = _minimum_volume(request)
    for cap in caps:
        if minimum > cap.volume:
            return Skipped(f"{below}; rounding up to {_plain(minimum)} would break {cap.name}")
    notes.append(f"rounded up to the minimum {_plain(minimum)} ({below})")
    return Sized(_to_decimal(minimum, lot), tuple(notes))
