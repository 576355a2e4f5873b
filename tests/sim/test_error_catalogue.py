"""Every error string in sim/errors.py is produced by a real request over HTTP, worded exactly,
inside Kraken's envelope. A new constant without a trigger here fails the suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from kraken_sim import errors
from tests.sim.conftest import SimAccounts, client
from tests.sim.kraken_http import TIMEOUT_S, RawClient
from tests.simproc import SimProcess

Trigger = Callable[[SimProcess, SimAccounts], list[str]]

LIMIT: dict[str, Any] = {
    "pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.001",
}  # fmt: skip
SERVER_MAX_TRIES = 100


def _poor_order(**changes: Any) -> Trigger:
    def trigger(sim: SimProcess, keys: SimAccounts) -> list[str]:
        reply: list[str] = client(sim, keys.poor).call("AddOrder", **{**LIMIT, **changes})["error"]
        return reply

    return trigger


def _public(method: str, **params: Any) -> Trigger:
    def trigger(sim: SimProcess, keys: SimAccounts) -> list[str]:
        reply = requests.get(f"{sim.url}/0/public/{method}", params=params, timeout=TIMEOUT_S)
        assert reply.status_code == 200
        found: list[str] = reply.json()["error"]
        return found

    return trigger


def _fault(kind: str) -> Trigger:
    def trigger(sim: SimProcess, keys: SimAccounts) -> list[str]:
        sim.control("fault", {"endpoint": "Balance", "kind": kind})
        found: list[str] = client(sim, keys.misc).call("Balance")["error"]
        return found

    return trigger


def _until(call: Callable[[], list[str]], wanted: str) -> list[str]:
    """Repeat a call until it fails with `wanted` (or something else goes wrong)."""
    for _ in range(SERVER_MAX_TRIES):
        found = call()
        if found:
            return found
    return ["never failed"]


def _rest_rate_limit(sim: SimProcess, keys: SimAccounts) -> list[str]:
    sim.control("clock", {"advance_s": 60})
    starter = client(sim, keys.starter)
    return _until(lambda: starter.call("Balance")["error"], errors.RATE_LIMIT)


def _order_rate_limit(sim: SimProcess, keys: SimAccounts) -> list[str]:
    hasty = client(sim, keys.hasty)
    # Too small to place, but Kraken charges the matching-engine counter on receipt anyway.
    tiny = {**LIMIT, "volume": "0.000001"}

    def add() -> list[str]:
        found: list[str] = hasty.call("AddOrder", **tiny)["error"]
        return [] if found == [errors.ORDER_MINIMUM] else found

    return _until(add, errors.ORDER_RATE_LIMIT)


def _orders_limit(sim: SimProcess, keys: SimAccounts) -> list[str]:
    crowded = client(sim, keys.crowded)
    resting = {**LIMIT, "price": "40000", "volume": "0.0001"}
    for _ in range(60):  # the starter tier's open orders per pair
        assert crowded.call("AddOrder", **resting)["error"] == []
    sim.control("clock", {"advance_s": 10})  # let the matching-engine counter decay a little
    found: list[str] = crowded.call("AddOrder", **resting)["error"]
    assert crowded.call("CancelAll")["result"] == {"count": 60}
    return found


def _duplicate_cl_ord_id(sim: SimProcess, keys: SimAccounts) -> list[str]:
    misc = client(sim, keys.misc)
    assert misc.call("AddOrder", **LIMIT, cl_ord_id="dup-1")["error"] == []
    found: list[str] = misc.call("AddOrder", **LIMIT, cl_ord_id="dup-1")["error"]
    assert misc.call("CancelOrder", cl_ord_id="dup-1")["result"] == {"count": 1}
    return found


def _post_only_amend(sim: SimProcess, keys: SimAccounts) -> list[str]:
    misc = client(sim, keys.misc)
    txid = misc.call("AddOrder", **LIMIT, oflags="post")["result"]["txid"][0]
    found: list[str] = misc.call("AmendOrder", txid=txid, limit_price="1000000")["error"]
    assert misc.call("CancelOrder", txid=txid)["result"] == {"count": 1}
    return found


def _lockout(sim: SimProcess, keys: SimAccounts) -> list[str]:
    forged = RawClient(sim.url, keys.locky.key, keys.misc.secret)
    for _ in range(5):
        assert forged.call("Balance")["error"] == [errors.INVALID_SIGNATURE]
    found: list[str] = client(sim, keys.locky).call("Balance")["error"]
    return found


def _bad_request(sim: SimProcess, keys: SimAccounts) -> list[str]:
    reply = client(sim, keys.misc).post_raw(
        "Balance", b"{nonce", nonce_text="", content_type="application/json"
    )
    found: list[str] = reply.json()["error"]
    return found


def _price_off_tick(sim: SimProcess, keys: SimAccounts) -> list[str]:
    """Kraken's AddOrder names the decimals (errors.price_precision); the simulator's own price
    control still answers with the tick-size check."""
    reply = requests.post(
        f"{sim.url}/sim/price", json={"pair": "XBTUSD", "price": "50000.01"}, timeout=TIMEOUT_S
    )
    assert reply.status_code == 400
    return [reply.json()["error"]]


TRIGGERS: dict[str, Trigger] = {
    "INVALID_KEY": lambda sim, keys: RawClient(sim.url, "who-knows", keys.misc.secret).call(
        "Balance"
    )["error"],
    "INVALID_SIGNATURE": lambda sim, keys: RawClient(sim.url, keys.misc.key, keys.poor.secret).call(
        "Balance"
    )["error"],
    "INVALID_NONCE": lambda sim, keys: client(sim, keys.misc).call("Balance", nonce=1)["error"],
    "RATE_LIMIT": _rest_rate_limit,
    "BAD_REQUEST": _bad_request,
    "PERMISSION_DENIED": lambda sim, keys: client(sim, keys.no_rights).call("Balance")["error"],
    "TEMPORARY_LOCKOUT": _lockout,
    "UNKNOWN_METHOD": lambda sim, keys: client(sim, keys.misc).call("Withdraw")["error"],
    "INTERNAL_ERROR": _fault("internal"),
    "SERVICE_UNAVAILABLE": _fault("unavailable"),
    "SERVICE_BUSY": _fault("busy"),
    "INVALID_ARGUMENTS": _poor_order(volume="x"),
    "UNKNOWN_ASSET_PAIR": _public("Ticker", pair="NOPE"),
    "UNKNOWN_ASSET": _public("Assets", asset="NOPE"),
    "INSUFFICIENT_FUNDS": _poor_order(volume="0.01"),
    "ORDER_MINIMUM": _poor_order(volume="0.00001"),
    "COST_MINIMUM": _poor_order(volume="0.00005", price="100"),
    "TICK_SIZE": _price_off_tick,
    "DEADLINE_ELAPSED": _poor_order(deadline="2000-01-01T00:00:00Z"),
    "INVALID_PRICE": _poor_order(price="0"),
    "INVALID_ORDER": _poor_order(ordertype="iceberg"),
    "UNKNOWN_ORDER": lambda sim, keys: client(sim, keys.misc).call(
        "CancelOrder", txid="OAAAAA-AAAAA-AAAAAA"
    )["error"],
    "ORDER_RATE_LIMIT": _order_rate_limit,
    "ORDERS_LIMIT": _orders_limit,
    "DUPLICATE_CL_ORD_ID": _duplicate_cl_ord_id,
    "POST_ONLY_REJECTED": _post_only_amend,
}

ALL_CONSTANTS = sorted(
    name for name in vars(errors) if name.isupper() and isinstance(getattr(errors, name), str)
)


@pytest.mark.parametrize("name", ALL_CONSTANTS)
def test_every_error_string_is_produced_over_http(
    name: str, sim: SimProcess, keys: SimAccounts
) -> None:
    """The request in TRIGGERS gets exactly this Kraken error string (with a field for
    EGeneral:Invalid arguments), as the only entry of the envelope's `error`."""
    expected = getattr(errors, name)
    assert name in TRIGGERS, f"no test produces errors.{name} ({expected!r}): add a trigger"
    produced = TRIGGERS[name](sim, keys)
    if name == "INVALID_ARGUMENTS":
        assert produced == [errors.invalid_arguments("volume")]
    else:
        assert produced == [expected]


def test_trigger_table_has_no_stale_entries() -> None:
    """Every trigger names a constant that still exists in sim/errors.py."""
    assert set(TRIGGERS) <= set(ALL_CONSTANTS)
