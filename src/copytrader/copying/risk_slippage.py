"""The slippage cap: with `max_slippage_bps`, a copy of a master market order goes out as an
IOC limit order at the master's average fill price plus that many basis points for a buy
(minus for a sell), rounded to the pair's tick the safe way (a buy's limit down, a sell's up:
never past the cap). What the book cannot give within the cap is cancelled by Kraken (IOC), is
reported, and is never chased.

While the master's order has no average fill price yet (Kraken still filling it), the price the
copy is sized at (the ticker's ask for a buy, bid for a sell) stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from copytrader.copying.sizing import round_price_to_tick
from copytrader.domain import OrderType, Side, TimeInForce
from copytrader.kraken.models import OrderRequest
from copytrader.ledger import MasterOrderRecord

BPS = Decimal(10_000)


class _Lookup(Protocol):
    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> Any: ...


@dataclass(frozen=True)
class CappedFill:
    filled: Decimal
    avg_price: Decimal | None


def cap_price(base: Decimal, bps: Decimal, side: Side, tick_size: Decimal) -> Decimal:
    """`base` moved `bps` against the user (up for a buy, down for a sell), on the tick grid
    never past that bound."""
    bound = base * (1 + bps / BPS) if side is Side.BUY else base * (1 - bps / BPS)
    return round_price_to_tick(bound, tick_size, side=side, limit=True)


def cap_market_copy(
    master: MasterOrderRecord,
    request: OrderRequest,
    tick_size: Decimal,
    bps: Decimal,
    reference: Decimal | None,
) -> tuple[OrderRequest, str | None]:
    """The market copy as an IOC limit at the cap, and a note; unchanged (with a note) when
    there is no price to cap from."""
    base = master.avg_price if master.avg_price is not None and master.avg_price > 0 else None
    source = "the master's average fill"
    if base is None:
        base, source = reference, "the ticker (the master's fill was not known yet)"
    if base is None or base <= 0:
        return request, "not capped: no price to cap from"
    price = cap_price(base, bps, request.side, tick_size)
    if price <= 0:
        return request, "not capped: the cap is not a positive price"
    capped = OrderRequest(
        pair=request.pair, side=request.side, order_type=OrderType.LIMIT, volume=request.volume,
        price=price, cl_ord_id=request.cl_ord_id, oflags=request.oflags - {"post"},
        timeinforce=TimeInForce.IOC, validate=request.validate,
    )  # fmt: skip
    sign = "+" if request.side is Side.BUY else "-"
    return capped, f"capped: IOC limit {price} = {source} {base} {sign} {bps} bps"


def read_capped_fill(broker: _Lookup, cl_ord_id: str) -> CappedFill | None:
    """What a capped copy filled, from Kraken (None when it cannot be read now)."""
    try:
        order = broker.find_order_by_cl_ord_id(cl_ord_id)
    except Exception:  # noqa: BLE001 - the copy is placed either way; the note says so
        return None
    if order is None:
        return None
    avg = order.avg_price if order.avg_price > 0 else None
    return CappedFill(filled=order.volume_exec, avg_price=avg)
