"""AddOrderBatch and CancelOrderBatch (JSON bodies, as every client sends them).

AddOrderBatch: `{"pair", "orders": [2..15 AddOrder parameter objects], "validate"?,
"deadline"?}`. Every order is checked first (parameters, pair rules, prices); one failure
rejects the whole batch with that order's error. Then the orders are placed in request order,
and an order that fails a check against the account (funds, duplicate cl_ord_id, open-order
limit) gets its own `error` while the others are placed. Reply
`{"orders": [{"txid", "descr": {"order"}} | {"error"}, ...]}` in request order; with
`validate`, only `descr`. The matching-engine counter is charged n/2 on receipt (Kraken's
"Batch Add +n/2"), instead of +1 per order.

CancelOrderBatch: `{"orders": [...], "cl_ord_ids": [...]}`, at most 50 ids in all. An order
entry is a txid, a userref (every open order with it), or an object `{"txid": ...}` /
`{"cl_ord_id": ...}` (Kraken's schema shows objects, its example and ccxt bare strings).
Ids that match no open order are skipped; the reply is `{"count": <orders cancelled>}`. The
counter is charged for every cancelled order and the batch is accepted even when that goes
over the threshold, as Kraken documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kraken_sim import params as p
from kraken_sim.addorder import pair_of, parse_add_order
from kraken_sim.errors import ORDER_RATE_LIMIT, SimError, invalid_arguments
from kraken_sim.matching import Exchange
from kraken_sim.orders import REASON_USER, SimOrder
from kraken_sim.wallet import Wallet

MIN_BATCH, MAX_BATCH = 2, 15
MAX_CANCEL_IDS = 50
_USERREF = re.compile(r"^-?\d+$")

AddOrder = Callable[[Wallet, Mapping[str, Any]], dict[str, Any]]
ChargeCancels = Callable[[Wallet, list[SimOrder]], None]


def add_order_batch(
    exchange: Exchange,
    wallet: Wallet,
    params: Mapping[str, Any],
    *,
    now: float,
    limits_on: bool,
    add_order: AddOrder,
) -> dict[str, Any]:
    """`add_order(wallet, params)` places one order without charging the counter."""
    orders = params.get("orders")
    if not isinstance(orders, list) or not MIN_BATCH <= len(orders) <= MAX_BATCH:
        raise SimError(invalid_arguments("orders"))
    if not all(isinstance(entry, dict) for entry in orders):
        raise SimError(invalid_arguments("orders"))
    pair = pair_of(params)
    if limits_on and not p.boolean(params, "validate"):
        cost = len(orders) / 2
        counter = wallet.counter(pair)
        if counter.would_exceed(cost, now):
            raise SimError(ORDER_RATE_LIMIT)
        counter.charge(cost, now)
    merged = [{**entry, "pair": pair.id, "validate": params.get("validate", False)}
              for entry in orders]  # fmt: skip
    last = exchange.last(pair)
    for entry in merged:
        parse_add_order(entry, pair, now, last)
    results: list[dict[str, Any]] = []
    for entry in merged:
        try:
            placed = add_order(wallet, entry)
        except SimError as exc:
            results.append({"error": exc.error})
            continue
        item: dict[str, Any] = {"descr": placed["descr"]}
        if "txid" in placed:
            item["txid"] = placed["txid"][0]
        results.append(item)
    return {"orders": results}


def _ids(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(txids or userrefs, cl_ord_ids) named by the request."""
    raw_orders = params.get("orders", [])
    raw_cl = params.get("cl_ord_ids", [])
    if not isinstance(raw_orders, list) or not isinstance(raw_cl, list):
        raise SimError(invalid_arguments("orders"))
    refs: list[str] = []
    cl_ord_ids: list[str] = []
    for entry in raw_orders:
        if isinstance(entry, dict) and isinstance(entry.get("txid"), str | int):
            refs.append(str(entry["txid"]))
        elif isinstance(entry, dict) and isinstance(entry.get("cl_ord_id"), str):
            cl_ord_ids.append(entry["cl_ord_id"])
        elif isinstance(entry, str | int) and not isinstance(entry, bool):
            refs.append(str(entry))
        else:
            raise SimError(invalid_arguments("orders"))
    for entry in raw_cl:
        if not isinstance(entry, str):
            raise SimError(invalid_arguments("cl_ord_ids"))
        cl_ord_ids.append(entry)
    total = len(set(refs)) + len(set(cl_ord_ids))
    if total == 0 or total > MAX_CANCEL_IDS:
        raise SimError(invalid_arguments("orders"))
    return refs, cl_ord_ids


def cancel_order_batch(
    exchange: Exchange,
    wallet: Wallet,
    params: Mapping[str, Any],
    *,
    charge_cancels: ChargeCancels,
) -> dict[str, Any]:
    refs, cl_ord_ids = _ids(params)
    targets: dict[str, SimOrder] = {}
    for ref in refs:
        if _USERREF.match(ref):
            for order in wallet.open.values():
                if order.userref == int(ref):
                    targets.setdefault(order.txid, order)
        elif ref in wallet.open:
            targets.setdefault(ref, wallet.open[ref])
    for cl_ord_id in cl_ord_ids:
        found = wallet.open_with_cl_ord_id(cl_ord_id)
        if found is not None:
            targets.setdefault(found.txid, found)
    chosen = list(targets.values())
    charge_cancels(wallet, chosen)
    for order in chosen:
        exchange.cancel(wallet, order, REASON_USER)
    return {"count": len(chosen)}
