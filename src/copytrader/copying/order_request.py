"""The copy's AddOrder, built from the master order: the same type, side, time-in-force, expiry
and flags, prices on the user's tick grid."""

from __future__ import annotations

from decimal import Decimal

from copytrader.copying.sizing import PairRules, round_price_to_tick
from copytrader.domain import OrderType, TimeInForce
from copytrader.kraken.models import OrderRequest, PairInfo
from copytrader.ledger import MasterOrderRecord

KEPT_OFLAGS = frozenset({"post", "fcib", "fciq", "nompp"})


def pair_rules(info: PairInfo) -> PairRules:
    return PairRules(
        altname=info.altname,
        base=info.base,
        lot_decimals=info.lot_decimals,
        tick_size=info.tick_size,
        ordermin=info.ordermin,
        costmin=info.costmin if info.costmin > 0 else None,
    )


def limit_price_of(master: MasterOrderRecord) -> Decimal | None:
    """The price an order's cost is estimated at, when the order itself fixes one."""
    if master.order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
        return master.price2
    if master.order_type is OrderType.MARKET:
        return master.avg_price
    return master.price  # limit price, or the trigger of a stop-loss / take-profit


def copy_prices(master: MasterOrderRecord, tick: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """`price`/`price2` for the copy: the master's, on the tick grid (limits never worse)."""
    side = master.side
    order_type = master.order_type
    price = master.price
    price2 = master.price2
    if order_type is OrderType.MARKET:
        return None, None
    if order_type is OrderType.LIMIT:
        assert price is not None
        return round_price_to_tick(price, tick, side=side, limit=True), None
    assert price is not None
    trigger = round_price_to_tick(price, tick, side=side, limit=False)
    if order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
        assert price2 is not None
        return trigger, round_price_to_tick(price2, tick, side=side, limit=True)
    return trigger, None


def build_request(
    master: MasterOrderRecord,
    cl_ord_id: str,
    volume: Decimal,
    price: Decimal | None,
    price2: Decimal | None,
    *,
    validate: bool,
) -> OrderRequest:
    """The copy's AddOrder: the master's type, side, time-in-force, expiry and flags."""
    if master.order_type is None:
        raise ValueError(f"master order {master.txid} has a type that is not copied")
    oflags = frozenset(master.oflags & KEPT_OFLAGS)
    if master.order_type is not OrderType.LIMIT:
        oflags -= {"post"}  # post-only exists for limit orders only
    gtd = master.timeinforce is TimeInForce.GTD and master.expiretm
    return OrderRequest(
        pair=master.pair,
        side=master.side,
        order_type=master.order_type,
        volume=volume,
        price=price,
        price2=price2,
        cl_ord_id=cl_ord_id,
        oflags=oflags,
        timeinforce=master.timeinforce,
        expiretm=int(master.expiretm) if gtd and master.expiretm else None,
        validate=validate,
    )
