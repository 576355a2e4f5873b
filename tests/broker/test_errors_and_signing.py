"""The error table, transport failures, Kraken's signature vector and credential masking."""

from __future__ import annotations

import pickle

import pytest

from copytrader.config.credentials import ApiCredentials, SecretStr
from copytrader.errors import (
    AccountUnusableError,
    KrakenError,
    NonceRejectedError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryLaterError,
)
from copytrader.kraken.errors import (
    class_for,
    error_from_strings,
    error_from_transport,
    throttled_until,
)
from copytrader.kraken.signing import sign
from copytrader.kraken.transport import HttpStatusError, NoReplyError, NotSentError, TransportError

# Kraken's documented example (reference kraken-api.md §1).
VECTOR_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
VECTOR_SIGN = (
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)


def test_signature_matches_krakens_documented_example() -> None:
    """Our signer reproduces the API-Sign of Kraken's AddOrder example."""
    data = {
        "nonce": "1616492376594",
        "ordertype": "limit",
        "pair": "XBTUSD",
        "price": "37500",
        "type": "buy",
        "volume": "1.25",
    }
    secret = ApiCredentials("key", VECTOR_SECRET).decoded_secret()
    assert sign(secret, "/0/private/AddOrder", data) == VECTOR_SIGN


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


@pytest.mark.parametrize(
    ("exc", "is_write", "cls"),
    [
        (NoReplyError("no reply (ReadTimeoutError)", timed_out=True), False, RetryLaterError),
        (NoReplyError("no reply (ReadTimeoutError)", timed_out=True), True, OutcomeUnknownError),
        (NotSentError("connection failed (NewConnectionError)"), True, RetryLaterError),
        (NoReplyError("no reply (ProtocolError)", timed_out=False), True, OutcomeUnknownError),
        (NoReplyError("no reply (ProtocolError)", timed_out=False), False, RetryLaterError),
        (HttpStatusError(502), True, OutcomeUnknownError),
        (HttpStatusError(520), True, OutcomeUnknownError),
        (HttpStatusError(503), False, RetryLaterError),
        (HttpStatusError(429), True, RateLimitedError),
        (HttpStatusError(404), False, KrakenError),
        (ValueError("not json"), True, OutcomeUnknownError),
    ],
)
def test_transport_failures(
    exc: TransportError | ValueError, is_write: bool, cls: type[KrakenError]
) -> None:
    """A lost reply is 'retry later' for reads but 'outcome unknown' for writes, unless unsent."""
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
