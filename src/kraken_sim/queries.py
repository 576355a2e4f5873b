"""The private read-only endpoints: balances, orders and trades of one account.

Paging: ClosedOrders and TradesHistory return 50 a page, newest first, with `count` = all that
match. Closed orders are ordered by `closetm` (ties: the later close first); trades by time (ties:
the later trade first). `start` is exclusive, `end` inclusive; either may be an order (or trade)
id, which stands for that order's `opentm` (`closetm` when `closetime=close`) or that trade's time.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kraken_sim import params as p
from kraken_sim.errors import UNKNOWN_ASSET, SimError, invalid_arguments
from kraken_sim.formatting import asset_amount, ledger_json, order_json, trade_json
from kraken_sim.markets import PAIRS, find_asset
from kraken_sim.orders import SimOrder, Trade
from kraken_sim.txids import check_order_ids
from kraken_sim.wallet import Wallet

PAGE = 50
MAX_QUERY_IDS = 50
# Assets TradeBalance may value through when no pair joins an asset to the one asked for.
_BRIDGES = ("ZUSD", "XXBT", "ZEUR")
_TRADE_TYPES = ("all", "any position", "closed position", "closing position", "no position")


def balance(wallet: Wallet) -> dict[str, str]:
    return ledger_json(wallet.balances)


def balance_ex(wallet: Wallet) -> dict[str, dict[str, str]]:
    held = wallet.holds()
    result = {}
    for asset_id in [*wallet.balances, *(a for a in held if a not in wallet.balances)]:
        asset = find_asset(asset_id)
        result[asset_id] = {
            "balance": asset_amount(wallet.balances.get(asset_id, Decimal(0)), asset),
            "hold_trade": asset_amount(held.get(asset_id, Decimal(0)), asset),
        }
    return result


def _rate(source: str, target: str, last: Mapping[str, Decimal]) -> Decimal | None:
    """How many `target` one `source` is worth, through one pair, or None."""
    if source == target:
        return Decimal(1)
    for pair in PAIRS.values():
        if pair.base.id == source and pair.quote.id == target:
            return last[pair.id]
        if pair.base.id == target and pair.quote.id == source:
            return 1 / last[pair.id]
    return None


def value_in(asset_id: str, amount: Decimal, target: str, last: Mapping[str, Decimal]) -> Decimal:
    """`amount` of `asset_id` in `target`: directly, else through USD, XBT or EUR; 0 if no way."""
    direct = _rate(asset_id, target, last)
    if direct is not None:
        return amount * direct
    for bridge in _BRIDGES:
        first, second = _rate(asset_id, bridge, last), _rate(bridge, target, last)
        if first is not None and second is not None:
            return amount * first * second
    return Decimal(0)


def trade_balance(
    wallet: Wallet, params: Mapping[str, Any], last: Mapping[str, Decimal]
) -> dict[str, str]:
    """Spot-only TradeBalance with Kraken's definitions, valued in `asset` at current prices.

    `eb` (equivalent balance) is every holding; `tb` (trade balance) is "the combined balance of
    all equity currencies": each holding times its asset's `collateral_value` (1 for USD, EUR,
    XBT, ETH, SOL and the stablecoins, 0.925 for XDG, 0 for the assets without a recorded
    collateral value; markets.py). `e` (equity) is `tb` plus the unrealised P/L of open margin
    positions (`n`), which the simulator has none of, so `e` = `tb`; `mf` (free margin) is `e`
    minus the margin `m` (0). `c`, `v` and `ml` are 0; `uv` values the open orders (volume x
    their limit or trigger price). Each holding is valued exactly (50 significant digits for the
    divisions of inverse pairs) and each sum is rounded half-up once, to the asset's decimals.
    """
    target = find_asset(p.text(params, "asset") or "ZUSD")
    if target is None:
        raise SimError(UNKNOWN_ASSET)
    with decimal.localcontext() as context:
        context.prec = 50
        values = {a: value_in(a, amount, target.id, last) for a, amount in wallet.balances.items()}
        equivalent = sum(values.values(), Decimal(0))
        trade = Decimal(0)
        for asset_id, value in values.items():
            asset = find_asset(asset_id)
            trade += value * (asset.collateral_value if asset is not None else Decimal(0))
        unexecuted = sum(
            (value_in(o.pair.quote.id, o.volume * o.reserve_price, target.id, last)
             for o in wallet.open.values()),
            Decimal(0),
        )  # fmt: skip

    def money(amount: Decimal) -> str:
        return asset_amount(amount.quantize(target.quantum, rounding=ROUND_HALF_UP), target)

    zero = money(Decimal(0))
    unrealised = Decimal(0)  # spot only: no margin positions
    equity = money(trade + unrealised)
    return {"eb": money(equivalent), "tb": money(trade), "m": zero, "n": money(unrealised),
            "c": zero, "v": zero, "e": equity, "mf": equity, "ml": zero,
            "uv": money(unexecuted)}  # fmt: skip


def _order_filter(params: Mapping[str, Any]) -> Callable[[SimOrder], bool]:
    userref = p.int32(params, "userref")
    cl_ord_id = p.text(params, "cl_ord_id") or None

    def keep(order: SimOrder) -> bool:
        if userref is not None and order.userref != userref:
            return False
        return cl_ord_id is None or order.cl_ord_id == cl_ord_id

    return keep


def open_orders(wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
    with_trades = p.boolean(params, "trades")
    keep = _order_filter(params)
    chosen = sorted((o for o in wallet.open.values() if keep(o)), key=lambda o: -o.seq)
    return {"open": {o.txid: order_json(o, with_trades=with_trades) for o in chosen}}


def _offset(params: Mapping[str, Any]) -> int:
    ofs = p.integer(params, "ofs")
    if ofs is None:
        return 0
    if ofs < 0:
        raise SimError(invalid_arguments("ofs"))
    return ofs


def _cursor(
    params: Mapping[str, Any], name: str, time_of: Callable[[str], float | None]
) -> float | None:
    value = p.timestamp_or_id(params, name)
    if value is None or isinstance(value, float):
        return value
    moment = time_of(value)
    if moment is None:
        raise SimError(invalid_arguments(name))
    return moment


def closed_orders(wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
    with_trades = p.boolean(params, "trades")
    keep = _order_filter(params)
    closetime = p.text(params, "closetime") or "both"
    if closetime not in ("open", "close", "both"):
        raise SimError(invalid_arguments("closetime"))

    def order_time(txid: str) -> float | None:
        order = wallet.orders.get(txid)
        if order is None:
            return None
        if closetime == "close":
            return order.closetm if order.closetm is not None else order.opentm
        return order.opentm

    start = _cursor(params, "start", order_time)
    end = _cursor(params, "end", order_time)

    def in_range(moment: float | None) -> bool:
        if moment is None:
            return False
        return (start is None or moment > start) and (end is None or moment <= end)

    def in_window(order: SimOrder) -> bool:
        if closetime == "open":
            return in_range(order.opentm)
        if closetime == "close":
            return in_range(order.closetm)
        return in_range(order.opentm) or in_range(order.closetm)

    matching = [o for o in wallet.orders.values()
                if not o.status.is_open and keep(o) and in_window(o)]  # fmt: skip
    matching.sort(key=lambda o: (o.closetm or 0.0, o.close_seq), reverse=True)
    ofs = _offset(params)
    page = matching[ofs : ofs + PAGE]
    result: dict[str, Any] = {
        "closed": {o.txid: order_json(o, with_trades=with_trades) for o in page}
    }
    if not p.boolean(params, "without_count"):
        result["count"] = len(matching)
    return result


def query_orders(wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
    """The known orders among `txid` (up to 50); unknown ids are left out, as Kraken does, and a
    malformed one is `EOrder:Invalid order` (txids.py)."""
    ids = p.comma_list(params, "txid")
    if not ids or len(ids) > MAX_QUERY_IDS:
        raise SimError(invalid_arguments("txid"))
    check_order_ids(ids)
    with_trades = p.boolean(params, "trades")
    keep = _order_filter(params)
    found = (wallet.orders.get(txid) for txid in ids)
    return {o.txid: order_json(o, with_trades=with_trades) for o in found if o and keep(o)}


def trades_history(wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
    kind = p.text(params, "type") or "all"
    if kind not in _TRADE_TYPES:
        raise SimError(invalid_arguments("type"))

    def trade_time(txid: str) -> float | None:
        trade = wallet.trades.get(txid)
        return None if trade is None else trade.time

    start = _cursor(params, "start", trade_time)
    end = _cursor(params, "end", trade_time)

    def keep(trade: Trade) -> bool:
        if kind in ("closed position", "closing position"):  # spot trades open no positions
            return False
        return (start is None or trade.time > start) and (end is None or trade.time <= end)

    matching = sorted((t for t in wallet.trades.values() if keep(t)),
                      key=lambda t: (t.time, t.trade_id), reverse=True)  # fmt: skip
    ofs = _offset(params)
    page = matching[ofs : ofs + PAGE]
    return {"trades": {t.txid: trade_json(t) for t in page}, "count": len(matching)}
