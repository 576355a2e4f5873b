"""The HTTP side of an account's krakenex.API: its requests.Session, and what a failure means.

krakenex sends every call through `API.session`, a `requests.Session`; `configure_session` sets
one up for a base URL (Kraken's, or the simulator's):
- the real transport is one `HTTPAdapter` per scheme with `max_retries=0`, written out although
  it is requests' default: a POST sent twice could place an order twice, so a lost reply is
  reported and the broker decides what comes next (orders.py). One pooled connection is kept
  alive (calls of one session are serialized by the account lock or the public lock);
- a caller's transport (any `requests.adapters.BaseAdapter`, as httpx's `transport=`) is mounted
  for the base URL instead, so tests and the in-process simulator answer every call, private
  and public; the caller owns it (the broker never closes it);
- the environment's proxy (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY, NO_PROXY) and CA bundle
  (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) are resolved once for the base URL by requests' own
  `merge_environment_settings` (requests reads os.environ there, not our code), then
  `trust_env` is turned off so that no call reads the environment or ~/.netrc again. A SOCKS
  proxy needs PySocks, which is not installed: refused at start, not at the first call;
- the timeout, a (connect, read) pair, is passed by the broker on every call.

What a failure means for the caller (`failure_of`), read from requests' exceptions:
- not sent (a write may simply be sent again): `ConnectTimeout`; `ConnectionError` wrapping
  urllib3's `NewConnectionError` (refused, unreachable) or `NameResolutionError` (DNS);
  `ProxyError` (the proxy could not be reached); `SSLError` raised by the TLS handshake
  (`do_handshake` in its traceback: certificate, protocol);
- maybe received (a write's outcome is unknown): `ReadTimeout` and everything else, e.g.
  `ConnectionError` from urllib3's `ProtocolError` (`RemoteDisconnected`, connection reset
  after sending), `ChunkedEncodingError`, an `SSLError` while reading the reply, a failed
  proxy tunnel. Anything not known to be "not sent" is treated as maybe received: at worst a
  write is looked up when it did not need to be;
- an HTTP status: krakenex raises `requests.HTTPError` for a status other than 200/201/202.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import requests
import urllib3.exceptions
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.utils import select_proxy

from copytrader.errors import ConfigError

# The one connection a session uses at a time; a second slot would only sit idle.
_POOL_SIZE = 1


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; ValueError unless it is http(s)://host..."""
    url = base_url.rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise ValueError(f"API URL must be http(s)://host, not {base_url!r}")
    return url


def configure_session(
    session: requests.Session, base_url: str, transport: BaseAdapter | None
) -> None:
    """Set up krakenex's session for `base_url` (see the module docstring)."""
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    proxies: dict[str, str] = dict(settings["proxies"] or {})
    proxy = select_proxy(base_url, proxies)
    if (
        transport is None
        and proxy
        and proxy.lower().startswith("socks")
        and importlib.util.find_spec("socks") is None
    ):
        raise ConfigError(
            "a SOCKS proxy needs PySocks, which is not installed; use an http:// or https:// proxy",
            field="HTTPS_PROXY/HTTP_PROXY/ALL_PROXY",
        )
    session.proxies = proxies
    session.verify = settings["verify"]
    session.trust_env = False
    for prefix in ("https://", "http://"):
        session.mount(
            prefix,
            HTTPAdapter(max_retries=0, pool_connections=_POOL_SIZE, pool_maxsize=_POOL_SIZE),
        )
    if transport is not None:
        session.mount(transport_prefix(base_url), transport)


def transport_prefix(base_url: str) -> str:
    """Where a caller's transport is mounted: every URL under the base URL (and only those)."""
    return base_url.rstrip("/") + "/"


@dataclass(frozen=True)
class Failure:
    """What a failed HTTP exchange means. `timed_out`: sent, and no reply came within the read
    timeout. `text` is built from types only: a library's message may carry request details."""

    not_sent: bool
    timed_out: bool
    status: int | None
    text: str


def failure_of(exc: BaseException) -> Failure:
    """Read a failure raised while sending a request or reading its reply."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return Failure(not_sent=False, timed_out=False, status=status, text=f"HTTP {status}")
    cause = _urllib3_cause(exc)
    not_sent = _not_sent(exc, cause)
    # Only the read timeout: urllib3's NewConnectionError is a ConnectTimeoutError too.
    timed_out = not not_sent and (
        isinstance(exc, requests.ReadTimeout)
        or isinstance(cause, urllib3.exceptions.ReadTimeoutError)
    )
    name = _name(cause if cause is not None else exc)
    text = f"connection failed ({name})" if not_sent else f"no reply ({name})"
    return Failure(not_sent=not_sent, timed_out=timed_out, status=None, text=text)


def _urllib3_cause(exc: BaseException) -> BaseException | None:
    """The urllib3 exception requests wrapped (a MaxRetryError's reason, when retries are 0)."""
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    if isinstance(exc, urllib3.exceptions.HTTPError):
        inner = exc
    if isinstance(inner, urllib3.exceptions.MaxRetryError):
        return inner.reason
    return inner


def _not_sent(exc: BaseException, cause: BaseException | None) -> bool:
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return _raised_by_handshake(cause)
    if isinstance(exc, requests.ConnectionError):
        return isinstance(cause, urllib3.exceptions.NewConnectionError)
    return False


def _raised_by_handshake(cause: BaseException | None) -> bool:
    """Whether the ssl error inside urllib3's SSLError came from the TLS handshake (so the
    request was never written): ssl.SSLSocket.do_handshake is in its traceback."""
    inner = cause.args[0] if cause is not None and cause.args else None
    if not isinstance(inner, BaseException):
        return False
    tb = inner.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "do_handshake":
            return True
        tb = tb.tb_next
    return False


def _name(exc: BaseException) -> str:
    """The most telling type name: the error inside urllib3's ProtocolError when there is one
    (`ProtocolError('Connection aborted.', RemoteDisconnected(...))`)."""
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        inner = [arg for arg in exc.args if isinstance(arg, BaseException)]
        if inner:
            return type(inner[-1]).__name__
    return type(exc).__name__
