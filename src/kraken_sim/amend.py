"""AmendOrder and OrderAmends (in-place amends), and EditOrder (Kraken's legacy cancel + new).

AmendOrder keeps the order: same txid, same `cl_ord_id`, same place in time; it changes the
quantity (`order_qty`), the limit price (`limit_price`: a limit's price, a *-limit's price2)
or the trigger price (`trigger_price`, untriggered stop/take-profit orders only). The reply is
`{"amend_id": ...}`; `misc` gains `amended`; OrderAmends lists the order's original values and
every amend. If the new quantity is at or below what has already filled, the rest of the order
is cancelled, as Kraken documents ("the remaining quantity will be cancelled"): the order keeps
its `vol` and its fills and closes as canceled (reason "Order quantity amended below filled
quantity"); OrderAmends shows the requested quantity with `remaining_qty` 0. With no fills, a
quantity is never at or below them, since it must be positive.

EditOrder cancels the order and places a new one from the old order's terms with the given
changes (`volume`, `price`, `price2`, `oflags` post only, `userref`): a new txid, the old one
cancelled with reason "Order replaced". The reply is Kraken's: status, txid, originaltxid,
volume, price, price2, orders_cancelled, descr, and olduserref/newuserref when userrefs are set.

Choices where Kraken's documentation is silent:
- an amend whose new limit price would take liquidity while `post_only` is asked for (or the
  order is post-only) is refused with `EOrder:Post only order`; otherwise an amend that makes a
  limit marketable fills it at once, as a price move to that limit would;
- relative prices (`+`, `-`, `%`) and `display_qty` are refused (the simulator has no icebergs);
- matching-engine counter: an amend costs +1 plus +3/+2/+1 for an order younger than 5/10/15 s
  (since it was placed or last amended), an edit +1 (its new order) plus +6/+5/+4/+2/+1 under
  5/10/15/45/90 s (kraken-api.md §3); over the threshold the call is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from kraken_sim import params as p
from kraken_sim.addorder import parse_add_order
from kraken_sim.errors import (
    INSUFFICIENT_FUNDS,
    INVALID_ORDER,
    ORDER_MINIMUM,
    ORDER_RATE_LIMIT,
    POST_ONLY_REJECTED,
    TICK_SIZE,
    UNKNOWN_ASSET_PAIR,
    UNKNOWN_ORDER,
    SimError,
    invalid_arguments,
)
from kraken_sim.formatting import fixed, order_text
from kraken_sim.ids import IdGenerator, derived_id
from kraken_sim.markets import Pair, find_pair
from kraken_sim.matching import Exchange
from kraken_sim.orders import OrderType, Side, SimOrder, order_hold, reservation
from kraken_sim.wallet import Wallet

REASON_REPLACED = "Order replaced"
REASON_AMENDED_BELOW_FILLED = "Order quantity amended below filled quantity"

# (younger than N seconds, extra counter cost)
_AMEND_COSTS = ((5.0, 3.0), (10.0, 2.0), (15.0, 1.0))
_EDIT_COSTS = ((5.0, 6.0), (10.0, 5.0), (15.0, 4.0), (45.0, 2.0), (90.0, 1.0))
AMEND_FIXED_COST = 1.0


def _decaying(costs: tuple[tuple[float, float], ...], age: float) -> float:
    for younger_than, cost in costs:
        if age < younger_than:
            return cost
    return 0.0


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclasses.dataclass(frozen=True)
class AmendRecord:
    """One row of OrderAmends: the order's terms after an amend (or at entry)."""

    amend_id: str
    amend_type: str  # original | user
    order_qty: Decimal
    remaining_qty: Decimal
    limit_price: Decimal | None
    trigger_price: Decimal | None
    post_only: bool
    timestamp: float

    def json(self, pair: Pair) -> dict[str, Any]:
        row: dict[str, Any] = {
            "amend_id": self.amend_id,
            "amend_type": self.amend_type,
            "order_qty": fixed(self.order_qty, pair.lot_decimals),
            "remaining_qty": fixed(self.remaining_qty, pair.lot_decimals),
        }
        if self.limit_price is not None:
            row["limit_price"] = fixed(self.limit_price, pair.pair_decimals)
        if self.trigger_price is not None:
            row["trigger_price"] = fixed(self.trigger_price, pair.pair_decimals)
        row["post_only"] = self.post_only
        row["timestamp"] = int(self.timestamp * 1000)
        return row


def _limit_of(order: SimOrder) -> Decimal | None:
    if order.ordertype is OrderType.LIMIT:
        return order.price
    return order.price2 if order.ordertype.has_limit_after_trigger else None


def _trigger_of(order: SimOrder) -> Decimal | None:
    return order.price if order.ordertype.is_trigger else None


def _snapshot(order: SimOrder, amend_id: str, amend_type: str, when: float) -> AmendRecord:
    return AmendRecord(
        amend_id=amend_id,
        amend_type=amend_type,
        order_qty=order.volume,
        remaining_qty=max(Decimal(0), order.volume - order.vol_exec),
        limit_price=_limit_of(order),
        trigger_price=_trigger_of(order),
        post_only=order.post_only,
        timestamp=when,
    )


def _price(params: Mapping[str, Any], name: str, pair: Pair) -> Decimal | None:
    value = p.positive_decimal(params, name)
    if value is None:
        return None
    if value == 0:
        raise SimError(invalid_arguments(name))
    if value % pair.tick_size != 0:
        raise SimError(TICK_SIZE)
    return value


class Amends:
    """AmendOrder, OrderAmends and EditOrder over the engine's exchange."""

    def __init__(
        self,
        *,
        exchange: Exchange,
        ids: IdGenerator,
        clock: Callable[[], float],
        limits_on: Callable[[], bool],
        add_order: Callable[[Wallet, Mapping[str, Any]], dict[str, Any]],
    ) -> None:
        self._exchange = exchange
        self._ids = ids
        self._clock = clock
        self._limits_on = limits_on
        self._add_order = add_order
        self._history: dict[str, list[AmendRecord]] = {}  # by txid, amended orders only

    # -- AmendOrder ------------------------------------------------------------------------

    def _target(self, wallet: Wallet, params: Mapping[str, Any]) -> SimOrder:
        txid = p.text(params, "txid") or None
        cl_ord_id = p.text(params, "cl_ord_id") or None
        if txid is None and cl_ord_id is None:
            raise SimError(invalid_arguments("txid"))
        if txid is not None and cl_ord_id is not None:
            raise SimError(invalid_arguments("cl_ord_id"))
        found = wallet.open.get(txid) if txid else wallet.open_with_cl_ord_id(cl_ord_id or "")
        if found is None:
            raise SimError(UNKNOWN_ORDER)
        return found

    def _last_change(self, order: SimOrder) -> float:
        history = self._history.get(order.txid)
        return history[-1].timestamp if history else order.opentm

    def amend_order(self, wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
        order = self._target(wallet, params)
        pair = order.pair
        if p.text(params, "display_qty"):
            raise SimError(invalid_arguments("display_qty"))
        qty = p.positive_decimal(params, "order_qty")
        if qty is not None and (qty == 0 or _places(qty) > pair.lot_decimals):
            raise SimError(invalid_arguments("order_qty"))
        limit = _price(params, "limit_price", pair)
        trigger = _price(params, "trigger_price", pair)
        post_only = p.boolean(params, "post_only")
        if qty is None and limit is None and trigger is None:
            raise SimError(invalid_arguments("order_qty"))
        if limit is not None and _limit_of(order) is None:
            raise SimError(invalid_arguments("limit_price"))
        if trigger is not None and (not order.ordertype.is_trigger or order.triggered):
            raise SimError(invalid_arguments("trigger_price"))

        now = self._clock()
        if self._limits_on():
            cost = AMEND_FIXED_COST + _decaying(_AMEND_COSTS, now - self._last_change(order))
            counter = wallet.counter(pair)
            if counter.would_exceed(cost, now):
                raise SimError(ORDER_RATE_LIMIT)
            counter.charge(cost, now)

        below_filled = qty is not None and order.vol_exec > 0 and qty <= order.vol_exec
        changed = dataclasses.replace(order, misc=list(order.misc))
        if qty is not None and not below_filled:
            if qty < pair.ordermin:
                raise SimError(ORDER_MINIMUM)
            changed.volume = qty
        if limit is not None:
            if order.ordertype is OrderType.LIMIT:
                changed.price = limit
            else:
                changed.price2 = limit
        if trigger is not None:
            changed.price = trigger
        last = self._exchange.last(pair)
        new_limit = _limit_of(changed)
        if limit is not None and new_limit is not None and (post_only or order.post_only):
            takes = new_limit >= last if order.side is Side.BUY else new_limit <= last
            if takes and (order.ordertype is OrderType.LIMIT or order.triggered):
                raise SimError(POST_ONLY_REJECTED)
        if not below_filled:
            asset, need = order_hold(changed)
            if wallet.available(asset, excluding=order) < need:
                raise SimError(INSUFFICIENT_FUNDS)

        history = self._history.setdefault(order.txid, [])
        if not history:
            history.append(_snapshot(order, derived_id("T", order.txid + "/original"),
                                     "original", order.opentm))  # fmt: skip
        amend_id = self._ids.amend_id()
        if "amended" not in order.misc:
            order.misc.append("amended")
        if below_filled:
            assert qty is not None
            row = _snapshot(order, amend_id, "user", now)
            history.append(dataclasses.replace(row, order_qty=qty, remaining_qty=Decimal(0)))
            self._exchange.cancel(wallet, order, REASON_AMENDED_BELOW_FILLED)
            return {"amend_id": amend_id}
        order.volume, order.price, order.price2 = changed.volume, changed.price, changed.price2
        history.append(_snapshot(order, amend_id, "user", now))
        # The WebSocket's `amended` update, before any fill the new terms cause.
        self._exchange.notify(wallet, "amended", order)
        # A new limit may now cross the book (a taker fill), or a new trigger the price.
        self._exchange.amended(wallet, order)
        return {"amend_id": amend_id}

    def order_amends(self, wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
        txid = p.required_text(params, "txid")
        order = wallet.orders.get(txid)
        if order is None:
            raise SimError(UNKNOWN_ORDER)
        history = self._history.get(txid) or [
            _snapshot(order, derived_id("T", txid + "/original"), "original", order.opentm)
        ]
        return {"count": len(history), "amends": [row.json(order.pair) for row in history]}

    # -- EditOrder ---------------------------------------------------------------------------

    def _edit_target(self, wallet: Wallet, params: Mapping[str, Any]) -> SimOrder:
        if p.text(params, "cl_ord_id"):
            raise SimError(invalid_arguments("cl_ord_id"))
        ref = p.required_text(params, "txid")
        if ref.lstrip("-").isdigit():  # a userref: it must name exactly one open order
            matches = [o for o in wallet.open.values() if o.userref == int(ref)]
            if len(matches) != 1:
                raise SimError(UNKNOWN_ORDER if not matches else invalid_arguments("txid"))
            return matches[0]
        found = wallet.open.get(ref)
        if found is None:
            raise SimError(UNKNOWN_ORDER)
        return found

    def edit_order(self, wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
        order = self._edit_target(wallet, params)
        pair_name = p.required_text(params, "pair")
        pair = find_pair(pair_name)
        if pair is None:
            raise SimError(UNKNOWN_ASSET_PAIR)
        if pair is not order.pair:
            raise SimError(UNKNOWN_ORDER)
        if order.triggered or order.ordertype is OrderType.MARKET:
            raise SimError(INVALID_ORDER)
        if p.text(params, "displayvol"):
            raise SimError(invalid_arguments("displayvol"))
        flags = p.comma_list(params, "oflags")
        if any(flag != "post" for flag in flags):
            raise SimError(invalid_arguments("oflags"))
        new_flags = list(order.oflags)
        if "oflags" in params:  # only `post` can change: given or not, the rest stay
            new_flags = ["post"] * ("post" in flags) + [f for f in order.oflags if f != "post"]
        now = self._clock()
        new_userref = p.int32(params, "userref")
        replacement: dict[str, Any] = {
            "pair": pair.id,
            "type": str(order.side),
            "ordertype": str(order.ordertype),
            "volume": p.text(params, "volume") or f"{order.volume:f}",
            "oflags": ",".join(new_flags),
            "timeinforce": str(order.timeinforce),
        }
        if order.price is not None:
            replacement["price"] = p.text(params, "price") or f"{order.price:f}"
        if order.price2 is not None:
            replacement["price2"] = p.text(params, "price2") or f"{order.price2:f}"
        if order.starttm > now:
            replacement["starttm"] = repr(order.starttm)
        if order.expiretm:
            replacement["expiretm"] = repr(order.expiretm)
        userref = new_userref if new_userref is not None else order.userref
        if userref is not None:
            replacement["userref"] = str(userref)

        draft = parse_add_order(replacement, pair, now, self._exchange.last(pair))
        asset, need = reservation(pair, draft.side, draft.volume, draft.price2 or draft.price
                                  or Decimal(0), "fcib" in draft.oflags)  # fmt: skip
        if wallet.available(asset, excluding=order) < need:
            raise SimError(INSUFFICIENT_FUNDS)
        reply: dict[str, Any] = {"descr": {"order": order_text(dataclasses.replace(
            order, volume=draft.volume, price=draft.price, price2=draft.price2,
            oflags=draft.oflags))}}  # fmt: skip
        if p.boolean(params, "validate"):
            return reply
        if self._limits_on():
            extra = _decaying(_EDIT_COSTS, now - self._last_change(order))
            counter = wallet.counter(pair)
            if counter.would_exceed(extra + AMEND_FIXED_COST, now):
                raise SimError(ORDER_RATE_LIMIT)
            counter.charge(extra, now)  # the new order's AddOrder charges the fixed +1
        self._exchange.cancel(wallet, order, REASON_REPLACED)
        placed = self._add_order(wallet, replacement)
        new_txid: str = placed["txid"][0]
        result: dict[str, Any] = {
            "status": "ok",
            "txid": new_txid,
            "originaltxid": order.txid,
            "volume": fixed(draft.volume, pair.lot_decimals),
            "price": fixed(draft.price or Decimal(0), pair.pair_decimals),
            "price2": fixed(draft.price2 or Decimal(0), pair.pair_decimals),
            "orders_cancelled": 1,
            "descr": placed["descr"],
        }
        if order.userref is not None:
            result["olduserref"] = order.userref
        if userref is not None:
            result["newuserref"] = userref
        return result
