"""krakenex's API object, with its nonce taken from our store and its secret kept out of sight.

krakenex 2.2.2 (kraken-api.md §7) has no hook for the nonce but `_nonce()`, keeps the secret as a
plain str attribute and signs with `_sign()`. We subclass it to:
- take every nonce from the account's NonceStore, and only while its lock is held
  (`nonce_source` is set by the broker inside `NonceStore.locked()` and reset after);
- hold the decoded secret in an object whose repr is `<SECRET>` (a debugger, a rich traceback
  with locals or a stray `vars(api)` shows nothing), and sign with it;
- point `uri` at the configured base URL (Kraken or the simulator);
- send through `HttpTransport` (urllib3, one kept-alive connection, no retries; see
  transport.py for why not requests) instead of krakenex's requests session.
The object is not thread-safe (one connection); the account lock serializes its use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import krakenex
from krakenex import version as krakenex_version

from copytrader.config.credentials import SECRET_MASK, ApiCredentials, key_hint
from copytrader.kraken.transport import HttpTransport

# What krakenex sends; kept, so Kraken (and the simulator's request log) sees the same client.
USER_AGENT = f"krakenex/{krakenex_version.__version__} (+{krakenex_version.__url__})"


class _SecretBytes:
    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return SECRET_MASK

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets cannot be pickled")


class _KeyStr(str):
    """The API key as krakenex needs it (a str for the header), with a repr that shows a hint."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(key_hint(str.__str__(self)))


_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def no_nonce_outside_the_lock() -> int:
    """The nonce source while no account lock is held: any call fails loudly."""
    raise RuntimeError("a private call must take its nonce inside the account's lock")


def sign(secret: bytes, urlpath: str, data: Mapping[str, Any]) -> str:
    """Kraken's API-Sign: base64(HMAC-SHA512(secret, path + SHA256(nonce + urlencoded body)))."""
    return sign_body(secret, urlpath, str(data["nonce"]), urllib.parse.urlencode(data))


def sign_body(secret: bytes, urlpath: str, nonce: str, body: str) -> str:
    """API-Sign of an already encoded form body (the exact bytes that are sent)."""
    digest = hashlib.sha256((nonce + body).encode()).digest()
    mac = hmac.new(secret, urlpath.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class PublicApi(krakenex.API):  # type: ignore[misc]  # krakenex ships no type information
    """A key-less krakenex.API for public endpoints, sending through our transport."""

    def __init__(self, uri: str, **keys: Any) -> None:
        super().__init__(**keys)
        self.session.close()  # krakenex's requests session is never used
        self.uri = uri.rstrip("/")
        self.transport = HttpTransport(self.uri, user_agent=USER_AGENT)

    def close(self) -> None:
        self.transport.close()

    def _query(
        self,
        urlpath: str,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """krakenex's `_query`: public endpoints by GET with a query string, others by POST."""
        timeout_s = _required_timeout(timeout)
        if "/public/" in urlpath:
            reply = self.transport.get(urlpath, data or {}, headers or {}, timeout_s)
        else:
            body = urllib.parse.urlencode(data or {})
            form = {"Content-Type": _FORM_CONTENT_TYPE, **(headers or {})}
            reply = self.transport.post(urlpath, body, form, timeout_s)
        return reply.json(**self._json_options)


def _required_timeout(timeout: float | None) -> float:
    if timeout is None or timeout <= 0:
        raise ValueError("every Kraken call needs a positive timeout")
    return timeout


class SigningApi(PublicApi):
    """One account's krakenex.API: our nonce source, our signer, our base URL."""

    def __init__(self, credentials: ApiCredentials, *, uri: str, secret: bytes) -> None:
        super().__init__(uri, key=_KeyStr(credentials.key), secret="")
        # krakenex only checks that `secret` is truthy; the real one is `_secret`.
        self.secret = credentials.secret
        self._secret = _SecretBytes(secret)
        self.nonce_source: Callable[[], int] = no_nonce_outside_the_lock

    def __repr__(self) -> str:
        return f"SigningApi(key={key_hint(self.key)!r}, uri={self.uri!r})"

    def _nonce(self) -> int:
        return self.nonce_source()

    def query_private(
        self, method: str, data: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """krakenex's query_private: the same request (form body with the nonce, API-Key,
        API-Sign, POST to /0/private/<method>), with the body urlencoded once and the exact
        bytes that were signed sent."""
        if data is None:
            data = {}
        data["nonce"] = self._nonce()
        urlpath = f"/{self.apiversion}/private/{method}"
        body = urllib.parse.urlencode(data)
        headers = {
            "API-Key": self.key,
            "API-Sign": sign_body(self._secret.value, urlpath, str(data["nonce"]), body),
            "Content-Type": _FORM_CONTENT_TYPE,
        }
        reply = self.transport.post(urlpath, body, headers, _required_timeout(timeout))
        return reply.json(**self._json_options)

    def _sign(self, data: Mapping[str, Any], urlpath: str) -> str:
        return sign(self._secret.value, urlpath, data)


def public_api(uri: str) -> PublicApi:
    """A key-less krakenex.API for public endpoints at this base URL."""
    return PublicApi(uri)
