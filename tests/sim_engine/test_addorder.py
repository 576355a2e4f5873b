"""AddOrder: the request checks and their Kraken error strings, validate, flags, ids."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kraken_sim.engine import Engine
from kraken_sim.errors import (
    COST_MINIMUM,
    DUPLICATE_CL_ORD_ID,
    INSUFFICIENT_FUNDS,
    INVALID_ORDER,
    INVALID_PRICE,
    ORDER_MINIMUM,
    UNKNOWN_ASSET_PAIR,
    invalid_arguments,
    price_precision,
)
from tests.sim_engine.conftest import Clock, add, error_of, order

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000",
         "volume": "0.01"}  # fmt: skip
TXID = re.compile(r"^O[A-Z2-7]{5}-[A-Z2-7]{5}-[A-Z2-7]{6}$")


def _with(**changes: Any) -> dict[str, Any]:
    params = {**LIMIT, **changes}
    return {key: value for key, value in params.items() if value is not None}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (_with(pair=None), invalid_arguments("pair")),
        (_with(pair="DOGEUSD"), UNKNOWN_ASSET_PAIR),
        (_with(type="hold"), invalid_arguments("type")),
        (_with(ordertype=None), invalid_arguments("ordertype")),
        (_with(ordertype="stop"), invalid_arguments("ordertype")),
        (_with(ordertype="iceberg"), INVALID_ORDER),
        (_with(ordertype="trailing-stop"), INVALID_ORDER),
        (_with(leverage="5:1"), INVALID_ORDER),
        (_with(reduce_only="true"), INVALID_ORDER),
        (_with(**{"close[ordertype]": "limit", "close[price]": "70000"}), INVALID_ORDER),
        (_with(trigger="index"), invalid_arguments("Index unavailable")),
        (_with(trigger="mark"), invalid_arguments("trigger")),
        (_with(volume=None), invalid_arguments("volume")),
        (_with(volume="abc"), invalid_arguments("volume")),
        (_with(volume="0"), invalid_arguments("volume")),
        (_with(volume="-1"), invalid_arguments("volume")),
        (_with(volume="0.000100001"), invalid_arguments("volume")),
        (_with(volume="0.00001"), ORDER_MINIMUM),
        (_with(volume="0.00005", price="5000"), COST_MINIMUM),
        (_with(price=None), invalid_arguments("price")),
        (_with(price="+100"), invalid_arguments("price")),
        (_with(price="1e5"), invalid_arguments("price")),
        (_with(price="0"), INVALID_PRICE),
        (_with(price="50000.05"), price_precision("XXBTZUSD", 1)),
        (_with(ordertype="stop-loss-limit", price="70000"), invalid_arguments("price2")),
        (
            _with(ordertype="stop-loss-limit", price="70000", price2="70000.01"),
            price_precision("XXBTZUSD", 1),
        ),
        (_with(oflags="post,bogus"), invalid_arguments("oflags")),
        (_with(oflags="fcib,fciq"), invalid_arguments("oflags")),
        (_with(oflags="post", ordertype="market"), invalid_arguments("oflags")),
        (_with(oflags="viqc"), invalid_arguments("viqc")),
        (_with(oflags="viqc", ordertype="market", type="sell"), invalid_arguments("viqc")),
        (_with(timeinforce="FOKX"), invalid_arguments("timeinforce")),
        (_with(timeinforce="GTD"), invalid_arguments("expiretm")),
        (_with(expiretm="1000"), invalid_arguments("expiretm")),
        (_with(expiretm="soon"), invalid_arguments("expiretm")),
        (_with(ordertype="market", starttm="+60"), invalid_arguments("starttm")),
        (_with(userref="2147483648"), invalid_arguments("userref")),
        (_with(userref="x"), invalid_arguments("userref")),
        (_with(userref="5", cl_ord_id="a"), invalid_arguments("cl_ord_id")),
        (_with(cl_ord_id="this-text-is-too-long-for-kraken"), invalid_arguments("cl_ord_id")),
        (_with(validate="maybe"), invalid_arguments("validate")),
        (_with(volume="3"), INSUFFICIENT_FUNDS),
        (_with(type="sell", price="70000", volume="2.1"), INSUFFICIENT_FUNDS),
    ],
)
def test_add_order_refusals(engine: Engine, params: dict[str, Any], expected: str) -> None:
    """Each malformed or unaffordable order gets Kraken's error string and changes nothing."""
    before = engine.state()
    assert error_of(lambda: engine.private("alice", "AddOrder", params)) == expected
    assert engine.state() == before


def test_limit_order_answer_and_order_object(engine: Engine, clock: Clock) -> None:
    """AddOrder answers descr.order and a 6-5-6 txid; the order carries every Kraken field."""
    result = engine.private("alice", "AddOrder", {**LIMIT, "volume": "1.25", "userref": "42"})
    assert result["descr"] == {"order": "buy 1.25000000 XBTUSD @ limit 50000.0"}
    (txid,) = result["txid"]
    assert TXID.match(txid)
    found = engine.private("alice", "OpenOrders", {"trades": "true"})["open"][txid]
    assert found == {
        "refid": None, "userref": 42, "cl_ord_id": None, "status": "open",
        "opentm": clock.now, "starttm": 0, "expiretm": 0,
        "descr": {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000.0",
                  "price2": "0", "leverage": "none",
                  "order": "buy 1.25000000 XBTUSD @ limit 50000.0", "close": ""},
        "vol": "1.25000000", "vol_exec": "0.00000000", "cost": "0.00000", "fee": "0.00000",
        "price": "0.00000", "stopprice": "0.00000", "limitprice": "0.00000", "misc": "",
        "oflags": "fciq",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"ordertype": "market", "type": "sell", "volume": "0.25"},
         "sell 0.25000000 XBTUSD @ market"),
        ({"ordertype": "stop-loss", "price": "22000", "volume": "0.2"},
         "buy 0.20000000 XBTUSD @ stop loss 22000.0"),
        ({"ordertype": "take-profit", "type": "sell", "price": "80000", "volume": "0.2"},
         "sell 0.20000000 XBTUSD @ take profit 80000.0"),
        ({"ordertype": "stop-loss-limit", "price": "70000", "price2": "70100", "volume": "0.2"},
         "buy 0.20000000 XBTUSD @ stop loss 70000.0 -> limit 70100.0"),
        ({"ordertype": "take-profit-limit", "type": "sell", "price": "80000", "price2": "79900",
          "volume": "0.2"}, "sell 0.20000000 XBTUSD @ take profit 80000.0 -> limit 79900.0"),
        ({"pair": "ETHXBT", "price": "0.0501", "volume": "1"},
         "buy 1.00000000 ETHXBT @ limit 0.050100"),
    ],
)  # fmt: skip
def test_descr_order_text(engine: Engine, params: dict[str, Any], text: str) -> None:
    """descr.order reads like Kraken's: volume at lot_decimals, prices at pair_decimals."""
    result = engine.private("alice", "AddOrder", {**LIMIT, **params})
    assert result["descr"]["order"] == text


def test_validate_checks_but_places_nothing(engine: Engine) -> None:
    """validate=true answers descr only, without txid, and changes no state."""
    before = engine.state()
    result = engine.private("alice", "AddOrder", {**LIMIT, "validate": "True"})
    assert result == {"descr": {"order": "buy 0.01000000 XBTUSD @ limit 50000.0"}}
    assert engine.state() == before
    assert (
        error_of(
            lambda: engine.private("alice", "AddOrder", {**LIMIT, "volume": "9", "validate": "1"})
        )
        == INSUFFICIENT_FUNDS
    )
    assert "txid" in engine.private("alice", "AddOrder", {**LIMIT, "validate": "false"})


def test_json_scalars_are_accepted(engine: Engine) -> None:
    """JSON bodies may carry numbers and booleans instead of strings."""
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="limit", price=50000, volume=0.01,
               userref=7, validate=False)  # fmt: skip
    assert order(engine, txid)["vol"] == "0.01000000"
    assert order(engine, txid)["userref"] == 7


def test_cl_ord_id_unique_among_open_orders_only(engine: Engine) -> None:
    """A cl_ord_id in use by an open order is refused; once it closes it may be reused."""
    first = add(engine, **LIMIT, cl_ord_id="copy-1")
    assert error_of(lambda: add(engine, **LIMIT, cl_ord_id="copy-1")) == DUPLICATE_CL_ORD_ID
    engine.private("alice", "CancelOrder", {"txid": first})
    second = add(engine, **LIMIT, cl_ord_id="copy-1")
    assert order(engine, second)["cl_ord_id"] == "copy-1"
    assert order(engine, second)["userref"] is None
    uuid = "6d1b345e-2821-40e2-ad83-4ecb18a06876"
    assert order(engine, add(engine, **LIMIT, cl_ord_id=uuid))["cl_ord_id"] == uuid
    short = "da8e4ad59b78481c93e589746b0cf91f"
    assert order(engine, add(engine, **LIMIT, cl_ord_id=short))["cl_ord_id"] == short


def test_cl_ord_id_is_per_account(engine: Engine) -> None:
    """Two accounts may each have an open order with the same cl_ord_id."""
    alices = add(engine, "alice", **LIMIT, cl_ord_id="same")
    bobs = add(engine, "bob", **LIMIT, cl_ord_id="same")
    assert alices != bobs
    assert order(engine, alices, "alice")["cl_ord_id"] == "same"
    assert order(engine, bobs, "bob")["cl_ord_id"] == "same"


def test_oflags_as_shown(engine: Engine) -> None:
    """The fee flag defaults to fciq; post and fcib are kept; nompp is accepted."""
    assert order(engine, add(engine, **LIMIT, oflags="post"))["oflags"] == "post,fciq"
    assert order(engine, add(engine, **LIMIT, oflags="fcib"))["oflags"] == "fcib"
    assert order(engine, add(engine, **LIMIT, oflags="nompp,fciq"))["oflags"] == "nompp,fciq"


def test_txids_are_reproducible_from_the_seed(clock: Clock) -> None:
    """Two engines with the same seed and the same calls give the same txids."""
    from decimal import Decimal

    ids = []
    for _ in range(2):
        engine = Engine(seed=99, clock=clock)
        engine.add_account("a", balances={"ZUSD": Decimal(10000)}, tier="pro")
        ids.append([add(engine, "a", **LIMIT) for _ in range(3)])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3
