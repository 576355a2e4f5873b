"""Property test: amends, edits, batches, batch cancels and the dead-man switch, mixed with the
orders, price moves and waits of test_properties.py, keep the money honest.

After every step the invariants of test_properties.py hold (no asset created or destroyed but by
fees, nothing negative, hold_trade equals what the open orders reserve). At the end, every
account's trades explain its balances, and its ledger agrees: the last `balance` of each asset in
Ledgers is the account's balance, and the entries' amounts minus fees add up to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kraken_sim.engine import Engine
from kraken_sim.errors import SimError
from tests.sim_engine.conftest import Clock
from tests.sim_engine.test_properties import (
    ACCOUNTS,
    Model,
    _add_params,
    _apply,
    _check_invariants,
    _check_trades_explain_balances,
    accounts,
    adds,
    crosses,
    funded_engine,
    moves,
    waits,
)


@dataclass(frozen=True)
class Amend:
    account: str
    pick: int
    qty_per_mille: int  # new quantity: this many per mille of the old (0: unchanged)
    price_per_mille: int  # new limit or trigger: moved by this many per mille (0: unchanged)
    by_cl_ord_id: bool


@dataclass(frozen=True)
class Edit:
    account: str
    pick: int
    qty_per_mille: int
    price_per_mille: int


@dataclass(frozen=True)
class Batch:
    account: str
    first: Any  # two Add steps on one pair (the first's pair is used)
    second: Any


@dataclass(frozen=True)
class CancelBatch:
    account: str
    picks: tuple[int, ...]


@dataclass(frozen=True)
class DeadMan:
    account: str
    timeout: int  # 0 disables


amends = st.builds(Amend, account=accounts, pick=st.integers(0, 50),
                   qty_per_mille=st.sampled_from([0, 500, 900, 1100, 2000]),
                   price_per_mille=st.integers(-30, 30), by_cl_ord_id=st.booleans())  # fmt: skip
edits = st.builds(Edit, account=accounts, pick=st.integers(0, 50),
                  qty_per_mille=st.sampled_from([0, 500, 1500]),
                  price_per_mille=st.integers(-30, 30))  # fmt: skip
batches = st.builds(Batch, account=accounts, first=adds, second=adds)
picks = st.lists(st.integers(0, 50), min_size=1, max_size=4).map(tuple)
cancel_batches = st.builds(CancelBatch, account=accounts, picks=picks)
dead_men = st.builds(DeadMan, account=accounts, timeout=st.sampled_from([0, 5, 30, 90]))
steps = st.lists(
    st.one_of(adds, adds, amends, amends, edits, batches, cancel_batches, dead_men, moves,
              crosses, waits),
    min_size=5,
    max_size=40,
)  # fmt: skip


def _pick(engine: Engine, account: str, pick: int) -> tuple[str, dict[str, Any]] | None:
    open_orders = sorted(engine.private(account, "OpenOrders", {})["open"].items())
    return open_orders[pick % len(open_orders)] if open_orders else None


def _scaled(value: str, per_mille: int, tick: Decimal) -> str:
    moved = Decimal(value) * (1000 + per_mille) / 1000
    return str(max(tick, (moved / tick).to_integral_value() * tick))


def _amend(engine: Engine, model: Model, step: Amend) -> None:
    picked = _pick(engine, step.account, step.pick)
    if picked is None:
        return
    txid, order = picked
    descr = order["descr"]
    info = model.by_altname[descr["pair"]]
    tick = Decimal(info["tick_size"])
    params: dict[str, Any] = {"txid": txid}
    if step.by_cl_ord_id and order["cl_ord_id"]:
        params = {"cl_ord_id": order["cl_ord_id"]}
    if step.qty_per_mille:
        lot = Decimal(1).scaleb(-info["lot_decimals"])
        params["order_qty"] = str((Decimal(order["vol"]) * step.qty_per_mille / 1000).quantize(lot))
    if step.price_per_mille:
        if descr["ordertype"] == "limit" or descr["ordertype"].endswith("-limit"):
            field = "price" if descr["ordertype"] == "limit" else "price2"
            params["limit_price"] = _scaled(descr[field], step.price_per_mille, tick)
        elif not order["misc"]:
            params["trigger_price"] = _scaled(descr["price"], step.price_per_mille, tick)
    engine.private(step.account, "AmendOrder", params)


def _edit(engine: Engine, model: Model, step: Edit) -> None:
    picked = _pick(engine, step.account, step.pick)
    if picked is None:
        return
    txid, order = picked
    descr = order["descr"]
    info = model.by_altname[descr["pair"]]
    params: dict[str, Any] = {"txid": txid, "pair": info["id"]}
    if step.qty_per_mille:
        lot = Decimal(1).scaleb(-info["lot_decimals"])
        params["volume"] = str((Decimal(order["vol"]) * step.qty_per_mille / 1000).quantize(lot))
    if step.price_per_mille and descr["ordertype"] == "limit":
        tick = Decimal(info["tick_size"])
        params["price"] = _scaled(descr["price"], step.price_per_mille, tick)
    engine.private(step.account, "EditOrder", params)


def _batch(engine: Engine, model: Model, step: Batch) -> None:
    first = _add_params(engine, step.first, model)
    second = _add_params(engine, step.second, model)
    if step.second.pair != step.first.pair:
        second = {**_add_params(engine, step.first, model), "type": step.second.side}
    orders = [{k: v for k, v in params.items() if k != "pair"} for params in (first, second)]
    reply = engine.private(step.account, "AddOrderBatch", {"pair": first["pair"], "orders": orders})
    for item in reply["orders"]:
        assert "error" not in item or item["error"].startswith("EOrder:")


def _cancel_batch(engine: Engine, step: CancelBatch) -> None:
    open_orders = sorted(engine.private(step.account, "OpenOrders", {})["open"])
    if not open_orders:
        return
    chosen = sorted({open_orders[pick % len(open_orders)] for pick in step.picks})
    reply = engine.private(step.account, "CancelOrderBatch", {"orders": chosen})
    assert reply == {"count": len(chosen)}


def _apply_method(engine: Engine, clock: Clock, step: object, model: Model) -> None:
    refusal = None
    try:
        if isinstance(step, Amend):
            _amend(engine, model, step)
        elif isinstance(step, Edit):
            _edit(engine, model, step)
        elif isinstance(step, Batch):
            _batch(engine, model, step)
        elif isinstance(step, CancelBatch):
            _cancel_batch(engine, step)
        elif isinstance(step, DeadMan):
            engine.private(step.account, "CancelAllOrdersAfter", {"timeout": step.timeout})
        else:
            _apply(engine, clock, step, model)
    except SimError as refused:
        refusal = refused.error
    event(f"{type(step).__name__}: {refusal or 'ok'}")
    assert refusal is None or refusal.startswith(("EOrder:", "EGeneral:Invalid arguments"))


def _check_ledgers(engine: Engine) -> None:
    for account in ACCOUNTS:
        entries: list[dict[str, Any]] = []
        while True:
            page = engine.private(account, "Ledgers", {"ofs": len(entries)})
            entries.extend(page["ledger"].values())
            if len(entries) >= page["count"]:
                break
        sums: dict[str, Decimal] = {}
        latest: dict[str, str] = {}
        for entry in reversed(entries):  # oldest first
            asset = entry["asset"]
            sums[asset] = (
                sums.get(asset, Decimal(0)) + Decimal(entry["amount"]) - Decimal(entry["fee"])
            )
            assert Decimal(entry["balance"]) == sums[asset]
            latest[asset] = entry["balance"]
        balances = engine.balances(account)
        assert {a: Decimal(v) for a, v in latest.items()} == {a: balances[a] for a in latest}
        assert all(balances[a] == 0 for a in balances if a not in latest)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, seed=st.integers(0, 2**16))
def test_money_stays_honest_with_amends_edits_batches_and_the_dead_man(
    steps: list[object], seed: int
) -> None:
    clock = Clock()
    engine, initial = funded_engine(seed, clock)
    model = Model(engine)
    for step in steps:
        _apply_method(engine, clock, step, model)
        _check_invariants(engine, model, initial)
    _check_trades_explain_balances(engine, model)
    _check_ledgers(engine)
