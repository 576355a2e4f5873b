"""Enums shared by the broker, the feed and the copier. Money itself is always `Decimal`."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS = "stop-loss"
    TAKE_PROFIT = "take-profit"
    STOP_LOSS_LIMIT = "stop-loss-limit"
    TAKE_PROFIT_LIMIT = "take-profit-limit"


class OrderStatus(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "canceled"  # Kraken's spelling on the wire
    EXPIRED = "expired"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    GTD = "GTD"


class SizingMode(StrEnum):
    """How a copy's size is derived from the master order."""

    EQUITY_RATIO = "equity_ratio"  # master volume x user equity / master equity (x multiplier)
    MULTIPLIER = "multiplier"  # master volume x the user's multiplier
    FIXED_NOTIONAL = "fixed_notional"  # the user's fixed_notional in quote currency, every time


class RateTier(StrEnum):
    """Kraken verification tiers; they set the REST counter's maximum and decay."""

    STARTER = "starter"
    INTERMEDIATE = "intermediate"
    PRO = "pro"
