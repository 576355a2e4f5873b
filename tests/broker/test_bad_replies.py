"""Replies the broker cannot trust: every number is checked where it enters, a bad one is a
BadReplyError naming the account, the method and the field (never a 0), the read is asked for
again within its bounded retry, and an unreadable write reply leaves the outcome unknown."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from copytrader.config.credentials import ApiCredentials
from copytrader.domain import OrderType, Side
from copytrader.errors import (
    AccountUnusableError,
    BadReplyError,
    OrderRejectedError,
    OutcomeUnknownError,
    TransientError,
)
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import OrderRequest
from copytrader.kraken.retry import READ_ATTEMPTS
from tests.broker.conftest import new_key
from tests.broker.scripted import (
    SCRIPTED_URL,
    Reply,
    ScriptedTransport,
    by_method,
    error_reply,
    in_turn,
    reply,
)
from tests.simproc import new_secret

# Each is refused wherever a number is expected. float("inf") goes out as the JSON literal
# Infinity, which Python's JSON reader (and so krakenex's) turns into a float.
POISONS: list[Any] = [
    "1e999999",
    "NaN",
    "-3",
    "lots",
    "Infinity",
    "1e3",
    " 12",
    "1_000",
    "١٢",  # Arabic-Indic digits: Decimal reads them as 12
    "5" * 80,
    "2e15",
    float("inf"),
    True,
    [],
]

ORDER: dict[str, Any] = {
    "status": "open",
    "opentm": 1_700_000_000.25,
    "descr": {
        "pair": "XBTUSD",
        "type": "buy",
        "ordertype": "limit",
        "price": "50000.0",
        "price2": "0",
    },
    "vol": "0.50000000",
    "vol_exec": "0.10000000",
    "cost": "5000.00000",
    "fee": "13.00000",
    "price": "50000.0",
    "userref": 0,
    "cl_ord_id": "4d6f1b2a9c8e4f0a8b7c6d5e4f3a2b1c",
    "oflags": "fciq",
}


def _order_with(field: str, value: Any) -> dict[str, Any]:
    entry = copy.deepcopy(ORDER)
    if field.startswith("descr."):
        entry["descr"][field.removeprefix("descr.")] = value
    else:
        entry[field] = value
    return entry


# read name -> (call, Kraken method, good result, result with `value` in the checked field,
# the field's name as the error names it)
Read = tuple[Callable[[KrakenBroker], Any], str, Any, Callable[[Any], Any], str]
READS: dict[str, Read] = {
    "Balance": (
        lambda b: b.balances(),
        "Balance",
        {"ZUSD": "100.5"},
        lambda v: {"ZUSD": v},
        "ZUSD",
    ),
    "BalanceEx": (
        lambda b: b.balances_ex(),
        "BalanceEx",
        {"ZUSD": {"balance": "100.5", "hold_trade": "0.5"}},
        lambda v: {"ZUSD": {"balance": "100.5", "hold_trade": v}},
        "ZUSD.hold_trade",
    ),
    "TradeBalance": (
        lambda b: b.trade_balance(),
        "TradeBalance",
        {"e": "1000", "eb": "1000", "tb": "1000", "n": "-5", "mf": "1000"},
        lambda v: {"e": v, "eb": "1000", "tb": "1000"},
        "e",
    ),
    "OpenOrders.vol": (
        lambda b: b.open_orders(),
        "OpenOrders",
        {"open": {"OA": ORDER}},
        lambda v: {"open": {"OA": _order_with("vol", v)}},
        "OA.vol",
    ),
    "ClosedOrders.vol_exec": (
        lambda b: b.closed_orders(),
        "ClosedOrders",
        {"closed": {"OA": ORDER}, "count": 1},
        lambda v: {"closed": {"OA": _order_with("vol_exec", v)}, "count": 1},
        "OA.vol_exec",
    ),
    "QueryOrders.price": (
        lambda b: b.query_orders(["OA"]),
        "QueryOrders",
        {"OA": ORDER},
        lambda v: {"OA": _order_with("descr.price", v)},
        "OA.descr.price",
    ),
}


@pytest.fixture(name="make")
def _make(tmp_path: Path) -> Iterator[Callable[[ScriptedTransport], KrakenBroker]]:
    brokers: list[KrakenBroker] = []

    def make(transport: ScriptedTransport) -> KrakenBroker:
        broker = KrakenBroker(
            "USER:ana",
            ApiCredentials(new_key(), new_secret()),
            api_url=SCRIPTED_URL,
            data_dir=tmp_path,
            retry_waits=False,
            client_rate_limit=False,
            transport=transport,
        )
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


def _numbers(value: Any) -> list[Decimal]:
    """Every Decimal inside a typed result (dicts, dataclasses)."""
    if isinstance(value, Decimal):
        return [value]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if dataclasses.is_dataclass(value):
        return [n for f in dataclasses.fields(value) for n in _numbers(getattr(value, f.name))]
    return []


@pytest.mark.parametrize("poison", POISONS, ids=repr)
@pytest.mark.parametrize("read", sorted(READS))
def test_a_bad_number_fails_the_read_then_a_good_reply_is_read(
    make: Callable[[ScriptedTransport], KrakenBroker], read: str, poison: Any
) -> None:
    """A poisoned reply is never read as a number: the read is asked again at once and the
    good reply that follows is what the caller gets."""
    call, method, good, poisoned, _ = READS[read]
    transport = ScriptedTransport(in_turn([reply(poisoned(poison)), reply(good)]))
    result = call(make(transport))
    assert transport.methods() == [method, method]
    assert _numbers(result)  # the good reply's numbers, all of them sane
    assert all(n.is_finite() and abs(n) < Decimal("1e15") for n in _numbers(result))


@pytest.mark.parametrize("poison", ["1e999999", "NaN", "-3", "lots", "Infinity"])
@pytest.mark.parametrize("read", sorted(READS))
def test_a_bad_number_that_stays_is_a_transient_error_naming_the_field(
    make: Callable[[ScriptedTransport], KrakenBroker], read: str, poison: str
) -> None:
    """Once the read's attempts are spent, the caller gets BadReplyError (transient) naming
    the account, the method and the field, never a result."""
    call, method, _, poisoned, field = READS[read]
    transport = ScriptedTransport(lambda _: reply(poisoned(poison)))
    with pytest.raises(BadReplyError) as caught:
        call(make(transport))
    assert isinstance(caught.value, TransientError)
    message = str(caught.value)
    assert message.startswith(f"[USER:ana] {method}: unreadable reply: {field}: ")
    assert transport.methods() == [method] * READ_ATTEMPTS


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"tick_size": "0"}, "tick_size"),
        ({"fees": [[0, "50"]]}, "fees"),
        ({"fees": "lots"}, "fees"),
        ({"lot_decimals": 99}, "lot_decimals"),
        ({"ordermin": "NaN"}, "ordermin"),
    ],
)
def test_a_bad_pair_rule_fails_asset_pairs(
    make: Callable[[ScriptedTransport], KrakenBroker], entry: dict[str, Any], field: str
) -> None:
    """Pair rules feed sizing: a zero tick, a 50 % fee or 99 decimals are refused."""
    pair = {"altname": "XBTUSD", "wsname": "XBT/USD", "pair_decimals": 1, "lot_decimals": 8}
    transport = ScriptedTransport(lambda _: reply({"XXBTZUSD": {**pair, **entry}}))
    with pytest.raises(BadReplyError, match=rf"AssetPairs: unreadable reply: XXBTZUSD\.{field}"):
        make(transport).asset_pairs()


def test_a_fill_above_the_order_volume_is_refused(
    make: Callable[[ScriptedTransport], KrakenBroker],
) -> None:
    transport = ScriptedTransport(lambda _: reply({"OA": _order_with("vol_exec", "0.6")}))
    with pytest.raises(BadReplyError, match=r"OA\.vol_exec: 0\.6 is above vol"):
        make(transport).query_orders(["OA"])


def test_a_ticker_with_a_bad_price_is_refused(
    make: Callable[[ScriptedTransport], KrakenBroker],
) -> None:
    pair = {"altname": "XBTUSD", "wsname": "XBT/USD", "pair_decimals": 1, "lot_decimals": 8}
    ticker = {"a": ["60000.0", "1", "1.000"], "b": ["59999.9", "1", "1.000"], "c": ["NaN", "1"]}
    transport = ScriptedTransport(
        by_method(
            {
                "AssetPairs": lambda _: reply({"XXBTZUSD": pair}),
                "Ticker": lambda _: reply({"XXBTZUSD": ticker}),
            }
        )
    )
    with pytest.raises(BadReplyError, match=r"Ticker: unreadable reply: XXBTZUSD\.c\[0\]"):
        make(transport).ticker("XBTUSD")


@pytest.mark.parametrize(
    ("error", "cls"),
    [("EOrder:Insufficient funds", OrderRejectedError), ("EAPI:Invalid key", AccountUnusableError)],
)
def test_an_error_given_as_a_string_is_one_error(
    make: Callable[[ScriptedTransport], KrakenBroker], error: str, cls: type[Exception]
) -> None:
    """Kraken's `error` is a list; a bare string is read as one error, not as its letters."""
    transport = ScriptedTransport(lambda _: error_reply(error))
    with pytest.raises(cls) as caught:
        make(transport).balances()
    assert caught.value.errors == (error,)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "bad",
    [Reply(raw=b"<html>502 Bad Gateway</html>"), Reply(document=[1, 2]), reply("lots")],
    ids=["not json", "not an object", "result not an object"],
)
def test_an_unreadable_add_order_reply_leaves_the_outcome_unknown(
    make: Callable[[ScriptedTransport], KrakenBroker], bad: Reply
) -> None:
    """An order without a client order id cannot be looked up: an AddOrder reply that cannot
    be read is OutcomeUnknownError, after exactly one send."""
    transport = ScriptedTransport(lambda _: bad)
    order = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.5"), price=Decimal("50000"), userref=7,
    )  # fmt: skip
    with pytest.raises(OutcomeUnknownError):
        make(transport).add_order(order)
    assert transport.methods() == ["AddOrder"]


def test_an_unreadable_add_order_reply_is_resolved_by_a_lookup(
    make: Callable[[ScriptedTransport], KrakenBroker],
) -> None:
    """With a client order id, the order is looked up instead of sent again."""
    transport = ScriptedTransport(
        by_method(
            {
                "AddOrder": lambda _: Reply(raw=b"<html>502 Bad Gateway</html>"),
                "OpenOrders": lambda _: reply({"open": {"OA": ORDER}}),
            }
        )
    )
    order = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.5"), price=Decimal("50000"), cl_ord_id=ORDER["cl_ord_id"],
    )  # fmt: skip
    result = make(transport).add_order(order)
    assert result.resolved_by_lookup
    assert result.txids == ("OA",)
    assert transport.methods() == ["AddOrder", "OpenOrders"]
