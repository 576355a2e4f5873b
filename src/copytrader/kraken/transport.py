"""The HTTP exchange of one API object: urllib3 with one kept-alive connection, no retries.

Why not requests (which krakenex uses by default): a requests call spends most of its CPU on
things this daemon does not need per call (merging session and environment settings, cookie
jars, hooks, header dictionaries, re-checking the body's type), about 0.4 ms of CPU against
0.2 ms for the same POST through urllib3, which requests itself runs on. With a hundred users
the copies of one master order are a hundred such calls sharing the GIL, so that difference is
most of the time between the first user's copy and the last one's.

What is kept from requests' behaviour:
- the environment's proxy (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY, NO_PROXY) and CA bundle
  (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) settings, resolved once per base URL by requests' own
  `merge_environment_settings` (requests reads os.environ there, not our code: config.py stays
  the only module of ours that does); certificates are verified, by default against certifi's
  bundle as requests does;
- a connect and a read timeout on every call, and no retry of any kind: a POST sent twice could
  place an order twice, so a lost reply is reported, and the broker decides (orders.py).

What a failure means for the caller, in three exception types:
- `NotSentError`: no connection could be made (refused, DNS, connect timeout); the request
  certainly never left, so even a write can be sent again;
- `NoReplyError`: the request may have reached Kraken (timeout waiting for the reply, the
  connection dropped, TLS or proxy trouble): a write's outcome is unknown;
- `HttpStatusError`: a reply with a status other than 2xx (502, 520, 429...).

One transport is used by one thread at a time (the account lock, or the broker's public lock,
serializes its calls), so its pool holds a single connection, reused while the server keeps it
open.
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import certifi
import requests
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError


class TransportError(Exception):
    """No usable HTTP reply. The message names the failure's type only, never request data."""


class NotSentError(TransportError):
    """No connection was made: the request never left this machine."""


class NoReplyError(TransportError):
    """The request may have been received, but no reply came back (or not a whole one)."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class HttpStatusError(TransportError):
    """A reply whose HTTP status is not 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes

    def json(self, **options: Any) -> Any:
        """The body as JSON (ValueError when it is not JSON)."""
        return json.loads(self.body, **options)


@dataclass(frozen=True)
class _Route:
    proxy_url: str | None
    ca_certs: str


@functools.lru_cache(maxsize=16)
def _route_for(base_url: str) -> _Route:
    """The environment's proxy and CA bundle for `base_url`, resolved once (see module doc)."""
    settings = requests.Session().merge_environment_settings(base_url, {}, None, None, None)
    scheme = urllib.parse.urlsplit(base_url).scheme
    proxies: Mapping[str, str] = settings["proxies"] or {}
    proxy_url = proxies.get(scheme) or proxies.get("all")
    verify = settings["verify"]
    return _Route(proxy_url, verify if isinstance(verify, str) else certifi.where())


class HttpTransport:
    """POST and GET against one base URL (Kraken's, or the simulator's) over one connection."""

    def __init__(self, base_url: str, *, user_agent: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._prefix = urllib.parse.urlsplit(self.base_url).path
        self._headers = {"User-Agent": user_agent}
        route = _route_for(self.base_url)
        manager: urllib3.PoolManager
        pool_options: dict[str, Any] = {
            "maxsize": 1,
            "retries": False,
            "ca_certs": route.ca_certs,
            "cert_reqs": "CERT_REQUIRED",
        }
        if route.proxy_url:
            manager = urllib3.ProxyManager(route.proxy_url, num_pools=1, **pool_options)
        else:
            manager = urllib3.PoolManager(num_pools=1, **pool_options)
        self._manager = manager
        self._pool = manager.connection_from_url(self.base_url)
        self._proxied = route.proxy_url is not None

    def __repr__(self) -> str:
        return f"HttpTransport(base_url={self.base_url!r})"

    def post(self, path: str, body: str, headers: Mapping[str, str], timeout_s: float) -> HttpReply:
        """POST an already encoded body to `path` (under the base URL)."""
        return self._request("POST", path, body.encode(), headers, timeout_s)

    def get(
        self, path: str, query: Mapping[str, Any], headers: Mapping[str, str], timeout_s: float
    ) -> HttpReply:
        """GET `path` with `query` urlencoded (Kraken's public endpoints are GET only)."""
        encoded = urllib.parse.urlencode(query)
        target = f"{path}?{encoded}" if encoded else path
        return self._request("GET", target, None, headers, timeout_s)

    def close(self) -> None:
        self._manager.clear()

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float,
    ) -> HttpReply:
        # Through a proxy the manager builds the request (absolute URL for a plain-HTTP proxy,
        # a CONNECT tunnel for HTTPS); without one, straight to the kept pool.
        opener = self._manager if self._proxied else self._pool
        url = self.base_url + path if self._proxied else self._prefix + path
        try:
            response = opener.urlopen(
                method,
                url,
                body=body,
                headers={**self._headers, **headers},
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
                preload_content=True,
            )
        except (NewConnectionError, ConnectTimeoutError) as exc:
            raise NotSentError(f"connection failed ({type(exc).__name__})") from exc
        except HTTPError as exc:
            timed_out = isinstance(exc, urllib3.exceptions.TimeoutError)
            raise NoReplyError(f"no reply ({type(exc).__name__})", timed_out=timed_out) from exc
        except OSError as exc:  # a socket error urllib3 did not wrap
            raise NoReplyError(f"no reply ({type(exc).__name__})", timed_out=False) from exc
        if not 200 <= response.status < 300:
            raise HttpStatusError(response.status)
        return HttpReply(response.status, response.data)
