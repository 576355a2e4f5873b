"""The items of the WebSocket v2 `executions` and `balances` channels, in Kraken's shapes
(kraken-api.md §6): numbers are JSON numbers, timestamps RFC 3339 with microseconds, assets and
symbols in v2 names (`BTC/USD`).

Choices where Kraken's documentation is silent or the simulator simplifies:
- `pending_new`, `new` and the snapshot's open orders carry the whole order (Kraken's `new` is
  minimal); stop and take-profit orders add `stop_price`, `trigger` and a `triggers` object
  (`reference` "last", `price_type` "static", `status` "untriggered"/"triggered");
- a stop or take-profit that triggers is a `status` item (order_status `new`, `triggers.status`
  "triggered"); `restated` is never sent, since the simulator's engine never changes an order on
  its own (no margin, no self-trade prevention);
- `amended` carries the order's new terms (`order_qty`, `limit_price`, `stop_price` and
  `triggers` for a trigger order), `amended: true` and `reason` "User requested", as in Kraken's
  captured frame;
- a `balances` update is one item per ledger entry (a trade makes two), with the `ledger_id`
  REST `Ledgers` shows for the same entry;
- viqc market buys show `cash_order_qty`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kraken_sim.ids import derived_id
from kraken_sim.markets import Asset
from kraken_sim.matching import OrderEvent
from kraken_sim.orders import OrderType, Side, SimOrder, Status, Trade

# v2 names assets as ccxt does: XBT is BTC, XDG is DOGE (DOC-WS v2-vs-v1 table).
_V2_ASSET = {"XBT": "BTC", "XDG": "DOGE"}
REASON_USER = "User requested"


def rfc3339(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def v2_asset(altname: str) -> str:
    return _V2_ASSET.get(altname, altname)


def v2_symbol(order: SimOrder) -> str:
    return f"{v2_asset(order.pair.base.altname)}/{v2_asset(order.pair.quote.altname)}"


def num(value: Decimal) -> float:
    """v2 sends numbers as JSON numbers, not strings."""
    return float(value)


def _limit_price(order: SimOrder) -> Decimal | None:
    if order.ordertype is OrderType.LIMIT:
        return order.price
    if order.ordertype.has_limit_after_trigger:
        return order.price2
    return None


def _fee_usd(order: SimOrder, fee: Decimal, price: Decimal) -> float | None:
    """The fee in USD when the pair is quoted in USD (else unknown here, left out)."""
    if order.pair.quote.altname != "USD":
        return None
    return num(fee * price if order.fee_in_base else fee)


def _ids(order: SimOrder) -> dict[str, Any]:
    item: dict[str, Any] = {"order_id": order.txid, "order_userref": order.userref or 0}
    if order.cl_ord_id is not None:
        item["cl_ord_id"] = order.cl_ord_id
    return item


def _status_head(order: SimOrder, exec_type: str, status: str | None = None) -> dict[str, Any]:
    """The first fields of an item; its order_status is the exec_type unless given."""
    item = _ids(order)
    item.update(
        exec_type=exec_type,
        order_status=status or exec_type,
        symbol=v2_symbol(order),
        side=order.side.value,
    )
    return item


def _add_trigger(item: dict[str, Any], order: SimOrder, when: float | None = None) -> None:
    """A stop or take-profit order's trigger: `stop_price` (deprecated by Kraken, still sent),
    `trigger`, and `triggers` (with the trigger's time once it has fired)."""
    if not order.ordertype.is_trigger or order.price is None:
        return
    triggers: dict[str, Any] = {
        "price": num(order.price),
        "price_type": "static",
        "reference": "last",
        "status": "triggered" if order.triggered else "untriggered",
    }
    if order.triggered and when is not None:
        triggers["timestamp"] = rfc3339(when)
    item["triggers"] = triggers
    item["stop_price"] = num(order.price)
    item["trigger"] = "last"


def _add_limit(item: dict[str, Any], order: SimOrder) -> None:
    limit = _limit_price(order)
    if limit is not None:
        item["limit_price"] = num(limit)
        item["limit_price_type"] = "static"


def order_item(order: SimOrder, exec_type: str, when: float) -> dict[str, Any]:
    """A pending_new / new item (also the snapshot's open orders): the whole order."""
    item = _status_head(order, exec_type)
    item.update(
        order_type=order.ordertype.value,
        time_in_force=order.timeinforce.value,
        cum_qty=num(order.vol_exec),
        cum_cost=num(order.cost),
        fee_usd_equiv=0.0,
        fee_ccy_pref="fcib" if order.fee_in_base else "fciq",
        timestamp=rfc3339(when),
    )
    # viqc: the volume is in quote units, which v2 calls cash_order_qty.
    item["cash_order_qty" if order.viqc else "order_qty"] = num(order.volume)
    _add_limit(item, order)
    _add_trigger(item, order)
    if order.post_only:
        item["post_only"] = True
    return item


def snapshot_status(order: SimOrder) -> str:
    """An open order's order_status in a snapshot."""
    if order.status is not Status.OPEN:
        return "pending_new"
    return "partially_filled" if order.vol_exec > 0 else "new"


def amended_item(order: SimOrder, when: float) -> dict[str, Any]:
    """A user's AmendOrder took effect: the order's new terms (Kraken's captured frame)."""
    item = _ids(order)
    item.update(
        exec_type="amended",
        order_status="partially_filled" if order.vol_exec > 0 else "new",
        cum_qty=num(order.vol_exec),
        reason=REASON_USER,
        amended=True,
        order_qty=num(order.volume),
        timestamp=rfc3339(when),
    )
    _add_limit(item, order)
    _add_trigger(item, order)
    return item


def status_item(order: SimOrder, when: float) -> dict[str, Any]:
    """A stop or take-profit order triggered (exec_type `status`)."""
    item = _status_head(order, "status", "new")
    item.update(order_type=order.ordertype.value, cum_qty=num(order.vol_exec),
                timestamp=rfc3339(when))  # fmt: skip
    _add_limit(item, order)
    _add_trigger(item, order, when)
    return item


def _complete(order: SimOrder) -> bool:
    if order.viqc:  # volume in quote units: complete once the engine has closed it
        return order.status is Status.CLOSED
    return order.vol_exec >= order.volume


def trade_item(order: SimOrder, trade: Trade, when: float) -> dict[str, Any]:
    item = _ids(order)
    fee_asset = order.pair.base if trade.fee_in_base else order.pair.quote
    item.update(
        exec_id=trade.txid,
        exec_type="trade",
        trade_id=trade.trade_id,
        symbol=v2_symbol(order),
        side=order.side.value,
        order_type=order.ordertype.value,
        last_qty=num(trade.vol),
        last_price=num(trade.price),
        liquidity_ind="m" if trade.maker else "t",
        cost=num(trade.cost),
        # The order's totals so far (it is updated before observers hear of the trade). Kraken
        # may say partially_filled even on the trade that completes an order; a `filled` update
        # follows either way.
        order_status="filled" if _complete(order) else "partially_filled",
        cum_qty=num(order.vol_exec),
        cum_cost=num(order.cost),
        avg_price=num(order.avg_price or trade.price),
        fees=[{"asset": v2_asset(fee_asset.altname), "qty": num(trade.fee)}],
        timestamp=rfc3339(when),
    )
    fee_usd = _fee_usd(order, trade.fee, trade.price)
    if fee_usd is not None:
        item["fee_usd_equiv"] = fee_usd
    return item


def closed_item(order: SimOrder, exec_type: str, when: float) -> dict[str, Any]:
    """filled / canceled / expired: the order's totals and, for a cancel, the reason."""
    item = _status_head(order, exec_type)
    item.update(
        cum_qty=num(order.vol_exec),
        cum_cost=num(order.cost),
        avg_price=num(order.avg_price or Decimal(0)),
        fee_usd_equiv=_fee_usd(order, order.fee, order.avg_price or Decimal(0)) or 0.0,
        timestamp=rfc3339(when),
    )
    if exec_type == "canceled" and order.reason is not None:
        # Kraken still sends the deprecated cancel_reason beside reason (KARS frames).
        item["cancel_reason"] = order.reason
        item["reason"] = order.reason
    return item


def event_item(event: OrderEvent) -> dict[str, Any]:
    if event.exec_type in ("pending_new", "new"):
        return order_item(event.order, event.exec_type, event.time)
    if event.exec_type == "trade":
        assert event.trade is not None
        return trade_item(event.order, event.trade, event.time)
    if event.exec_type == "amended":
        return amended_item(event.order, event.time)
    if event.exec_type == "status":
        return status_item(event.order, event.time)
    return closed_item(event.order, event.exec_type, event.time)


# -- balances ---------------------------------------------------------------------------------


def balance_snapshot_item(asset: Asset, balance: Decimal) -> dict[str, Any]:
    """One asset of the `balances` snapshot: the total and its one spot wallet."""
    return {
        "asset": v2_asset(asset.altname),
        "asset_class": "currency",
        "balance": num(balance),
        "wallets": [{"type": "spot", "id": "main", "balance": num(balance)}],
    }


def trade_legs(trade: Trade) -> Iterator[tuple[Asset, Decimal, Decimal]]:
    """(asset, amount, fee) of the two ledger entries a trade makes, base first; the balance
    changes by amount - fee (as REST Ledgers shows them)."""
    pair = trade.pair
    base_sign = 1 if trade.side is Side.BUY else -1
    base_fee = trade.fee if trade.fee_in_base else Decimal(0)
    quote_fee = Decimal(0) if trade.fee_in_base else trade.fee
    yield pair.base, base_sign * trade.vol, base_fee
    yield pair.quote, -base_sign * trade.cost, quote_fee


def balance_update_item(account: str, trade: Trade, asset: Asset, amount: Decimal,
                        fee: Decimal, balance: Decimal) -> dict[str, Any]:  # fmt: skip
    """One ledger entry of a trade, with the asset's balance after it."""
    return {
        "ledger_id": derived_id("L", f"{account}/{trade.txid}/{asset.id}"),
        "ref_id": trade.txid,
        "timestamp": rfc3339(trade.time),
        "type": "trade",
        "asset": v2_asset(asset.altname),
        "asset_class": "currency",
        "category": "trade",
        "wallet_type": "spot",
        "wallet_id": "main",
        "amount": num(amount),
        "fee": num(fee),
        "balance": num(balance),
    }
