"""Every error string the engine can produce is produced by some request, worded exactly."""

from __future__ import annotations

import ast
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import kraken_sim
from kraken_sim import errors
from kraken_sim.engine import Engine
from tests.sim_engine.conftest import Clock, add, error_of

# The engine's modules: everything under sim/ that the HTTP server helper does not own.
SERVER_MODULES = {"server", "auth", "ratelimit", "faults", "accounts", "control", "errors",
                  "__init__", "clock", "context", "lockout", "nonces", "reqlog", "tokens",
                  "wire", "websocket", "ws_items", "ws_trading"}  # fmt: skip
LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000",
         "volume": "0.001"}  # fmt: skip


def _engine(clock: Clock, tier: str = "starter", usd: str = "1000000") -> Engine:
    engine = Engine(seed=1, clock=clock)
    engine.add_account("a", balances={"ZUSD": Decimal(usd)}, tier=tier)
    return engine


def _rate_limit(clock: Clock) -> None:
    engine = _engine(clock)
    for _ in range(60):
        add(engine, "a", pair="XBTUSD", type="buy", ordertype="market", volume="0.0001")
    add(engine, "a", pair="XBTUSD", type="buy", ordertype="market", volume="0.0001")


def _orders_limit(clock: Clock) -> None:
    engine = _engine(clock)
    for _ in range(60):
        add(engine, "a", **LIMIT)
    clock.advance(10)
    add(engine, "a", **LIMIT)


def _duplicate(clock: Clock) -> None:
    engine = _engine(clock)
    add(engine, "a", **LIMIT, cl_ord_id="dup")
    add(engine, "a", **LIMIT, cl_ord_id="dup")


def _post_only_amend(clock: Clock) -> None:
    engine = _engine(clock)
    txid = add(engine, "a", **LIMIT, oflags="post")
    engine.private("a", "AmendOrder", {"txid": txid, "limit_price": "61000"})


def _order(**changes: Any) -> Callable[[Clock], Any]:
    return lambda clock: add(_engine(clock, usd="100"), "a", **{**LIMIT, **changes})


TRIGGERS: dict[str, Callable[[Clock], Any]] = {
    errors.UNKNOWN_METHOD: lambda clock: _engine(clock).private("a", "Withdraw", {}),
    errors.INVALID_ARGUMENTS: _order(volume="x"),
    errors.UNKNOWN_ASSET_PAIR: lambda clock: _engine(clock).public("Ticker", {"pair": "X"}),
    errors.UNKNOWN_ASSET: lambda clock: _engine(clock).public("Assets", {"asset": "X"}),
    errors.INSUFFICIENT_FUNDS: _order(volume="1"),
    errors.ORDER_MINIMUM: _order(volume="0.00001"),
    errors.COST_MINIMUM: _order(volume="0.00005", price="100"),
    errors.TICK_SIZE: lambda clock: _engine(clock).set_price("XBTUSD", "50000.01"),
    errors.DEADLINE_ELAPSED: _order(deadline="2000-01-01T00:00:00Z"),
    errors.INVALID_PRICE: _order(price="0"),
    errors.INVALID_ORDER: _order(ordertype="iceberg"),
    errors.UNKNOWN_ORDER: lambda clock: _engine(clock).private(
        "a", "CancelOrder", {"txid": "ONOPE1-AAAAA-AAAAAA"}
    ),
    errors.ORDER_RATE_LIMIT: _rate_limit,
    errors.ORDERS_LIMIT: _orders_limit,
    errors.DUPLICATE_CL_ORD_ID: _duplicate,
    errors.POST_ONLY_REJECTED: _post_only_amend,
}


def _constants_used_by_engine_modules() -> set[str]:
    used: set[str] = set()
    package = Path(kraken_sim.__file__).parent
    for path in package.glob("*.py"):
        if path.stem in SERVER_MODULES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "kraken_sim.errors":
                used.update(alias.name for alias in node.names if alias.name.isupper())
            if isinstance(node, ast.Name) and node.id == "invalid_arguments":
                used.add("INVALID_ARGUMENTS")
    return used


def test_every_error_the_engine_imports_has_a_trigger() -> None:
    """Each error constant an engine module uses is in the trigger table below."""
    names = {name for name in dir(errors) if name.isupper() and getattr(errors, name) in TRIGGERS}
    used = _constants_used_by_engine_modules()
    assert {"INSUFFICIENT_FUNDS", "INVALID_ARGUMENTS", "UNKNOWN_METHOD"} <= used
    assert used <= names


@pytest.mark.parametrize("expected", sorted(TRIGGERS))
def test_each_engine_error_is_produced(clock: Clock, expected: str) -> None:
    """The request in the table gets exactly this error string (or it with a field)."""
    produced = error_of(lambda: TRIGGERS[expected](clock))
    if expected == errors.INVALID_ARGUMENTS:
        assert produced == f"{expected}:volume"
    else:
        assert produced == expected
