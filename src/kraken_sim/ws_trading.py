"""Trading over the WebSocket v2: `add_order`, `amend_order`, `edit_order`, `cancel_order`,
`cancel_all`, `cancel_all_orders_after`, `batch_add` and `batch_cancel`, in Kraken's
request/response shapes (kraken-api.md §6).

Each request is translated into the REST method's parameters and served by the engine's own
REST handler (AddOrder, AmendOrder, EditOrder, CancelOrder, CancelAll, CancelAllOrdersAfter,
AddOrderBatch, CancelOrderBatch), so the WebSocket shares every order rule, the matching-engine
counter and the dead-man switch with REST; the results are translated back. The changes
themselves arrive on `executions`, as on Kraken.

Translation of an order (add_order, batch_add's `orders[]`): `order_type` → ordertype, `side` →
type, `symbol` → pair, `order_qty` → volume (`cash_order_qty` → volume with viqc), `limit_price`
→ price (price2 for *-limit orders), `triggers.price` → the trigger price, `time_in_force`
(any case) → timeinforce, `post_only` → oflags post, `fee_preference` base/quote → fcib/fciq,
`effective_time`/`expire_time` (RFC 3339) → starttm/expiretm, `order_userref` → userref, and
`cl_ord_id`, `validate`, `deadline` as they are.

Choices where Kraken's documentation is silent or the simulator simplifies:
- the token names the account and carries the issuing key's permissions: each method needs the
  right its REST method needs (`EGeneral:Permission denied` otherwise);
- what the simulator does not have is refused with `EGeneral:Invalid arguments:<field>`:
  `margin` or `reduce_only` true, `display_qty`, `conditional`, `stp_type`, a `limit_price_type`
  or `triggers.price_type` other than "static";
- `cancel_order` answers once per id it was given (each reply with the request's req_id);
- `add_order` with `validate: true` answers `{"order_id": ""}` (nothing is placed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from kraken_sim.auth import METHOD_PERMISSIONS
from kraken_sim.context import SimContext
from kraken_sim.errors import INTERNAL_ERROR, PERMISSION_DENIED, SimError, invalid_arguments

log = structlog.get_logger("kraken_sim.ws")

TRADING_METHODS = frozenset({
    "add_order", "amend_order", "edit_order", "cancel_order", "cancel_all",
    "cancel_all_orders_after", "batch_add", "batch_cancel",
})  # fmt: skip

Outcome = tuple[Any, str | None]  # (result, error): one reply


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unix(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise SimError(invalid_arguments(name))
    try:
        return repr(datetime.fromisoformat(value).timestamp())
    except ValueError:
        raise SimError(invalid_arguments(name)) from None


def _refuse_unsupported(order: dict[str, Any]) -> None:
    for name in ("margin", "reduce_only"):
        if order.get(name) is True:
            raise SimError(invalid_arguments(name))
    for name in ("display_qty", "conditional", "stp_type"):
        if name in order:
            raise SimError(invalid_arguments(name))
    if order.get("limit_price_type", "static") != "static":
        raise SimError(invalid_arguments("limit_price_type"))


def _trigger_price(order: dict[str, Any]) -> Any:
    triggers = order.get("triggers")
    if triggers is None:
        return None
    if not isinstance(triggers, dict) or triggers.get("price_type", "static") != "static":
        raise SimError(invalid_arguments("triggers"))
    return triggers.get("price")


def rest_order(order: dict[str, Any]) -> dict[str, Any]:
    """One v2 order's fields as AddOrder's parameters (without `pair`)."""
    _refuse_unsupported(order)
    kind = _text(order.get("order_type", ""))
    rest: dict[str, Any] = {"ordertype": kind, "type": _text(order.get("side", ""))}
    flags: list[str] = []
    if "cash_order_qty" in order:
        rest["volume"] = _text(order["cash_order_qty"])
        flags.append("viqc")
    elif "order_qty" in order:
        rest["volume"] = _text(order["order_qty"])
    limit, trigger = order.get("limit_price"), _trigger_price(order)
    if kind.endswith("-limit"):
        rest.update(price=trigger, price2=limit)
    elif kind in ("stop-loss", "take-profit"):
        rest["price"] = trigger
    else:
        rest["price"] = limit
    if order.get("post_only") is True:
        flags.append("post")
    preference = order.get("fee_preference")
    if preference is not None:
        if preference not in ("base", "quote"):
            raise SimError(invalid_arguments("fee_preference"))
        flags.append("fcib" if preference == "base" else "fciq")
    if flags:
        rest["oflags"] = ",".join(flags)
    if "time_in_force" in order:
        rest["timeinforce"] = _text(order["time_in_force"]).upper()
    if "effective_time" in order:
        rest["starttm"] = _unix(order["effective_time"], "effective_time")
    if "expire_time" in order:
        rest["expiretm"] = _unix(order["expire_time"], "expire_time")
    for v2_name, rest_name in (("order_userref", "userref"), ("cl_ord_id", "cl_ord_id"),
                               ("validate", "validate"), ("deadline", "deadline")):  # fmt: skip
        if v2_name in order:
            rest[rest_name] = order[v2_name]
    return {name: value for name, value in rest.items() if value is not None}


def _ids_of(order: dict[str, Any], txid: str) -> dict[str, Any]:
    result: dict[str, Any] = {"order_id": txid}
    for name in ("cl_ord_id", "order_userref"):
        if name in order:
            result[name] = order[name]
    return result


class WsTrading:
    """The trading methods of one request, served through the engine's REST handlers."""

    def __init__(self, context: SimContext, account: str, permissions: frozenset[str]) -> None:
        self._context = context
        self._account = account
        self._permissions = permissions

    def _rest(self, method: str, params: dict[str, Any]) -> Any:
        needed = METHOD_PERMISSIONS[method]
        if needed and not needed & self._permissions:
            raise SimError(PERMISSION_DENIED)
        return self._context.engine.private(self._account, method, params)

    def serve(self, method: str, params: dict[str, Any]) -> list[Outcome]:
        handlers: dict[str, Callable[[dict[str, Any]], list[Outcome]]] = {
            "add_order": self._add_order,
            "amend_order": self._amend_order,
            "edit_order": self._edit_order,
            "cancel_order": self._cancel_order,
            "cancel_all": lambda _: [(self._rest("CancelAll", {}), None)],
            "cancel_all_orders_after": self._cancel_after,
            "batch_add": self._batch_add,
            "batch_cancel": self._batch_cancel,
        }
        try:
            return handlers[method](params)
        except SimError as exc:
            return [(None, exc.error)]
        except Exception:  # as REST answers a handler's bug: an error reply, never a traceback
            log.exception("sim.ws_handler_crashed", method=method)
            return [(None, INTERNAL_ERROR)]

    def _add_order(self, params: dict[str, Any]) -> list[Outcome]:
        rest = rest_order(params)
        rest["pair"] = _text(params.get("symbol", ""))
        placed = self._rest("AddOrder", rest)
        txid = placed.get("txid", [""])[0]
        return [(_ids_of(params, txid), None)]

    def _amend_order(self, params: dict[str, Any]) -> list[Outcome]:
        rest: dict[str, Any] = {}
        for v2_name, rest_name in (("order_id", "txid"), ("cl_ord_id", "cl_ord_id"),
                                   ("order_qty", "order_qty"), ("limit_price", "limit_price"),
                                   ("trigger_price", "trigger_price"), ("post_only", "post_only"),
                                   ("display_qty", "display_qty"),
                                   ("deadline", "deadline")):  # fmt: skip
            if v2_name in params:
                rest[rest_name] = params[v2_name]
        result: dict[str, Any] = {"amend_id": self._rest("AmendOrder", rest)["amend_id"]}
        for name in ("order_id", "cl_ord_id"):
            if name in params:
                result[name] = params[name]
        return [(result, None)]

    def _edit_order(self, params: dict[str, Any]) -> list[Outcome]:
        rest: dict[str, Any] = {"txid": params.get("order_id"), "pair": params.get("symbol")}
        for v2_name, rest_name in (("order_qty", "volume"), ("limit_price", "price"),
                                   ("order_userref", "userref"),
                                   ("validate", "validate"), ("deadline", "deadline")):  # fmt: skip
            if v2_name in params:
                rest[rest_name] = params[v2_name]
        trigger = _trigger_price(params)
        if trigger is not None:  # a trigger order's limit moves to price2
            rest.update(price=trigger, price2=params.get("limit_price"))
        if "post_only" in params:
            rest["oflags"] = "post" if params["post_only"] is True else ""
        edited = self._rest("EditOrder", {k: v for k, v in rest.items() if v is not None})
        if "txid" not in edited:  # validate only
            return [({"order_id": "", "original_order_id": params.get("order_id")}, None)]
        return [({"order_id": edited["txid"], "original_order_id": edited["originaltxid"]},
                 None)]  # fmt: skip

    def _cancel_order(self, params: dict[str, Any]) -> list[Outcome]:
        asked: list[tuple[str, str, Any]] = []
        for v2_name, rest_name in (("order_id", "txid"), ("cl_ord_id", "cl_ord_id"),
                                   ("order_userref", "txid")):  # fmt: skip
            values = params.get(v2_name, [])
            if not isinstance(values, list):
                raise SimError(invalid_arguments(v2_name))
            asked.extend((v2_name, rest_name, value) for value in values)
        if not asked:
            raise SimError(invalid_arguments("order_id"))
        outcomes: list[Outcome] = []
        for v2_name, rest_name, value in asked:
            try:
                self._rest("CancelOrder", {rest_name: _text(value)})
                outcomes.append(({v2_name: value}, None))
            except SimError as exc:
                outcomes.append((None, exc.error))
        return outcomes

    def _cancel_after(self, params: dict[str, Any]) -> list[Outcome]:
        return [(self._rest("CancelAllOrdersAfter", {"timeout": params.get("timeout")}), None)]

    def _batch_add(self, params: dict[str, Any]) -> list[Outcome]:
        orders = params.get("orders")
        if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
            raise SimError(invalid_arguments("orders"))
        rest: dict[str, Any] = {"pair": _text(params.get("symbol", "")),
                                "orders": [rest_order(order) for order in orders]}  # fmt: skip
        for name in ("validate", "deadline"):
            if name in params:
                rest[name] = params[name]
        placed = self._rest("AddOrderBatch", rest)["orders"]
        result = []
        for order, entry in zip(orders, placed, strict=True):
            result.append(_ids_of(order, entry["txid"]) if "txid" in entry else entry)
        return [(result, None)]

    def _batch_cancel(self, params: dict[str, Any]) -> list[Outcome]:
        rest = {"orders": params.get("orders", []), "cl_ord_ids": params.get("cl_ord_id", [])}
        return [(self._rest("CancelOrderBatch", rest), None)]
