"""Every error string the simulator can return, worded exactly as Kraken words them.

Tests check that each one is produced by some request; add new strings here, never inline.
"""

from __future__ import annotations


class SimError(Exception):
    """A Kraken error: the simulator answers `{"error": [self.error], "result"?: absent}`."""

    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__(error)


# Authentication and API (server side)
INVALID_KEY = "EAPI:Invalid key"
INVALID_SIGNATURE = "EAPI:Invalid signature"
INVALID_NONCE = "EAPI:Invalid nonce"
RATE_LIMIT = "EAPI:Rate limit exceeded"
BAD_REQUEST = "EAPI:Bad request"
PERMISSION_DENIED = "EGeneral:Permission denied"
TEMPORARY_LOCKOUT = "EGeneral:Temporary lockout"
UNKNOWN_METHOD = "EGeneral:Unknown method"
INTERNAL_ERROR = "EGeneral:Internal error"
SERVICE_UNAVAILABLE = "EService:Unavailable"
SERVICE_BUSY = "EService:Busy"
# The matching engine did not take the request before its `deadline` (AddOrder's parameter, or
# the default one); nothing was applied.
DEADLINE_ELAPSED = "EService:Deadline elapsed"

# Arguments (engine side); Kraken appends the field: "EGeneral:Invalid arguments:volume"
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"

# Queries
UNKNOWN_ASSET_PAIR = "EQuery:Unknown asset pair"
UNKNOWN_ASSET = "EQuery:Unknown asset"

# Orders
INSUFFICIENT_FUNDS = "EOrder:Insufficient funds"
ORDER_MINIMUM = "EOrder:Order minimum not met"
COST_MINIMUM = "EOrder:Cost minimum not met"
TICK_SIZE = "EOrder:Tick size check failed"
INVALID_PRICE = "EOrder:Invalid price"
INVALID_ORDER = "EOrder:Invalid order"
UNKNOWN_ORDER = "EOrder:Unknown order"
ORDER_RATE_LIMIT = "EOrder:Rate limit exceeded"
ORDERS_LIMIT = "EOrder:Orders limit exceeded"
DUPLICATE_CL_ORD_ID = "EOrder:Duplicate cl_ord_id"
# An amend whose new limit price would take liquidity with post_only (wording unconfirmed).
POST_ONLY_REJECTED = "EOrder:Post only order"


def throttled(until: int) -> str:
    """Kraken's answer to too many concurrent requests: `EService: Throttled: <unix time>`, the
    time to come back (worded as Kraken's rate-limit guide writes it, with its spaces)."""
    return f"EService: Throttled: {until}"


def price_precision(pair_id: str, pair_decimals: int) -> str:
    """Kraken's answer to a price with more decimals than the pair allows, e.g.
    `EOrder:Invalid price:XXBTZEUR price can only be specified up to 1 decimals.`"""
    return f"{INVALID_PRICE}:{pair_id} price can only be specified up to {pair_decimals} decimals."


def invalid_arguments(field: str) -> str:
    """Kraken's wording for a bad or missing parameter: `EGeneral:Invalid arguments:<field>`."""
    return f"{INVALID_ARGUMENTS}:{field}"
