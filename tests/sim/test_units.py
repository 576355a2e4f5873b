"""Unit tests of the simulator's server-side building blocks (no process, no network)."""

from __future__ import annotations

import base64
import copy

import pytest

from kraken_sim.accounts import LockoutPolicy
from kraken_sim.auth import kraken_signature, signature_matches
from kraken_sim.faults import Fault, FaultBook, FaultKind, FaultSpecError, parse_fault
from kraken_sim.lockout import Lockouts
from kraken_sim.nonces import UINT64_MAX, NonceGuard, parse_nonce
from kraken_sim.ratelimit import RestRateCounter, call_cost
from kraken_sim.wire import parse_body
from tests.sim.conftest import VECTOR_SECRET
from tests.sim.kraken_http import sign

VECTOR_BODY = b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
VECTOR_SIGN = (
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)
JSON_VECTOR_BODY = (
    b'{"nonce": "1616492376594", "ordertype": "limit", "pair": "XBTUSD", "price": 37500, '
    b'"type": "buy", "volume": 1.25}'
)
JSON_VECTOR_SIGN = (
    "xojekerxRL59CSvi3027oZ1+nMQF0TgqD5QE569qR8tgSJ4tAhoVYVGhSEciXkufsn6foHHVi0N3Utiarvg74w=="
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_signature_reproduces_krakens_documented_example() -> None:
    """The simulator's signing gives exactly the API-Sign of Kraken's documented example."""
    secret = base64.b64decode(VECTOR_SECRET)
    signed = kraken_signature(secret, "/0/private/AddOrder", "1616492376594", VECTOR_BODY)
    assert signed == VECTOR_SIGN
    assert sign(VECTOR_SECRET, "/0/private/AddOrder", "1616492376594", VECTOR_BODY) == VECTOR_SIGN


def test_signature_of_json_body_matches_reference_vector() -> None:
    """A JSON body is signed over its raw text, as in the reference's JSON vector."""
    secret = base64.b64decode(VECTOR_SECRET)
    path = "/0/private/AddOrder"
    assert kraken_signature(secret, path, "1616492376594", JSON_VECTOR_BODY) == JSON_VECTOR_SIGN
    assert signature_matches(secret, path, "1616492376594", JSON_VECTOR_BODY, JSON_VECTOR_SIGN)
    assert not signature_matches(secret, path, "1616492376594", JSON_VECTOR_BODY, VECTOR_SIGN)
    assert not signature_matches(secret, path, "1616492376594", JSON_VECTOR_BODY, "é")


def test_nonce_without_window_must_strictly_increase() -> None:
    """With window 0 only nonces above the high-water mark pass; equal and lower fail."""
    guard = NonceGuard()
    assert guard.consume(100)
    assert not guard.consume(100)
    assert not guard.consume(99)
    assert guard.consume(101)
    assert guard.high_water == 101


def test_nonce_window_accepts_late_nonces_once() -> None:
    """Inside the window a lower, unused nonce passes once; a replay or anything older fails."""
    guard = NonceGuard(window=10)
    assert guard.consume(100)
    assert guard.consume(95)  # late but inside the window
    assert not guard.consume(95)  # exact replay
    assert not guard.consume(100)  # the high-water mark itself was used
    assert guard.consume(90)  # the window's lower edge is inclusive
    assert not guard.consume(89)  # outside the window
    assert guard.consume(120)
    assert not guard.consume(105)  # 120 - 10 = 110 is the new floor
    assert guard.high_water == 120


def test_nonce_reset_counts_the_mark_as_used() -> None:
    """A high-water mark set from outside rejects that very nonce and accepts the next."""
    guard = NonceGuard(window=5)
    guard.reset(1000)
    assert not guard.consume(1000)
    assert guard.consume(998)
    assert guard.consume(1001)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1616492376594", (1616492376594, "1616492376594")),
        (1616492376594, (1616492376594, "1616492376594")),
        (str(UINT64_MAX), (UINT64_MAX, str(UINT64_MAX))),
        (str(UINT64_MAX + 1), None),
        ("-5", None),
        ("+5", None),
        ("1.5", None),
        (1.5, None),
        (True, None),
        ("", None),
        (None, None),
        ("١٢", None),  # non-ASCII digits
    ],
)
def test_parse_nonce(raw: object, expected: tuple[int, str] | None) -> None:
    """Nonces are unsigned 64-bit integers given as JSON integers or decimal text."""
    assert parse_nonce(raw) == expected


def test_rest_counter_decays_and_rejects_over_the_maximum() -> None:
    """An intermediate key makes 20 calls at once, the 21st is refused, and decay frees room."""
    clock = FakeClock()
    counter = RestRateCounter("intermediate", clock)
    assert all(counter.charge("Balance") for _ in range(20))
    assert not counter.charge("Balance")
    clock.now += 1.0  # 0.5 decays, but the rejected call added 1: 20.5
    assert not counter.charge("Balance")
    clock.now += 10.0  # 21.5 - 5 = 16.5
    assert counter.charge("Balance")
    assert counter.value == pytest.approx(17.5)


def test_rest_counter_costs_and_cap() -> None:
    """TradesHistory costs 2, order entry costs 0, and the counter never exceeds twice the max."""
    assert call_cost("TradesHistory") == 2
    assert call_cost("Ledgers") == 2
    assert call_cost("AddOrder") == 0
    assert call_cost("CancelOrder") == 0
    assert call_cost("CancelAll") == 1
    clock = FakeClock()
    counter = RestRateCounter("starter", clock)
    for _ in range(100):
        counter.charge("TradesHistory")
    assert counter.value == 30
    assert counter.charge("AddOrder")  # order entry is limited by the matching engine instead
    clock.now += (30 - 14) / 0.33 + 0.01  # decays to just under 14: one more call fits
    assert counter.charge("Balance")


def test_lockout_after_repeated_failures_within_the_window() -> None:
    """N failures within the window lock a subject out for the duration; others stay free."""
    clock = FakeClock()
    lockouts = Lockouts(LockoutPolicy(failures=3, within_seconds=10, duration_seconds=60), clock)
    assert not lockouts.record_failure("key:a")
    clock.now += 11  # the first failure leaves the window
    assert not lockouts.record_failure("key:a")
    assert not lockouts.record_failure("key:a")
    assert not lockouts.is_locked("key:a")
    assert lockouts.record_failure("key:a")
    assert lockouts.is_locked("key:a")
    assert not lockouts.is_locked("key:b")
    clock.now += 59
    assert lockouts.is_locked("key:a")
    clock.now += 1
    assert not lockouts.is_locked("key:a")
    assert lockouts.locked_subjects() == []


def test_parse_body_form_json_and_garbage() -> None:
    """Form bodies give strings, JSON bodies keep their types, anything else is refused."""
    assert parse_body("application/x-www-form-urlencoded", b"nonce=1&close[price]=5&a=%20b") == {
        "nonce": "1",
        "close[price]": "5",
        "a": " b",
    }
    assert parse_body("", b"") == {}
    assert parse_body("application/json; charset=utf-8", b'{"nonce": 5, "v": true}') == {
        "nonce": 5,
        "v": True,
    }
    assert parse_body("application/json", b"[1, 2]") is None
    assert parse_body("application/json", b"{not json") is None
    assert parse_body("application/json", b"") is None
    assert parse_body("application/x-www-form-urlencoded", b"\xff\xfe") is None


def test_fault_book_counts_down_and_matches_star() -> None:
    """A fault fires on `count` matching requests; '*' matches every method; -1 never runs out."""
    book = FaultBook()
    book.arm(Fault("AddOrder", FaultKind.BUSY, remaining=2, latency_ms=0))
    book.arm(Fault("*", FaultKind.LATENCY, remaining=-1, latency_ms=5))
    assert book.take("AddOrder") is not None
    first = book.take("AddOrder")
    assert first is not None
    assert first.kind is FaultKind.BUSY
    third = book.take("AddOrder")
    assert third is not None
    assert third.kind is FaultKind.LATENCY
    assert all(book.take("Balance") is not None for _ in range(5))
    assert book.armed() == [{"endpoint": "*", "kind": "latency", "count": -1, "latency_ms": 5.0}]
    book.clear()
    assert book.take("Balance") is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "JSON object"),
        ({"kind": "busy"}, "'endpoint'"),
        ({"endpoint": "AddOrder", "kind": "explode"}, "'kind'"),
        ({"endpoint": "AddOrder", "kind": "busy", "count": 0}, "'count'"),
        ({"endpoint": "AddOrder", "kind": "latency"}, "latency_ms"),
        ({"endpoint": "AddOrder", "kind": "busy", "latency_ms": -1}, "latency_ms"),
        ({"endpoint": "AddOrder", "kind": "busy", "when": 1}, "unknown field"),
        ({"endpoint": "AddOrder", "kind": "busy", "path": "txid"}, "unknown field"),
        ({"endpoint": "OpenOrders", "kind": "mutate", "value": 1}, "needs 'path'"),
        ({"endpoint": "OpenOrders", "kind": "mutate", "path": "open..vol", "value": 1}, "empty"),
        ({"endpoint": "OpenOrders", "kind": "mutate", "path": "open"}, "exactly one"),
        (
            {"endpoint": "OpenOrders", "kind": "mutate", "path": "x", "value": 1, "delete": True},
            "exactly one",
        ),
        ({"endpoint": "OpenOrders", "kind": "mutate", "path": "x", "delete": "yes"}, "'delete'"),
    ],
)
def test_bad_fault_specs_are_refused(payload: object, message: str) -> None:
    """A /sim/fault body that does not describe a fault is refused with the reason."""
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(payload)


ORDERS = {"open": {"O1": {"vol": "1.0", "descr": {"price": "5"}}, "O2": {"vol": "2.0"}}}


@pytest.mark.parametrize(
    ("spec", "changed", "result"),
    [
        (
            {"path": "open.*.vol", "value": "NaN"},
            2,
            {"open": {"O1": {"vol": "NaN", "descr": {"price": "5"}}, "O2": {"vol": "NaN"}}},
        ),
        (
            {"path": "open.O1.descr.price", "value": None},
            1,
            {"open": {"O1": {"vol": "1.0", "descr": {"price": None}}, "O2": {"vol": "2.0"}}},
        ),
        (
            {"path": "open.O2.extra", "value": [1]},
            1,
            {"open": {"O1": {"vol": "1.0", "descr": {"price": "5"}}, "O2": {"vol": "2.0",
                                                                          "extra": [1]}}},
        ),  # fmt: skip
        ({"path": "open.*.vol", "delete": True}, 2,
         {"open": {"O1": {"descr": {"price": "5"}}, "O2": {}}}),  # fmt: skip
        ({"path": "open.O9.vol", "value": "0"}, 0, ORDERS),
        ({"path": "open.*.descr.missing", "delete": True}, 0, ORDERS),
        ({"path": "", "value": "garbage"}, 1, "garbage"),
    ],
)
def test_mutation_sets_or_deletes_what_the_path_reaches(
    spec: dict[str, object], changed: int, result: object
) -> None:
    """A mutate path walks keys and `*` from `result`; a missing last key is added by a set but
    not by a delete; a missing middle key reaches nothing."""
    fault = parse_fault({"endpoint": "OpenOrders", "kind": "mutate", **spec})
    assert fault.mutation is not None
    envelope: dict[str, object] = {"error": [], "result": copy.deepcopy(ORDERS)}
    assert fault.mutation.apply(envelope) == changed
    assert envelope == {"error": [], "result": result}


def test_mutation_walks_lists_by_index_and_star() -> None:
    """On a list, a segment is an index (out of range reaches nothing) or `*` for every item."""
    fault = parse_fault({"endpoint": "AddOrder", "kind": "mutate", "path": "txid.*", "value": ""})
    assert fault.mutation is not None
    envelope: dict[str, object] = {"error": [], "result": {"txid": ["A", "B"]}}
    assert fault.mutation.apply(envelope) == 2
    assert envelope["result"] == {"txid": ["", ""]}
    first = parse_fault({"endpoint": "AddOrder", "kind": "mutate", "path": "txid.0",
                         "delete": True}).mutation  # fmt: skip
    assert first is not None
    assert first.apply(envelope) == 1
    assert envelope["result"] == {"txid": [""]}
    assert first.apply({"error": [], "result": {"txid": []}}) == 0


def test_mutate_fault_is_listed_with_its_spec() -> None:
    """An armed mutate fault shows its path and value (or delete) beside the common fields."""
    book = FaultBook()
    book.arm(parse_fault({"endpoint": "Balance", "kind": "mutate", "path": "ZUSD", "value": "-1"}))
    book.arm(parse_fault({"endpoint": "Balance", "kind": "mutate", "path": "ZUSD",
                          "delete": True, "count": 2}))  # fmt: skip
    assert book.armed() == [
        {"endpoint": "Balance", "kind": "mutate", "count": 1, "latency_ms": 0.0, "path": "ZUSD",
         "value": "-1"},
        {"endpoint": "Balance", "kind": "mutate", "count": 2, "latency_ms": 0.0, "path": "ZUSD",
         "delete": True},
    ]  # fmt: skip
