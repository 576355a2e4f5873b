"""The HTTP exchange of one API object: one kept-alive http.client connection, no retries.

Why not requests (which krakenex uses by default), nor urllib3 under it: a requests call spends
most of its CPU on things this daemon does not need per call (merging session and environment
settings, cookie jars, hooks, header dictionaries, re-checking the body's type). Measured on
one thread against the simulator: ~0.42 ms of CPU per POST with requests, ~0.20 ms with
urllib3, ~0.12 ms with http.client. With a hundred users the copies of one master order are a
hundred such calls sharing the GIL, so that CPU is most of the time between the first user's
copy and the last one's. Calls of one transport are serialized (the account lock, or the
broker's public lock), so one connection is all a pool would hold anyway.

What is kept from requests' behaviour:
- the environment's proxy (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY, NO_PROXY; credentials in the proxy
  URL are sent as Proxy-Authorization) and CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE)
  settings, resolved once per base URL by requests' own `merge_environment_settings` (requests
  reads os.environ there, not our code: config.py stays the only module of ours that does);
  HTTPS goes through the proxy by CONNECT; certificates and host names are verified, by
  default against certifi's bundle as requests does;
- a connect and a read timeout on every call, and no retry of any kind: a POST sent twice could
  place an order twice, so a lost reply is reported, and the broker decides (orders.py);
- a kept connection the server has closed meanwhile is noticed before reuse (it reads as
  ready: EOF), and a new one is made, as urllib3 does.

What a failure means for the caller, in three exception types:
- `NotSentError`: no connection could be made (refused, DNS, connect timeout, proxy tunnel or
  TLS handshake failed); the request certainly never left, so even a write can be sent again;
- `NoReplyError`: the request may have reached Kraken (timeout waiting for the reply, the
  connection dropped): a write's outcome is unknown;
- `HttpStatusError`: a reply with a status other than 2xx (502, 520, 429...).
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import select
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import certifi
import requests

from copytrader.errors import ConfigError


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


def _host_port(parts: urllib.parse.SplitResult) -> tuple[str, int]:
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default


class HttpTransport:
    """POST and GET against one base URL (Kraken's, or the simulator's) over one connection."""

    def __init__(self, base_url: str, *, user_agent: str) -> None:
        self.base_url = base_url.rstrip("/")
        target = urllib.parse.urlsplit(self.base_url)
        if target.scheme not in ("http", "https"):
            raise ValueError(f"API URL must be http(s)://, not {target.scheme or 'nothing'}")
        self._https = target.scheme == "https"
        self._target = _host_port(target)
        self._prefix = target.path
        self._headers = {"User-Agent": user_agent}
        route = _route_for(self.base_url)
        self._proxy: tuple[str, int] | None = None
        self._proxy_headers: dict[str, str] = {}
        if route.proxy_url:
            proxy = urllib.parse.urlsplit(
                route.proxy_url if "://" in route.proxy_url else f"http://{route.proxy_url}"
            )
            if proxy.scheme != "http":
                # An https:// or socks proxy would need TLS or SOCKS to the proxy itself;
                # talking plain HTTP to it would send the CONNECT (and any password) in clear.
                raise ConfigError(
                    f"proxy scheme {proxy.scheme}:// is not supported; use an http:// proxy"
                    " (HTTPS to Kraken still goes through it encrypted, by CONNECT)",
                    field="HTTPS_PROXY/HTTP_PROXY/ALL_PROXY",
                )
            self._proxy = _host_port(proxy)
            if proxy.username is not None:
                user = urllib.parse.unquote(proxy.username)
                password = urllib.parse.unquote(proxy.password or "")
                token = base64.b64encode(f"{user}:{password}".encode()).decode()
                self._proxy_headers["Proxy-Authorization"] = f"Basic {token}"
        self._tls = ssl.create_default_context(cafile=route.ca_certs) if self._https else None
        self._connection: http.client.HTTPConnection | None = None
        self.connections_made = 0  # for tests and benchmarks: is the connection kept?

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
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float,
    ) -> HttpReply:
        connection = self._connected(timeout_s)
        url = self._prefix + path
        all_headers = {**self._headers, **headers}
        if self._proxy is not None and not self._https:
            # A plain-HTTP proxy is asked for the absolute URL (http.client takes the Host
            # header from it); HTTPS goes through the CONNECT tunnel made in _connected().
            url = self.base_url + path
            all_headers.update(self._proxy_headers)
        try:
            connection.request(method, url, body=body, headers=all_headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            timed_out = isinstance(exc, TimeoutError)
            raise NoReplyError(f"no reply ({type(exc).__name__})", timed_out=timed_out) from exc
        if response.will_close:
            self.close()
        if not 200 <= response.status < 300:
            raise HttpStatusError(response.status)
        return HttpReply(response.status, data)

    def _connected(self, timeout_s: float) -> http.client.HTTPConnection:
        """The kept connection if the server has not closed it, else a new one (connected here,
        so that any failure up to the TLS handshake is known not to have sent anything)."""
        connection = self._connection
        if connection is not None and connection.sock is not None:
            if not _closed_by_peer(connection.sock):
                connection.sock.settimeout(timeout_s)
                return connection
            self.close()
        host, port = self._proxy or self._target
        if self._tls is not None:
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout_s, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        if self._proxy is not None and self._https:
            connection.set_tunnel(*self._target, headers=self._proxy_headers)
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise NotSentError(f"connection failed ({type(exc).__name__})") from exc
        self._connection = connection
        self.connections_made += 1
        return connection


def _closed_by_peer(sock: Any) -> bool:
    """An idle kept-alive socket that reads as ready has been closed by the server (EOF) or
    holds bytes nobody asked for: either way it must not carry the next request. poll(), not
    select(): select cannot watch descriptors above 1023, which a daemon with hundreds of
    users' connections and files can reach."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
