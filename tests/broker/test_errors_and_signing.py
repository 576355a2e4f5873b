"""The error table, transport failures, Kraken's signature vector and credential masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import urllib3

from copytrader.config.credentials import ApiCredentials, SecretStr
from copytrader.domain import OrderType, Side
from copytrader.errors import (
    AccountUnusableError,
    BadReplyError,
    KrakenError,
    NonceRejectedError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryLaterError,
)
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.errors import (
    class_for,
    error_from_strings,
    error_from_transport,
    throttled_until,
)
from copytrader.kraken.models import OrderRequest
from tests.broker.scripted import SCRIPTED_URL, ScriptedTransport, reply

# Kraken's documented example (reference kraken-api.md §1).
VECTOR_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
VECTOR_SIGN = (
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)


def kraken_sign(secret_b64: str, urlpath: str, nonce: str, body: str) -> str:
    """Kraken's API-Sign, written from its documentation (independent of krakenex):
    base64(HMAC-SHA512(base64-decoded secret, path + SHA256(nonce + body)))."""
    digest = hashlib.sha256((nonce + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret_b64), urlpath.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def test_the_reference_signature_matches_krakens_documented_example() -> None:
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert kraken_sign(VECTOR_SECRET, "/0/private/AddOrder", "1616492376594", body) == VECTOR_SIGN


def test_the_broker_sends_krakens_signature_of_the_exact_body(tmp_path: Path) -> None:
    """The API-Sign krakenex sends for our AddOrder is Kraken's signature of the body sent."""
    transport = ScriptedTransport(lambda _: reply({"txid": ["OABC"], "descr": {"order": "x"}}))
    broker = KrakenBroker(
        "MASTER",
        ApiCredentials("key", VECTOR_SECRET),
        api_url=SCRIPTED_URL,
        data_dir=tmp_path,
        transport=transport,
        client_rate_limit=False,
    )
    order = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("1.25"), price=Decimal("37500"), userref=7,
    )  # fmt: skip
    assert broker.add_order(order).txids == ("OABC",)
    (call,) = transport.calls
    assert call.fields == {**order.to_params(), "nonce": call.fields["nonce"]}
    assert call.headers["API-Key"] == "key"
    expected = kraken_sign(VECTOR_SECRET, call.path, call.fields["nonce"], call.body)
    assert call.headers["API-Sign"] == expected


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ("EService:Unavailable", RetryLaterError),
        ("EService:Busy", RetryLaterError),
        ("EGeneral:Internal error", RetryLaterError),
        ("EGeneral:Internal error:1234", RetryLaterError),
        ("EDatabase:Internal error", RetryLaterError),
        ("EDatabase:Something new", RetryLaterError),
        ("EService:Deadline elapsed", RetryLaterError),
        ("EAPI:Invalid nonce", NonceRejectedError),
        ("EAPI:Rate limit exceeded", RateLimitedError),
        ("EOrder:Rate limit exceeded", RateLimitedError),
        ("EService: Throttled: 1700000000", RateLimitedError),
        ("EAPI:Invalid key", AccountUnusableError),
        ("EAPI:Invalid signature", AccountUnusableError),
        ("EGeneral:Permission denied", AccountUnusableError),
        ("EGeneral:Temporary lockout", AccountUnusableError),
        ("EOrder:Insufficient funds", OrderRejectedError),
        ("EOrder:Order minimum not met", OrderRejectedError),
        ("EOrder:Cost minimum not met", OrderRejectedError),
        ("EOrder:Tick size check failed", OrderRejectedError),
        ("EGeneral:Invalid arguments", OrderRejectedError),
        ("EGeneral:Invalid arguments:volume", OrderRejectedError),
        ("EOrder:Invalid price:Invalid price argument", OrderRejectedError),
        ("EOrder:Invalid order", OrderRejectedError),
        ("EOrder:Unknown order", OrderRejectedError),
        ("EOrder:Orders limit exceeded", OrderRejectedError),
        ("EQuery:Unknown asset pair", OrderRejectedError),
        ("EGeneral:Unknown method", KrakenError),
        ("EAPI:Bad request", KrakenError),
        ("ESomething:Never seen", KrakenError),
        ("EService", KrakenError),
    ],
)
def test_error_table(error: str, cls: type[KrakenError]) -> None:
    """Every documented string maps to the class saying what to do; unknown ones to the base."""
    assert class_for(error) is cls


def test_reply_errors_name_account_and_method_and_keep_strings() -> None:
    """The exception names the account and call, keeps Kraken's strings, and skips warnings."""
    error = error_from_strings(
        ["WGeneral:Danger", "EOrder:Insufficient funds"], account="USER:ann", method="AddOrder"
    )
    assert isinstance(error, OrderRejectedError)
    assert str(error) == "[USER:ann] AddOrder: EOrder:Insufficient funds"
    assert error.errors == ("EOrder:Insufficient funds",)
    assert error.account == "USER:ann"


def test_the_most_demanding_string_wins() -> None:
    """A reply carrying several strings raises the class that asks most of the caller."""
    error = error_from_strings(
        ["EService:Unavailable", "EGeneral:Temporary lockout"], account="MASTER", method="Balance"
    )
    assert isinstance(error, AccountUnusableError)


def test_order_rate_limit_names_the_pair_rest_limit_does_not() -> None:
    """EOrder:Rate limit exceeded carries the pair; the REST counter's error does not."""
    engine = error_from_strings(
        ["EOrder:Rate limit exceeded"], account="MASTER", method="AddOrder", pair="XBTUSD"
    )
    rest = error_from_strings(
        ["EAPI:Rate limit exceeded"], account="MASTER", method="Balance", pair="XBTUSD"
    )
    assert isinstance(engine, RateLimitedError)
    assert isinstance(rest, RateLimitedError)
    assert (engine.pair, rest.pair) == ("XBTUSD", "")


def test_throttle_deadline_is_read() -> None:
    """`EService: Throttled: <ts>` tells when to come back."""
    error = error_from_strings(
        ["EService: Throttled: 1700000123"], account="MASTER", method="Balance"
    )
    assert throttled_until(error) == 1700000123
    assert throttled_until(KrakenError("x")) is None


def _http_error(status: int) -> requests.HTTPError:
    """What krakenex raises for a reply whose status is not 200/201/202."""
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


def _maybe_received(inner: BaseException) -> requests.ConnectionError:
    return requests.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", inner))


def _refused() -> requests.ConnectionError:
    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", refused))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "is_write", "cls"),
    [
        (requests.ReadTimeout("read timed out"), False, RetryLaterError),
        (requests.ReadTimeout("read timed out"), True, OutcomeUnknownError),
        (requests.ConnectTimeout("connect timed out"), True, RetryLaterError),
        (_refused(), True, RetryLaterError),
        (requests.exceptions.ProxyError("proxy refused"), True, RetryLaterError),
        (_maybe_received(ConnectionResetError()), True, OutcomeUnknownError),
        (_maybe_received(ConnectionResetError()), False, RetryLaterError),
        (requests.exceptions.ChunkedEncodingError("cut"), True, OutcomeUnknownError),
        (requests.exceptions.SSLError("bad record mac"), True, OutcomeUnknownError),
        (_http_error(502), True, OutcomeUnknownError),
        (_http_error(520), True, OutcomeUnknownError),
        (_http_error(503), False, RetryLaterError),
        (_http_error(429), True, RateLimitedError),
        (_http_error(404), False, KrakenError),
        (ValueError("not json"), True, OutcomeUnknownError),
        (ValueError("not json"), False, BadReplyError),
    ],
)
def test_transport_failures(exc: Exception, is_write: bool, cls: type[KrakenError]) -> None:
    """A lost reply is 'retry later' for reads but 'outcome unknown' for writes, unless it is
    known not to have been sent; an SSL error outside the handshake counts as maybe received."""
    error = error_from_transport(
        exc, account="MASTER", method="AddOrder", is_write=is_write, timeout_s=10
    )
    assert type(error) is cls
    assert str(error).startswith("[MASTER] AddOrder: ")


def test_credentials_never_print_the_secret_or_full_key() -> None:
    """repr/str/format of credentials show a key prefix and <SECRET>, and refuse pickling."""
    key = "abcdEFGHijklMNOPqrstUVWXyz0123456789abcdEFGHijklMNOPqrst"
    secret = "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1wcmludA=="
    credentials = ApiCredentials(key, secret)
    for text in (repr(credentials), str(credentials), f"{credentials}", f"{credentials.secret}"):
        assert secret not in text
        assert key not in text
    assert repr(credentials) == "ApiCredentials(key='abcd…', secret=<SECRET>)"
    assert credentials.secret.get_secret_value() == secret
    assert credentials == ApiCredentials(key, SecretStr(secret))
    with pytest.raises(TypeError):
        pickle.dumps(credentials)


def test_malformed_secret_error_does_not_echo_it() -> None:
    """A secret that is not base64 is reported without showing it."""
    secret = "not base64 at all, but secret!"
    with pytest.raises(ValueError, match="not valid base64") as caught:
        ApiCredentials("abcdefgh", secret).decoded_secret()
    assert secret not in str(caught.value)
