"""Authentication over HTTP: Kraken's signature example, keys, nonces and the nonce window,
permissions, lockout and the REST counter."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
import requests

from kraken_sim import errors
from tests.sim.conftest import NONCE_WINDOW, SimAccounts, client
from tests.sim.kraken_http import TIMEOUT_S, RawClient, sign
from tests.sim.test_units import (
    JSON_VECTOR_BODY,
    JSON_VECTOR_SIGN,
    VECTOR_BODY,
    VECTOR_SIGN,
)
from tests.simproc import SimProcess

VECTOR_NONCE = 1616492376594


def _errors(response: requests.Response) -> list[str]:
    assert response.status_code == 200
    envelope = response.json()
    result: list[str] = envelope["error"]
    assert ("result" in envelope) == (result == [])
    return result


def _key_nonce(sim: SimProcess, key: str) -> int:
    nonce: int = sim.control("state")["keys"][key]["nonce"]
    return nonce


def test_krakens_documented_example_is_accepted_and_one_changed_character_is_not(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """The documented AddOrder body and API-Sign are accepted as sent; changing one character of
    the body or of the signature gives EAPI:Invalid signature."""
    vector = client(sim, keys.vector)
    sim.control("nonce", {"key": keys.vector.key, "nonce": VECTOR_NONCE - 1})
    nonce = str(VECTOR_NONCE)

    changed_body = VECTOR_BODY.replace(b"volume=1.25", b"volume=1.26")
    reply = vector.post_raw("AddOrder", changed_body, nonce_text=nonce, signature=VECTOR_SIGN)
    assert _errors(reply) == [errors.INVALID_SIGNATURE]
    changed_sign = ("5" if VECTOR_SIGN[0] != "5" else "6") + VECTOR_SIGN[1:]
    reply = vector.post_raw("AddOrder", VECTOR_BODY, nonce_text=nonce, signature=changed_sign)
    assert _errors(reply) == [errors.INVALID_SIGNATURE]
    assert _key_nonce(sim, keys.vector.key) == VECTOR_NONCE - 1  # rejected calls used no nonce

    reply = vector.post_raw("AddOrder", VECTOR_BODY, nonce_text=nonce, signature=VECTOR_SIGN)
    assert _errors(reply) == []
    result = reply.json()["result"]
    assert result["descr"]["order"] == "buy 1.25000000 XBTUSD @ limit 37500.0"
    open_orders = sim.control("state")["accounts"]["vector"]["open_orders"]
    assert list(open_orders) == result["txid"]
    assert _key_nonce(sim, keys.vector.key) == VECTOR_NONCE

    # The very same bytes again are a replay: the nonce is used up.
    reply = vector.post_raw("AddOrder", VECTOR_BODY, nonce_text=nonce, signature=VECTOR_SIGN)
    assert _errors(reply) == [errors.INVALID_NONCE]

    # The JSON form of the example (nonce as a JSON string) is accepted as JSON.
    sim.control("nonce", {"key": keys.vector.key, "nonce": VECTOR_NONCE - 1})
    reply = vector.post_raw(
        "AddOrder",
        JSON_VECTOR_BODY,
        nonce_text=nonce,
        content_type="application/json",
        signature=JSON_VECTOR_SIGN,
    )
    assert _errors(reply) == []
    assert len(sim.control("state")["accounts"]["vector"]["open_orders"]) == 2
    assert vector.call("CancelAll")["result"] == {"count": 2}


def test_signature_covers_path_and_the_raw_body_bytes(sim: SimProcess, keys: SimAccounts) -> None:
    """A body signed for another path, or re-serialized after signing, is refused."""
    misc = client(sim, keys.misc)
    nonce = misc.next_nonce()
    body = json.dumps({"nonce": nonce}).encode()  # '{"nonce": 123}' with a space
    signed_for_other_path = sign(misc.secret, "/0/private/BalanceEx", str(nonce), body)
    reply = misc.post_raw(
        "Balance", body, nonce_text="", content_type="application/json",
        signature=signed_for_other_path,
    )  # fmt: skip
    assert _errors(reply) == [errors.INVALID_SIGNATURE]
    compact = json.dumps({"nonce": nonce}, separators=(",", ":")).encode()
    signed_compact = sign(misc.secret, "/0/private/Balance", str(nonce), compact)
    reply = misc.post_raw(
        "Balance", body, nonce_text="", content_type="application/json", signature=signed_compact
    )
    assert _errors(reply) == [errors.INVALID_SIGNATURE]
    # The same JSON body signed as sent, with the nonce as a JSON integer, is fine.
    reply = misc.post_raw(
        "Balance", body, nonce_text=str(nonce), content_type="application/json; charset=utf-8"
    )
    assert _errors(reply) == []


def test_missing_or_unknown_credentials(sim: SimProcess, keys: SimAccounts) -> None:
    """No API-Key or an unknown one gives EAPI:Invalid key; no or garbled API-Sign gives
    EAPI:Invalid signature."""
    url = f"{sim.url}/0/private/Balance"
    body = f"nonce={int(time.time() * 1000)}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    reply = requests.post(url, data=body, headers=form, timeout=TIMEOUT_S)
    assert _errors(reply) == [errors.INVALID_KEY]
    stranger = RawClient(sim.url, "no-such-key", keys.misc.secret)
    assert stranger.call("Balance")["error"] == [errors.INVALID_KEY]
    headers = {**form, "API-Key": keys.misc.key}
    reply = requests.post(url, data=body, headers=headers, timeout=TIMEOUT_S)
    assert _errors(reply) == [errors.INVALID_SIGNATURE]
    reply = requests.post(
        url, data=body, headers={**headers, "API-Sign": "!!not base64!!"}, timeout=TIMEOUT_S
    )
    assert _errors(reply) == [errors.INVALID_SIGNATURE]
    wrong_secret = RawClient(sim.url, keys.misc.key, keys.window.secret)
    assert wrong_secret.call("Balance")["error"] == [errors.INVALID_SIGNATURE]


@pytest.mark.parametrize("nonce", ["", "abc", "-5", "1.5", str(2**64)])
def test_malformed_nonce_is_invalid_nonce(sim: SimProcess, keys: SimAccounts, nonce: str) -> None:
    """A missing, negative, fractional or over-uint64 nonce gives EAPI:Invalid nonce."""
    misc = client(sim, keys.misc)
    body = b"" if nonce == "" else urllib.parse.urlencode({"nonce": nonce}).encode()
    assert _errors(misc.post_raw("Balance", body, nonce_text=nonce)) == [errors.INVALID_NONCE]


def test_nonce_must_increase_without_a_window(sim: SimProcess, keys: SimAccounts) -> None:
    """Without a nonce window an equal or lower nonce is refused and the mark does not move."""
    misc = client(sim, keys.misc)
    base = misc.next_nonce()
    assert misc.call("Balance", nonce=base)["error"] == []
    assert misc.call("Balance", nonce=base)["error"] == [errors.INVALID_NONCE]
    assert misc.call("Balance", nonce=base - 1)["error"] == [errors.INVALID_NONCE]
    assert _key_nonce(sim, keys.misc.key) == base
    assert misc.call("Balance")["error"] == []


def test_nonce_window_accepts_late_nonces_but_not_replays(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """Inside the key's window a lower unused nonce passes; a replay or an older one does not."""
    window = client(sim, keys.window)
    base = window.next_nonce() + 10 * NONCE_WINDOW  # ahead of any clock-based nonce
    assert window.call("Balance", nonce=base)["error"] == []
    late = base - NONCE_WINDOW // 2
    assert window.call("Balance", nonce=late)["error"] == []
    assert window.call("Balance", nonce=late)["error"] == [errors.INVALID_NONCE]  # replay
    assert window.call("Balance", nonce=base)["error"] == [errors.INVALID_NONCE]  # replay
    edge = base - NONCE_WINDOW
    assert window.call("Balance", nonce=edge)["error"] == []
    assert window.call("Balance", nonce=edge - 1)["error"] == [errors.INVALID_NONCE]
    assert _key_nonce(sim, keys.window.key) == base
    logged = sim.control(f"requests?key={keys.window.key}")["requests"][-6:]
    assert [(entry["nonce"], entry["error"]) for entry in logged] == [
        (str(base), None),
        (str(late), None),
        (str(late), errors.INVALID_NONCE),
        (str(base), errors.INVALID_NONCE),
        (str(edge), None),
        (str(edge - 1), errors.INVALID_NONCE),
    ]


def test_nonce_control_makes_the_exchange_remember_a_higher_nonce(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """After POST /sim/nonce a client whose nonces are below that mark gets EAPI:Invalid nonce."""
    misc = client(sim, keys.misc)
    future = misc.next_nonce() + 3_600_000
    before = sim.control("state")["counters"]["invalid_nonce"]
    assert sim.control("nonce", {"key": keys.misc.key, "nonce": future}) == {"ok": True}
    assert misc.call("Balance")["error"] == [errors.INVALID_NONCE]
    assert sim.control("state")["counters"]["invalid_nonce"] == before + 1
    assert misc.call("Balance", nonce=future + 1)["error"] == []
    sim.control("nonce", {"key": keys.misc.key, "nonce": misc.next_nonce()})


def test_permissions_per_key(sim: SimProcess, keys: SimAccounts) -> None:
    """Each key may call only what its permissions allow; cancelling needs cancel or create."""
    denied = [errors.PERMISSION_DENIED]
    nothing = client(sim, keys.no_rights)
    for method in ("Balance", "BalanceEx", "TradeBalance", "OpenOrders", "ClosedOrders",
                   "TradesHistory", "CancelAll", "GetWebSocketsToken"):  # fmt: skip
        assert nothing.call(method)["error"] == denied, method
    assert nothing.call("QueryOrders", txid="OAAAAA-AAAAA-AAAAAA")["error"] == denied
    assert nothing.call("AddOrder", pair="XBTUSD")["error"] == denied
    assert nothing.call("CancelOrder", txid="OAAAAA-AAAAA-AAAAAA")["error"] == denied
    before = _key_nonce(sim, keys.no_rights.key)
    assert nothing.call("Balance")["error"] == denied
    assert _key_nonce(sim, keys.no_rights.key) > before  # the nonce was used all the same

    funds = client(sim, keys.funds_only)
    assert funds.call("BalanceEx")["error"] == []
    assert funds.call("OpenOrders")["error"] == denied
    assert funds.call("AddOrder", pair="XBTUSD")["error"] == denied

    cancel = client(sim, keys.cancel_only)
    assert cancel.call("CancelAll")["error"] == []
    assert cancel.call("CancelOrder", txid="OAAAAA-AAAAA-AAAAAA")["error"] == [errors.UNKNOWN_ORDER]
    assert cancel.call("AddOrder", pair="XBTUSD")["error"] == denied


def test_websocket_token(sim: SimProcess, keys: SimAccounts) -> None:
    """GetWebSocketsToken answers a fresh token valid for 900 seconds."""
    misc = client(sim, keys.misc)
    first = misc.call("GetWebSocketsToken")["result"]
    second = misc.call("GetWebSocketsToken")["result"]
    assert first["expires"] == 900
    assert isinstance(first["token"], str)
    assert len(first["token"]) >= 40
    assert first["token"] != second["token"]


def test_repeated_bad_signatures_lock_the_key_out_for_a_while(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """Five bad signatures within a minute lock the key out (even correct calls are refused)
    for three minutes; other keys are not affected."""
    locky = client(sim, keys.locky)
    forged = RawClient(sim.url, keys.locky.key, keys.misc.secret)
    for _ in range(5):
        assert forged.call("Balance")["error"] == [errors.INVALID_SIGNATURE]
    assert locky.call("Balance")["error"] == [errors.TEMPORARY_LOCKOUT]
    assert forged.call("Balance")["error"] == [errors.TEMPORARY_LOCKOUT]
    assert sim.control("state")["keys"][keys.locky.key]["locked_out"] is True
    assert client(sim, keys.misc).call("Balance")["error"] == []
    sim.control("clock", {"advance_s": 170})
    assert locky.call("Balance")["error"] == [errors.TEMPORARY_LOCKOUT]
    sim.control("clock", {"advance_s": 11})
    assert locky.call("Balance")["error"] == []


def test_repeated_bad_nonces_lock_the_key_out(sim: SimProcess, keys: SimAccounts) -> None:
    """Invalid nonces count towards the lockout like bad signatures."""
    locky = client(sim, keys.locky)
    used = locky.next_nonce()
    assert locky.call("Balance", nonce=used)["error"] == []
    for _ in range(5):
        assert locky.call("Balance", nonce=used)["error"] == [errors.INVALID_NONCE]
    assert locky.call("Balance")["error"] == [errors.TEMPORARY_LOCKOUT]


def test_repeated_unknown_keys_lock_out_unknown_keys_from_that_source(
    sim: SimProcess, keys: SimAccounts
) -> None:
    """After five unknown keys from one address the sixth gets EGeneral:Temporary lockout;
    valid keys from that address keep working."""
    for attempt in range(5):
        stranger = RawClient(sim.url, f"stranger-{attempt}", keys.misc.secret)
        assert stranger.call("Balance")["error"] == [errors.INVALID_KEY]
    stranger = RawClient(sim.url, "stranger-5", keys.misc.secret)
    assert stranger.call("Balance")["error"] == [errors.TEMPORARY_LOCKOUT]
    assert client(sim, keys.misc).call("Balance")["error"] == []


def test_rest_counter_limits_a_starter_key(sim: SimProcess, keys: SimAccounts) -> None:
    """A starter key gets 15 counted calls at once; then EAPI:Rate limit exceeded, while AddOrder
    (not on this counter) still goes through; after the decay it may call again."""
    sim.control("clock", {"advance_s": 60})  # whatever earlier tests spent has decayed
    starter = client(sim, keys.starter)
    replies = [starter.call("Balance")["error"] for _ in range(16)]
    assert replies[:15] == [[]] * 15
    assert replies[15] == [errors.RATE_LIMIT]
    assert starter.call("TradesHistory")["error"] == [errors.RATE_LIMIT]
    order = starter.call(
        "AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="50000",
        volume="0.001", validate="true",
    )  # fmt: skip
    assert order["error"] == []
    assert "txid" not in order["result"]
    counter = sim.control("state")["keys"][keys.starter.key]["rate_counter"]
    assert counter > 15
    sim.control("clock", {"advance_s": 60})
    assert starter.call("Balance")["error"] == []
