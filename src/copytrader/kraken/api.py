"""The krakenex.API objects of one account, used as krakenex's authors meant them.

- `uri` points at the configured base URL (Kraken or the simulator);
- the nonce comes through krakenex's `_nonce` hook, from `nonce_source`: the broker points it at
  the account's NonceStore only while the account lock is held (`NonceStore.locked()`), and
  outside it every private call fails loudly;
- requests go through krakenex's own `session` (a requests.Session), set up by
  `http.configure_session`: no retries, the environment's proxy and CA bundle, an optional
  transport; krakenex sends public calls by GET and private ones by POST, with its own
  User-Agent and its own signature (`_sign`);
- the secret is a str (krakenex base64-decodes it on every signature) whose repr, str and format
  are `<SECRET>`, so a debugger, a traceback with locals or `vars(api)` shows nothing; it cannot
  be pickled. The key prints as its first characters only.

One API object is not thread-safe (krakenex keeps the last response on it): the account lock
serializes the private one, the broker's public lock the public one.
"""

from __future__ import annotations

from collections.abc import Callable

import krakenex
from requests.adapters import BaseAdapter

from copytrader.config.credentials import SECRET_MASK, ApiCredentials, key_hint
from copytrader.kraken.http import check_base_url, configure_session


class _SecretText(str):
    """The base64 API secret as krakenex reads it, printing as `<SECRET>`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return SECRET_MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return SECRET_MASK

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets cannot be pickled")


class _KeyText(str):
    """The API key as krakenex sends it (a str header), printing as its first characters."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(key_hint(str.__str__(self)))


def no_nonce_outside_the_lock() -> int:
    """The nonce source while no account lock is held: any private call fails loudly."""
    raise RuntimeError("a private call must take its nonce inside the account's lock")


class AccountApi(krakenex.API):  # type: ignore[misc]  # krakenex ships no type information
    """krakenex.API with its nonce taken from `nonce_source` (krakenex's `_nonce` hook)."""

    def __init__(self, key: str, secret: str) -> None:
        super().__init__(key=key, secret=secret)
        self.nonce_source: Callable[[], int] = no_nonce_outside_the_lock

    def __repr__(self) -> str:
        return f"AccountApi(key={self.key!r}, uri={self.uri!r})"

    def _nonce(self) -> int:
        return self.nonce_source()


def account_api(
    credentials: ApiCredentials, base_url: str, transport: BaseAdapter | None = None
) -> AccountApi:
    """The account's krakenex.API for private calls at `base_url`."""
    api = AccountApi(
        key=_KeyText(credentials.key),
        secret=_SecretText(credentials.secret.get_secret_value()),
    )
    _point_at(api, base_url, transport)
    return api


def public_api(base_url: str, transport: BaseAdapter | None = None) -> krakenex.API:
    """A key-less krakenex.API for public calls at `base_url`."""
    api = krakenex.API()
    _point_at(api, base_url, transport)
    return api


def _point_at(api: krakenex.API, base_url: str, transport: BaseAdapter | None) -> None:
    api.uri = check_base_url(base_url)
    configure_session(api.session, api.uri, transport)
