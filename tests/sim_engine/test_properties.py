"""Property test: random orders, cancels, price moves, trades through resting orders and waits
keep the money honest, with a flat market or with books (market orders walking thin books,
resting orders filling partly).

After every step: per asset, the accounts plus the house (every fill's counterparty) plus the
fees collected add up to what the accounts started with; no balance and no available amount is
negative; each account's hold_trade equals what its open orders reserve, recomputed here from
OpenOrders and AssetPairs alone; every balance sits exactly on its asset's ledger precision.
At the end of each run, every account's balances equal its starting balances plus the effect of
each trade in its TradesHistory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kraken_sim.books import BookSettings, PairBook
from kraken_sim.engine import Engine
from kraken_sim.errors import SimError
from kraken_sim.markets import PAIRS
from tests.sim_engine.conftest import Clock

ACCOUNTS = {
    "a": {"ZUSD": "25000", "XXBT": "0.4", "XETH": "3", "ZEUR": "8000", "SOL": "40",
          "USDT": "3000", "USDC": "3000"},
    "b": {"ZUSD": "8000", "USDT": "2000", "XETH": "0.5", "XXBT": "0.1", "SOL": "5"},
    "c": {"XXBT": "0.05", "ZEUR": "5000", "USDC": "1000", "ZUSD": "2500.1234"},
}  # fmt: skip
PAIR_IDS = ["XXBTZUSD", "XXBTZEUR", "XETHZUSD", "XETHZEUR", "SOLUSD", "SOLEUR", "XETHXXBT",
            "USDTZUSD", "USDCUSD", "ZEURZUSD"]  # fmt: skip
ORDER_TYPES = ["market", "limit", "limit", "limit", "stop-loss", "take-profit", "stop-loss-limit",
               "take-profit-limit"]  # fmt: skip


@dataclass(frozen=True)
class Add:
    account: str
    pair: str
    side: str
    ordertype: str
    lots: int  # volume in units of ordermin
    extra_digits: int  # and a few more digits below ordermin
    offset: int  # price: last moved by this many per mille
    offset2: int  # price2 likewise
    flags: str
    timeinforce: str
    ref: int  # 0 none; 1-3 userref; 4-6 cl_ord_id


@dataclass(frozen=True)
class Cancel:
    account: str
    pick: int
    how: str  # txid | userref | cl_ord_id | all


@dataclass(frozen=True)
class Move:
    pair: str
    per_mille: int


@dataclass(frozen=True)
class Cross:
    """Move the price of some open order's pair just past its limit or trigger."""

    pick: int
    per_mille: int


@dataclass(frozen=True)
class Rest:
    """A limit order placed away from the market, so that it rests (buys below, sells above)."""

    account: str
    pair: str
    side: str
    lots: int
    offset: int  # per mille away from the price


@dataclass(frozen=True)
class TradeThrough:
    """An outside taker trades part (or more than all) of some open order's remaining volume
    through a price at or beyond its limit."""

    pick: int
    per_mille: int
    percent: int


@dataclass(frozen=True)
class Wait:
    seconds: int


accounts = st.sampled_from(sorted(ACCOUNTS))
# Two pairs get most of the traffic, so that price moves often cross resting orders.
pairs = st.one_of(st.just("XXBTZUSD"), st.just("XETHXXBT"), st.sampled_from(PAIR_IDS))
adds = st.builds(
    Add,
    account=accounts,
    pair=pairs,
    side=st.sampled_from(["buy", "sell"]),
    ordertype=st.sampled_from(ORDER_TYPES),
    lots=st.integers(1, 200),
    extra_digits=st.integers(0, 999),
    offset=st.integers(-40, 40),
    offset2=st.integers(-40, 40),
    flags=st.sampled_from(["", "", "fcib", "fciq", "post", "viqc", "nompp"]),
    timeinforce=st.sampled_from(["GTC", "GTC", "IOC", "GTD"]),
    ref=st.integers(0, 6),
)
cancels = st.builds(
    Cancel,
    account=accounts,
    pick=st.integers(0, 50),
    how=st.sampled_from(["txid", "txid", "userref", "cl_ord_id", "all"]),
)
moves = st.builds(Move, pair=pairs, per_mille=st.integers(-80, 80))
crosses = st.builds(Cross, pick=st.integers(0, 50), per_mille=st.integers(0, 30))
waits = st.builds(Wait, seconds=st.integers(1, 120))
throughs = st.builds(
    TradeThrough, pick=st.integers(0, 50), per_mille=st.integers(0, 20),
    percent=st.integers(1, 150),
)  # fmt: skip
rests = st.builds(
    Rest, account=accounts, pair=pairs, side=st.sampled_from(["buy", "sell"]),
    lots=st.integers(1, 100), offset=st.integers(1, 30),
)  # fmt: skip
steps = st.lists(
    st.one_of(adds, adds, adds, rests, rests, cancels, moves, crosses, throughs, throughs, waits),
    min_size=5,
    max_size=40,
)
# Thin books (six levels of 50 x ordermin), so that walks cross levels and sometimes run dry.
THIN_BOOKS = BookSettings(
    enabled=True,
    pairs={pair.id: PairBook(levels=6, level_volume=pair.ordermin * 50, refill_seconds=60.0)
           for pair in PAIRS.values()},
)  # fmt: skip


class Model:
    """What the test reads from public answers only, to recompute holds independently."""

    def __init__(self, engine: Engine) -> None:
        self.pairs: dict[str, dict[str, Any]] = engine.public("AssetPairs", {})
        self.by_altname = {info["altname"]: {**info, "id": pair_id}
                           for pair_id, info in self.pairs.items()}  # fmt: skip
        assets = engine.public("Assets", {})
        self.decimals: dict[str, int] = {a: info["decimals"] for a, info in assets.items()}

    def quantum(self, asset: str) -> Decimal:
        return Decimal(1).scaleb(-self.decimals[asset])

    def ceil(self, amount: Decimal, asset: str) -> Decimal:
        return amount.quantize(self.quantum(asset), rounding=ROUND_UP)

    def expected_holds(self, open_orders: Mapping[str, Any]) -> dict[str, Decimal]:
        held: dict[str, Decimal] = {}
        for order in open_orders.values():
            descr = order["descr"]
            info = self.by_altname[descr["pair"]]
            taker = Decimal(str(info["fees"][0][1])) / 100
            volume = Decimal(order["vol"]) - Decimal(order["vol_exec"])
            limit_after = descr["ordertype"].endswith("-limit")
            price = Decimal(descr["price2"] if limit_after else descr["price"])
            in_base = "fcib" in order["oflags"].split(",")
            base, quote = info["base"], info["quote"]
            if descr["type"] == "buy":
                cost = self.ceil(volume * price, quote)
                fee = Decimal(0) if in_base else self.ceil(cost * taker, quote)
                held[quote] = held.get(quote, Decimal(0)) + cost + fee
            else:
                fee = self.ceil(volume * taker, base) if in_base else Decimal(0)
                held[base] = held.get(base, Decimal(0)) + volume + fee
        return held


def _add_params(engine: Engine, step: Add, model: Model) -> dict[str, Any]:
    info = model.pairs[step.pair]
    lot = Decimal(1).scaleb(-info["lot_decimals"])
    tick = Decimal(info["tick_size"])
    last = Decimal(engine.state()["prices"][step.pair])
    volume = Decimal(info["ordermin"]) * step.lots + lot * step.extra_digits

    def price(per_mille: int) -> str:
        moved = last * (1000 + per_mille) / 1000
        return str(max(tick, (moved / tick).to_integral_value() * tick))

    params: dict[str, Any] = {"pair": step.pair, "type": step.side, "ordertype": step.ordertype,
                              "volume": str(volume), "timeinforce": step.timeinforce}  # fmt: skip
    if step.ordertype != "market":
        params["price"] = price(step.offset)
    if step.ordertype.endswith("-limit"):
        params["price2"] = price(step.offset2)
    if step.flags == "viqc":
        params["volume"] = str((volume * last).quantize(lot))
    if step.flags:
        params["oflags"] = step.flags
    if step.timeinforce == "GTD":
        params["expiretm"] = f"+{30 + step.lots % 90}"
    if 1 <= step.ref <= 3:
        params["userref"] = str(step.ref)
    elif step.ref >= 4:
        params["cl_ord_id"] = f"ref-{step.ref}"
    return params


def _apply(engine: Engine, clock: Clock, step: object, model: Model) -> None:
    refusal = None
    try:
        if isinstance(step, Rest):
            offset = -step.offset if step.side == "buy" else step.offset
            step = Add(step.account, step.pair, step.side, "limit", step.lots, 0, offset, 0, "",
                       "GTC", 0)  # fmt: skip
        if isinstance(step, Add):
            engine.private(step.account, "AddOrder", _add_params(engine, step, model))
        elif isinstance(step, Cancel):
            _cancel(engine, step)
        elif isinstance(step, Move):
            last = Decimal(engine.state()["prices"][step.pair])
            _move(engine, model, step.pair, last * (1000 + step.per_mille) / 1000)
        elif isinstance(step, Cross):
            _cross(engine, model, step)
        elif isinstance(step, TradeThrough):
            _trade_through(engine, model, step)
        elif isinstance(step, Wait):
            clock.advance(step.seconds)
    except SimError as refused:  # refusals are fine; any other exception fails the test
        refusal = refused.error
    assert refusal is None or refusal.startswith(("EOrder:", "EGeneral:Invalid arguments"))


def _move(engine: Engine, model: Model, pair: str, price: Decimal) -> None:
    tick = Decimal(model.pairs[pair]["tick_size"])
    engine.set_price(pair, max(tick, (price / tick).to_integral_value() * tick))


def _open_orders(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    return sorted(
        (txid, order)
        for account in ACCOUNTS
        for txid, order in engine.private(account, "OpenOrders", {})["open"].items()
    )


def _triggered(order: Mapping[str, Any]) -> bool:
    return bool({"stopped", "touched"} & set(order["misc"].split(",")))


def _trade_through(engine: Engine, model: Model, step: TradeThrough) -> None:
    resting = [(txid, order) for txid, order in _open_orders(engine)
               if order["descr"]["ordertype"] == "limit" or _triggered(order)]  # fmt: skip
    if not resting:
        return
    _, order = resting[step.pick % len(resting)]
    descr = order["descr"]
    info = model.by_altname[descr["pair"]]
    limit = Decimal(descr["price2"] if _triggered(order) else descr["price"])
    tick = Decimal(info["tick_size"])
    buy = descr["type"] == "buy"
    moved = limit * (1000 - step.per_mille if buy else 1000 + step.per_mille) / 1000
    price = max(tick, (moved / tick).to_integral_value() * tick)
    left = Decimal(order["vol"]) - Decimal(order["vol_exec"])
    lot = Decimal(1).scaleb(-info["lot_decimals"])
    volume = max(lot, (left * step.percent / 100).quantize(lot))
    engine.trade(info["id"], "sell" if buy else "buy", price, volume)


def _cross(engine: Engine, model: Model, step: Cross) -> None:
    candidates = _open_orders(engine)
    if not candidates:
        return
    _, order = candidates[step.pick % len(candidates)]
    descr = order["descr"]
    buy = descr["type"] == "buy"
    kind = descr["ordertype"]
    if kind == "limit" or _triggered(order):  # resting at its limit: buys fill on a fall
        level, up = Decimal(descr["price2"] if _triggered(order) else descr["price"]), not buy
    else:  # waiting for its trigger: stop-loss buys fire on a rise, take-profit buys on a fall
        level, up = Decimal(descr["price"]), buy == kind.startswith("stop-loss")
    factor = 1000 + step.per_mille if up else 1000 - step.per_mille
    _move(engine, model, model.by_altname[descr["pair"]]["id"], level * factor / 1000)


def _cancel(engine: Engine, step: Cancel) -> None:
    if step.how == "all":
        engine.private(step.account, "CancelAll", {})
        return
    open_orders = list(engine.private(step.account, "OpenOrders", {})["open"].items())
    if not open_orders:
        return
    txid, order = open_orders[step.pick % len(open_orders)]
    if step.how == "userref" and order["userref"]:
        engine.private(step.account, "CancelOrder", {"txid": str(order["userref"])})
    elif step.how == "cl_ord_id" and order["cl_ord_id"]:
        engine.private(step.account, "CancelOrder", {"cl_ord_id": order["cl_ord_id"]})
    else:
        engine.private(step.account, "CancelOrder", {"txid": txid})


def _check_invariants(engine: Engine, model: Model, initial: Mapping[str, Decimal]) -> None:
    totals: dict[str, Decimal] = {}
    for ledger in [engine.house_flows(), engine.fees_collected(),
                   *(engine.balances(a) for a in ACCOUNTS)]:  # fmt: skip
        for asset, amount in ledger.items():
            totals[asset] = totals.get(asset, Decimal(0)) + amount
    assert {a: v for a, v in totals.items() if v} == {a: v for a, v in initial.items() if v}

    for account in ACCOUNTS:
        balances = engine.balances(account)
        ex = engine.private(account, "BalanceEx", {})
        open_orders = engine.private(account, "OpenOrders", {})["open"]
        expected = model.expected_holds(open_orders)
        for asset, amount in balances.items():
            assert amount >= 0, (account, asset, amount)
            assert amount == amount.quantize(model.quantum(asset))
            assert Decimal(ex[asset]["balance"]) == amount
        for asset, entry in ex.items():
            held = Decimal(entry["hold_trade"])
            assert held == expected.get(asset, Decimal(0)), (account, asset)
            assert Decimal(entry["balance"]) - held >= 0, (account, asset)


def _all_trades(engine: Engine, account: str) -> list[dict[str, Any]]:
    trades: list[dict[str, Any]] = []
    while True:
        page = engine.private(account, "TradesHistory", {"ofs": len(trades)})
        trades.extend(page["trades"].values())
        if len(trades) >= page["count"]:
            return trades


def _check_trades_explain_balances(engine: Engine, model: Model) -> None:
    for account, start in ACCOUNTS.items():
        expected = {asset: Decimal(amount) for asset, amount in start.items()}
        for trade in _all_trades(engine, account):
            info = model.pairs[trade["pair"]]
            placed = engine.private(account, "QueryOrders", {"txid": trade["ordertxid"]})
            in_base = "fcib" in placed[trade["ordertxid"]]["oflags"]
            base, quote = info["base"], info["quote"]
            vol, cost, fee = (Decimal(trade[k]) for k in ("vol", "cost", "fee"))
            sign = 1 if trade["type"] == "buy" else -1
            base_delta = sign * vol - (fee if in_base else 0)
            quote_delta = -sign * cost - (0 if in_base else fee)
            expected[base] = expected.get(base, Decimal(0)) + base_delta
            expected[quote] = expected.get(quote, Decimal(0)) + quote_delta
        actual = engine.balances(account)
        assert {a: v for a, v in actual.items() if v} == {a: v for a, v in expected.items() if v}


def funded_engine(
    seed: int, clock: Clock, books: BookSettings | None = None
) -> tuple[Engine, dict[str, Decimal]]:
    """An engine with ACCOUNTS funded, and the total of each asset it started with."""
    engine = Engine(seed=seed, clock=clock, books=books)
    initial: dict[str, Decimal] = {}
    for account, balances in ACCOUNTS.items():
        amounts = {asset: Decimal(amount) for asset, amount in balances.items()}
        engine.add_account(account, balances=amounts, tier="pro")
        for asset, amount in amounts.items():
            initial[asset] = initial.get(asset, Decimal(0)) + amount
    return engine, initial


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, seed=st.integers(0, 2**16), books=st.booleans())
def test_money_stays_honest(steps: list[object], seed: int, books: bool) -> None:
    """No asset is created or destroyed but by fees; holds match open orders; nothing negative."""
    clock = Clock()
    engine, initial = funded_engine(seed, clock, books=THIN_BOOKS if books else None)
    model = Model(engine)
    for step in steps:
        _apply(engine, clock, step, model)
        _check_invariants(engine, model, initial)
    _check_trades_explain_balances(engine, model)
