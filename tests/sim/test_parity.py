"""The in-process exchange and the HTTP server answer one sequence of calls identically: the same
statuses, content types, bodies (times aside), exceptions and end state, for successes, errors,
wrong verbs, unknown paths and faults (both over HTTP and in-process)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
import requests

from kraken_sim.inprocess import InProcessExchange
from tests.sim.conftest import BASE_URL, Key
from tests.sim.kraken_http import RawClient
from tests.simproc import new_secret, running_sim

SEED = "11"
KEY = Key("parity", "parity-key", new_secret())
ACCOUNTS = (
    f'[[accounts]]\nname = "{KEY.account}"\nkey = "{KEY.key}"\nsecret = "{KEY.secret}"\n'
    'tier = "pro"\nbalances = { ZUSD = "100000", XXBT = "1" }\n'
    '[prices]\nXXBTZUSD = "60000"\n'
)
# Values that follow the clock or the client's nonce differ between two runs by nature.
VOLATILE = {"unixtime", "rfc1123", "opentm", "closetm", "time", "nonce", "clock_offset_s"}
LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.01"}

Control = Callable[[str, dict[str, Any] | None], Any]


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<volatile>" if k in VOLATILE else _steady(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_steady(item) for item in value]
    return value


class Recorder:
    """Sends the scenario's requests and writes down everything a client could observe."""

    def __init__(self, base_url: str, session: requests.Session, control: Control) -> None:
        self.base_url = base_url
        self.raw = RawClient(base_url, KEY.key, KEY.secret, session=session)
        self.control = control
        self.seen: list[tuple[str, object]] = []

    def _observe(self, label: str, send: Callable[[], requests.Response]) -> None:
        try:
            response = send()
        except requests.RequestException as exc:
            self.seen.append((label, ("raised", type(exc).__name__)))
            return
        content_type = response.headers.get("Content-Type", "")
        body: object = (
            _steady(response.json()) if content_type.startswith("application/json")
            else response.text
        )  # fmt: skip
        self.seen.append((label, (response.status_code, response.reason, content_type, body)))

    def get(self, label: str, path: str) -> None:
        url = self.base_url + path
        self._observe(label, lambda: self.raw.session.get(url, timeout=5))

    def post(self, label: str, path: str, payload: dict[str, Any] | None = None) -> None:
        url = self.base_url + path
        self._observe(label, lambda: self.raw.session.post(url, json=payload, timeout=5))

    def private(self, label: str, method: str, **params: Any) -> None:
        nonce = self.raw.next_nonce()
        body = urllib.parse.urlencode({"nonce": nonce, **params}).encode()
        self._observe(label, lambda: self.raw.post_raw(method, body, nonce_text=str(nonce)))

    def fault(self, spec: dict[str, Any]) -> None:
        self.control("fault", spec)


def _scenario(run: Recorder) -> list[tuple[str, object]]:
    run.get("time", "/0/public/Time")
    run.get("pair", "/0/public/AssetPairs?pair=XBTUSD")
    run.get("ticker", "/0/public/Ticker?pair=XBTUSD&pair=ETHUSD")
    run.get("unknown pair", "/0/public/Ticker?pair=NOPE")
    run.post("public by POST", "/0/public/Time")
    run.get("private by GET", "/0/private/Balance")
    run.get("unknown path", "/0/public/Time/more")
    run.private("unknown private method", "Nothing")
    run.private("balance", "Balance")
    run.private("limit", "AddOrder", **LIMIT, cl_ord_id="par-1")
    run.private("too big", "AddOrder", **{**LIMIT, "volume": "1000"})
    run.private("open", "OpenOrders")
    run.fault({"endpoint": "Balance", "kind": "busy"})
    run.private("busy", "Balance")
    run.fault({"endpoint": "AddOrder", "kind": "http502"})
    run.private("502", "AddOrder", **LIMIT)
    run.fault({"endpoint": "Time", "kind": "http520"})
    run.get("520", "/0/public/Time")
    run.fault({"endpoint": "OpenOrders", "kind": "mutate", "path": "open.*.vol", "value": "NaN"})
    run.private("mutated", "OpenOrders")
    run.fault({"endpoint": "Balance", "kind": "mutate", "path": "ZUSD", "delete": True})
    run.private("mutated balance", "Balance")
    run.fault({"endpoint": "AddOrder", "kind": "error_string", "count": 2})
    run.private("error string ok", "AddOrder", **LIMIT, cl_ord_id="par-2")
    run.private("error string refused", "AddOrder", **{**LIMIT, "volume": "1000"})
    run.fault({"endpoint": "Balance", "kind": "bad_reply"})
    run.private("bad reply", "Balance")
    run.fault({"endpoint": "AddOrder", "kind": "drop_reply"})
    run.private("dropped", "AddOrder", **LIMIT, cl_ord_id="par-3")
    run.fault({"endpoint": "Balance", "kind": "refused"})
    run.private("refused", "Balance")
    run.post("bad control", "/sim/fault", {"endpoint": "AddOrder", "kind": "explode"})
    run.get("unknown control", "/sim/nothing")
    run.post("price", "/sim/price", {"pair": "XXBTZUSD", "price": "49000"})
    run.private("closed", "ClosedOrders")
    state = run.control("state", None)
    requests_log = run.control(f"requests?key={KEY.key}", None)
    return [
        *run.seen,
        ("accounts", _steady(state["accounts"])),
        ("counters", state["counters"]),
        ("log", _steady(requests_log)),
    ]


@pytest.fixture(scope="module")
def over_http() -> list[tuple[str, object]]:
    with running_sim(ACCOUNTS, "--seed", SEED) as sim:
        return _scenario(Recorder(sim.url, requests.Session(), sim.control))


def test_in_process_answers_exactly_as_the_http_server(
    over_http: list[tuple[str, object]],
) -> None:
    """Step by step, the in-process exchange (same accounts, same seed) gives what a client of
    the HTTP server saw: statuses, reasons, content types, bodies and exceptions."""
    exchange = InProcessExchange(ACCOUNTS, seed=int(SEED))
    in_process = _scenario(Recorder(BASE_URL, exchange.session(), exchange.control))
    assert [label for label, _ in in_process] == [label for label, _ in over_http]
    for (label, expected), (_, got) in zip(over_http, in_process, strict=True):
        assert got == expected, label


def test_the_scenario_covers_what_it_claims(over_http: list[tuple[str, object]]) -> None:
    """The recorded run really contains an error, faults of each delivery and a fill, so the
    comparison above is not between two empty runs."""
    seen = dict(over_http)
    assert seen["too big"] == (200, "OK", "application/json; charset=utf-8",
                               {"error": ["EOrder:Insufficient funds"]})  # fmt: skip
    assert seen["public by POST"][:2] == (405, "Method Not Allowed")  # type: ignore[index]
    assert seen["502"][:2] == (502, "Bad Gateway")  # type: ignore[index]
    assert seen["dropped"] == ("raised", "ConnectionError")
    assert seen["refused"] == ("raised", "ConnectionError")
    mutated = seen["mutated"][3]  # type: ignore[index]
    assert [order["vol"] for order in mutated["result"]["open"].values()] == ["NaN"]
    assert seen["error string ok"][3]["error"] == ""  # type: ignore[index]
    closed = seen["closed"][3]["result"]["closed"]  # type: ignore[index]
    assert sorted(order["cl_ord_id"] for order in closed.values()) == ["par-1", "par-2", "par-3"]
    assert json.dumps(seen["accounts"]).count('"open_orders": {}') == 1
