"""krakenex's API object, with its nonce taken from our store and its secret kept out of sight.

krakenex 2.2.2 (kraken-api.md §7) has no hook for the nonce but `_nonce()`, keeps the secret as a
plain str attribute and signs with `_sign()`. We subclass it to:
- take every nonce from the account's NonceStore, and only while its lock is held
  (`nonce_source` is set by the broker inside `NonceStore.locked()` and reset after);
- hold the decoded secret in an object whose repr is `<SECRET>` (a debugger, a rich traceback
  with locals or a stray `vars(api)` shows nothing), and sign with it;
- point `uri` at the configured base URL (Kraken or the simulator);
- read the environment's HTTP settings once, not on every call (`pin_environment`).
The object is not thread-safe (krakenex keeps the last `response` on it); the account lock
serializes its use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import krakenex
import requests

from copytrader.kraken.credentials import SECRET_MASK, ApiCredentials, key_hint


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


def pin_environment(session: requests.Session, url: str) -> None:
    """Take the environment's proxy and CA-bundle settings for `url` once; stop reading it per call.

    With `trust_env` (requests' default) every request scans the whole environment (proxies,
    NO_PROXY, CA bundles) and looks for a ~/.netrc. The daemon's environment holds two
    credential variables per user, so with 100 users that scan was about half of a call's CPU.
    Here `merge_environment_settings` resolves the same settings once for our one base URL
    (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY with NO_PROXY applied to this host, REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE), so an operator's proxy still works; changing them needs a restart, like
    every other setting. It is requests (via urllib.request.getproxies) that reads os.environ
    here, not our code: config.py stays the only module of ours that does. Not kept: netrc
    credentials, which requests would send as HTTP Basic auth; Kraken authenticates by the
    API-Key/API-Sign headers alone, so there is nothing to send.
    """
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies = dict(settings["proxies"] or {})
    session.verify = settings["verify"]
    session.trust_env = False


def sign(secret: bytes, urlpath: str, data: Mapping[str, Any]) -> str:
    """Kraken's API-Sign: base64(HMAC-SHA512(secret, path + SHA256(nonce + urlencoded body)))."""
    return sign_body(secret, urlpath, str(data["nonce"]), urllib.parse.urlencode(data))


def sign_body(secret: bytes, urlpath: str, nonce: str, body: str) -> str:
    """API-Sign of an already encoded form body (the exact bytes that are sent)."""
    digest = hashlib.sha256((nonce + body).encode()).digest()
    mac = hmac.new(secret, urlpath.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class SigningApi(krakenex.API):  # type: ignore[misc]  # krakenex ships no type information
    """One account's krakenex.API: our nonce source, our signer, our base URL."""

    def __init__(self, credentials: ApiCredentials, *, uri: str, secret: bytes) -> None:
        super().__init__(key=_KeyStr(credentials.key), secret="")
        # krakenex only checks that `secret` is truthy; the real one is `_secret`.
        self.secret = credentials.secret
        self._secret = _SecretBytes(secret)
        self.uri = uri.rstrip("/")
        pin_environment(self.session, self.uri)
        self.nonce_source: Callable[[], int] = no_nonce_outside_the_lock

    def __repr__(self) -> str:
        return f"SigningApi(key={key_hint(self.key)!r}, uri={self.uri!r})"

    def _nonce(self) -> int:
        return self.nonce_source()

    def query_private(
        self, method: str, data: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """krakenex's query_private, sending the body it signed as an encoded string.

        Same request as krakenex's (form body with the nonce, API-Key, API-Sign, POST to
        /0/private/<method>), but the body is urlencoded once, signed, and handed to requests
        as a string: given a dict, requests re-encodes it and checks it against runtime
        Protocols (slow isinstance calls), a noticeable part of a call's CPU. A string body
        gets no Content-Type from requests, so the form type is set here.
        """
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
        self.response = self.session.post(
            self.uri + urlpath, data=body, headers=headers, timeout=timeout
        )
        if self.response.status_code not in (200, 201, 202):
            self.response.raise_for_status()
        return self.response.json(**self._json_options)

    def _sign(self, data: Mapping[str, Any], urlpath: str) -> str:
        return sign(self._secret.value, urlpath, data)


def public_api(uri: str) -> krakenex.API:
    """A key-less krakenex.API for public endpoints at this base URL."""
    api = krakenex.API()
    api.uri = uri.rstrip("/")
    pin_environment(api.session, api.uri)
    return api
