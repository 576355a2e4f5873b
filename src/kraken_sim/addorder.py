"""Reading and checking an AddOrder request against the pair's rules, as Kraken does.

Checks in order, each with Kraken's error string:
deadline (an RFC 3339 time, at most 60 s ahead; malformed or further ->
`EGeneral:Invalid arguments:deadline`, a wording the simulator chose; already passed when the
request reaches the engine -> `EService:Deadline elapsed`, nothing applied),
pair (missing -> `EGeneral:Invalid arguments:pair`, unknown -> `EQuery:Unknown asset pair`),
type, ordertype (iceberg/trailing/settle-position and margin features -> `EOrder:Invalid order`:
the simulator does not offer them), volume (bad, zero, or more places than `lot_decimals` ->
`EGeneral:Invalid arguments:volume`), price/price2 (missing or malformed -> `...:price`/`:price2`,
zero -> `EOrder:Invalid price`, more decimals than `pair_decimals` ->
`EOrder:Invalid price:<pair id> price can only be specified up to <n> decimals.`, otherwise not a
multiple of `tick_size` -> `EOrder:Tick size check failed`),
oflags (post only on limit, viqc only on market buys, fcib xor fciq), timeinforce/starttm/expiretm,
userref (int32), cl_ord_id (Kraken's three formats, exclusive with userref), then
`EOrder:Order minimum not met` (volume < ordermin) and `EOrder:Cost minimum not met`
(volume x price < costmin; for market orders at the current price).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kraken_sim import params as p
from kraken_sim.errors import (
    COST_MINIMUM,
    DEADLINE_ELAPSED,
    INVALID_ORDER,
    INVALID_PRICE,
    ORDER_MINIMUM,
    TICK_SIZE,
    UNKNOWN_ASSET_PAIR,
    SimError,
    invalid_arguments,
    price_precision,
)
from kraken_sim.markets import Pair, find_pair
from kraken_sim.orders import UNSUPPORTED_ORDER_TYPES, OrderType, Side, TimeInForce, floor_lot

KNOWN_FLAGS = ("post", "fcib", "fciq", "nompp", "viqc")
_CL_ORD_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"  # UUID
    r"|^[0-9a-fA-F]{32}$"  # short UUID
    r"|^[\x20-\x7e]{1,18}$"  # free ASCII text, up to 18 characters
)
_NO_LEVERAGE = {"", "none", "0", "1", "1:1"}
# Kraken: "min now() + 2 seconds, max now() + 60 seconds". The lower bound is about when the
# client sends; the engine can only tell whether the deadline has passed when the request arrives.
MAX_DEADLINE_S = 60.0


@dataclass(frozen=True)
class OrderDraft:
    pair: Pair
    side: Side
    ordertype: OrderType
    volume: Decimal
    price: Decimal | None
    price2: Decimal | None
    oflags: tuple[str, ...]
    timeinforce: TimeInForce
    userref: int | None
    cl_ord_id: str | None
    starttm: float
    expiretm: float
    validate: bool


def pair_of(params: Mapping[str, Any]) -> Pair:
    name = p.required_text(params, "pair")
    pair = find_pair(name)
    if pair is None:
        raise SimError(UNKNOWN_ASSET_PAIR)
    return pair


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _price(params: Mapping[str, Any], name: str, pair: Pair) -> Decimal:
    value = p.positive_decimal(params, name)
    if value is None:
        raise SimError(invalid_arguments(name))
    if value == 0:
        raise SimError(INVALID_PRICE)
    if _places(value) > pair.pair_decimals:
        raise SimError(price_precision(pair.id, pair.pair_decimals))
    if value % pair.tick_size != 0:
        raise SimError(TICK_SIZE)
    return value


def _flags(params: Mapping[str, Any], side: Side, ordertype: OrderType) -> tuple[str, ...]:
    given = p.comma_list(params, "oflags")
    if any(flag not in KNOWN_FLAGS for flag in given) or len(set(given)) != len(given):
        raise SimError(invalid_arguments("oflags"))
    if "fcib" in given and "fciq" in given:
        raise SimError(invalid_arguments("oflags"))
    if "post" in given and ordertype is not OrderType.LIMIT:
        raise SimError(invalid_arguments("oflags"))
    if "viqc" in given and not (ordertype is OrderType.MARKET and side is Side.BUY):
        raise SimError(invalid_arguments("viqc"))
    # The fee is taken in the quote currency unless the caller asks for base (fcib).
    fee_flag = () if "fcib" in given or "fciq" in given else ("fciq",)
    return (*given, *fee_flag)


def check_deadline(params: Mapping[str, Any], now: float) -> None:
    """AddOrder's (and the other write methods') `deadline`: refuse the request if it has passed
    by the time it reaches the engine (`now`)."""
    given = p.text(params, "deadline")
    if given is None or given == "":
        return
    try:
        moment = dt.datetime.fromisoformat(given)
    except ValueError:
        raise SimError(invalid_arguments("deadline")) from None
    if moment.tzinfo is None:
        raise SimError(invalid_arguments("deadline"))
    deadline = moment.timestamp()
    if deadline <= now:
        raise SimError(DEADLINE_ELAPSED)
    if deadline > now + MAX_DEADLINE_S:
        raise SimError(invalid_arguments("deadline"))


def _refuse_margin_features(params: Mapping[str, Any]) -> None:
    leverage = p.text(params, "leverage")
    if leverage is not None and leverage.lower() not in _NO_LEVERAGE:
        raise SimError(INVALID_ORDER)
    if p.boolean(params, "reduce_only") or p.boolean(params, "margin"):
        raise SimError(INVALID_ORDER)
    if any(key.startswith("close[") or key == "close" for key in params):
        raise SimError(INVALID_ORDER)
    trigger = p.text(params, "trigger")
    if trigger not in (None, "", "last", "index"):
        raise SimError(invalid_arguments("trigger"))
    if trigger == "index":  # the simulator has no index prices
        raise SimError(invalid_arguments("Index unavailable"))


def parse_add_order(params: Mapping[str, Any], pair: Pair, now: float, last: Decimal) -> OrderDraft:
    """Everything AddOrder checks that depends only on the request, the pair and its price.

    `pair` is `pair_of(params)`: the caller reads it first to charge the pair's counter.
    """
    check_deadline(params, now)
    side_text = p.required_text(params, "type")
    if side_text not in ("buy", "sell"):
        raise SimError(invalid_arguments("type"))
    side = Side(side_text)
    type_text = p.required_text(params, "ordertype")
    if type_text in UNSUPPORTED_ORDER_TYPES:
        raise SimError(INVALID_ORDER)
    if type_text not in {t.value for t in OrderType}:
        raise SimError(invalid_arguments("ordertype"))
    ordertype = OrderType(type_text)
    _refuse_margin_features(params)

    volume = p.positive_decimal(params, "volume")
    if volume is None or volume == 0 or _places(volume) > pair.lot_decimals:
        raise SimError(invalid_arguments("volume"))
    price = None if ordertype is OrderType.MARKET else _price(params, "price", pair)
    price2 = _price(params, "price2", pair) if ordertype.has_limit_after_trigger else None
    oflags = _flags(params, side, ordertype)

    tif_text = (p.text(params, "timeinforce") or "GTC").upper()
    if tif_text not in {t.value for t in TimeInForce}:
        raise SimError(invalid_arguments("timeinforce"))
    timeinforce = TimeInForce(tif_text)
    if timeinforce is TimeInForce.FOK and "post" in oflags:  # a post-only order must rest
        raise SimError(invalid_arguments("timeinforce"))
    starttm = p.time_spec(params, "starttm", now)
    if starttm <= now:
        starttm = 0.0
    elif ordertype is OrderType.MARKET:  # a scheduled market order has no price to reserve at
        raise SimError(invalid_arguments("starttm"))
    expiretm = p.time_spec(params, "expiretm", now)
    if timeinforce is TimeInForce.GTD and not expiretm:
        raise SimError(invalid_arguments("expiretm"))
    if expiretm and (expiretm <= now or expiretm <= starttm or ordertype is OrderType.MARKET):
        raise SimError(invalid_arguments("expiretm"))

    userref = p.int32(params, "userref")
    cl_ord_id = p.text(params, "cl_ord_id") or None
    if cl_ord_id is not None and (userref is not None or not _CL_ORD_ID.match(cl_ord_id)):
        raise SimError(invalid_arguments("cl_ord_id"))

    viqc = "viqc" in oflags
    base_volume = floor_lot(volume / last, pair) if viqc else volume
    if base_volume < pair.ordermin:
        raise SimError(ORDER_MINIMUM)
    notional_price = last if price is None else (price2 if price2 is not None else price)
    cost = volume if viqc else volume * notional_price
    if cost < pair.costmin:
        raise SimError(COST_MINIMUM)

    return OrderDraft(
        pair=pair,
        side=side,
        ordertype=ordertype,
        volume=volume,
        price=price,
        price2=price2,
        oflags=oflags,
        timeinforce=timeinforce,
        userref=userref,
        cl_ord_id=cl_ord_id,
        starttm=starttm,
        expiretm=expiretm,
        validate=p.boolean(params, "validate"),
    )
