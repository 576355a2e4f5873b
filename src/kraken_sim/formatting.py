"""Kraken's JSON shapes for orders, trades and balances, with Kraken's number formatting.

Amounts are strings with a fixed number of places: volumes with the pair's `lot_decimals`,
prices in `descr` with `pair_decimals`, order cost/fee with `cost_decimals`, balances with the
asset's `decimals`. Times are JSON numbers (float seconds), as in Kraken's answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kraken_sim.markets import Asset, Pair, find_asset
from kraken_sim.orders import OrderType, SimOrder, Trade


def fixed(amount: Decimal, places: int) -> str:
    """`amount` with exactly `places` decimals, never in exponent notation."""
    return f"{amount:.{places}f}"


def asset_amount(amount: Decimal, asset: Asset | None) -> str:
    amount = amount + 0  # turns a negative zero into zero
    if asset is None:  # an asset outside the catalogue keeps the precision it was given
        return f"{amount:f}"
    exponent = amount.as_tuple().exponent
    places = asset.decimals if not isinstance(exponent, int) else max(asset.decimals, -exponent)
    return fixed(amount, places)


def ledger_json(ledger: Mapping[str, Decimal]) -> dict[str, str]:
    """Amounts by asset id, each written with its asset's decimals."""
    return {asset_id: asset_amount(amount, find_asset(asset_id))
            for asset_id, amount in ledger.items()}  # fmt: skip


def _price(pair: Pair, price: Decimal) -> str:
    return fixed(price, pair.pair_decimals)


def _volume(pair: Pair, volume: Decimal) -> str:
    return fixed(volume, pair.lot_decimals)


def _zero(pair: Pair) -> str:
    return fixed(Decimal(0), pair.cost_decimals)


def _trade_price(pair: Pair, price: Decimal) -> str:
    return fixed(price, max(pair.pair_decimals, pair.cost_decimals))


def _fee(pair: Pair, fee: Decimal, fee_in_base: bool) -> str:
    return fixed(fee, pair.base.decimals if fee_in_base else pair.cost_decimals)


_SPOKEN = {
    OrderType.STOP_LOSS: "stop loss",
    OrderType.STOP_LOSS_LIMIT: "stop loss",
    OrderType.TAKE_PROFIT: "take profit",
    OrderType.TAKE_PROFIT_LIMIT: "take profit",
}


def order_text(order: SimOrder) -> str:
    """descr.order, which ccxt parses: `buy 1.25000000 XBTUSD @ limit 30010.0`."""
    pair = order.pair
    head = f"{order.side} {_volume(pair, order.volume)} {pair.altname} @ "
    if order.ordertype is OrderType.MARKET:
        return head + "market"
    assert order.price is not None
    if order.ordertype is OrderType.LIMIT:
        return head + f"limit {_price(pair, order.price)}"
    text = head + f"{_SPOKEN[order.ordertype]} {_price(pair, order.price)}"
    if order.ordertype.has_limit_after_trigger:
        assert order.price2 is not None
        text += f" -> limit {_price(pair, order.price2)}"
    return text


def descr(order: SimOrder) -> dict[str, str]:
    pair = order.pair
    return {
        "pair": pair.altname,
        "type": str(order.side),
        "ordertype": str(order.ordertype),
        "price": "0" if order.price is None else _price(pair, order.price),
        "price2": "0" if order.price2 is None else _price(pair, order.price2),
        "leverage": "none",
        "order": order_text(order),
        "close": "",
    }


def _time(value: float) -> float | int:
    return 0 if value == 0 else value


def order_json(order: SimOrder, *, with_trades: bool) -> dict[str, Any]:
    """One order as OpenOrders/ClosedOrders/QueryOrders show it."""
    pair = order.pair
    result: dict[str, Any] = {
        "refid": None,
        # Kraken shows userref 0 on orders placed without one, and null beside a cl_ord_id.
        "userref": order.userref if order.userref is not None else (None if order.cl_ord_id else 0),
        "cl_ord_id": order.cl_ord_id,
        "status": str(order.status),
        "opentm": order.opentm,
        "starttm": _time(order.starttm),
        "expiretm": _time(order.expiretm),
        "descr": descr(order),
        "vol": _volume(pair, order.volume),
        "vol_exec": _volume(pair, order.vol_exec),
        "cost": fixed(order.cost, pair.cost_decimals),
        "fee": _fee(pair, order.fee, order.fee_in_base),
        "price": _zero(pair) if order.avg_price is None else _price(pair, order.avg_price),
        "stopprice": _price(pair, order.price)
        if order.ordertype.is_trigger and order.price is not None
        else _zero(pair),
        "limitprice": _price(pair, order.price2) if order.price2 is not None else _zero(pair),
        "misc": ",".join(order.misc),
        "oflags": ",".join(order.oflags),
    }
    if order.ordertype.is_trigger:
        result["trigger"] = "last"
    if with_trades and order.trade_ids:
        result["trades"] = list(order.trade_ids)
    if not order.status.is_open:
        result["closetm"] = order.closetm
        result["reason"] = order.reason
    return result


def trade_json(trade: Trade) -> dict[str, Any]:
    """One trade as TradesHistory shows it; `pair` is the pair id, unlike descr.pair."""
    pair = trade.pair
    return {
        "ordertxid": trade.ordertxid,
        "postxid": trade.postxid,
        "pair": pair.id,
        "time": trade.time,
        "type": str(trade.side),
        "ordertype": str(trade.ordertype),
        "price": _trade_price(pair, trade.price),
        "cost": fixed(trade.cost, pair.cost_decimals),
        "fee": _fee(pair, trade.fee, trade.fee_in_base),
        "vol": _volume(pair, trade.vol),
        "margin": _zero(pair),
        "leverage": "0",
        "misc": "",
        "trade_id": trade.trade_id,
        "maker": trade.maker,
    }
