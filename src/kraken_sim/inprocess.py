"""The simulated exchange served in-process: no socket, no thread, no event loop of its own.

For fast tests of Kraken clients, in the manner of httpx's MockTransport and dramatiq's stub
broker: a `requests` transport adapter answers from an in-memory exchange, through the same
request steps as the HTTP server (rest.py) and the same control operations (control.py), so a
client cannot tell the two apart except by speed.

    exchange = InProcessExchange(accounts_toml, seed=7, clock=SimClock.frozen())
    api = krakenex.API(key, secret)
    api.uri = "http://kraken.test"
    api.session.mount("http://kraken.test", exchange.adapter())
    exchange.set_price("XXBTZUSD", "61000")
    exchange.arm_fault({"endpoint": "AddOrder", "kind": "drop_reply"})

The adapter answers any URL it is mounted for: `/0/public/*`, `/0/private/*` and `/sim/*` (the
control endpoints). What a socket would do, it does with the exceptions `requests` raises:

- `refused`: `requests.ConnectionError` (urllib3's MaxRetryError caused by NewConnectionError),
  before anything is read or applied;
- `hang`: `requests.ReadTimeout`, nothing applied, after "waiting" the request's read timeout
  (a request without a timeout, which would wait forever on a socket, gets it at once);
- `drop_reply`: `requests.ConnectionError` (ProtocolError "Connection aborted."), after the call
  was applied;
- a delay (`--latency-ms`-like global latency, a `latency` fault) at least the request's read
  timeout: the call is applied (the HTTP server finishes it after the client gave up), then
  `requests.ReadTimeout`.

Waiting goes through the injected `sleep(seconds)`. By default nobody waits: the simulator's
own clock moves forward by the delay instead, so time-based rules (rate-counter decay, lockouts)
still see it pass. Pass `sleep=time.sleep` to really wait.

Calls from several threads are served one at a time (one lock), like the server's event loop;
waits happen outside the lock.
"""

from __future__ import annotations

import http
import http.client
import io
import json
import threading
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.connection import HTTPConnection
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

from kraken_sim import control, rest
from kraken_sim.accounts import SimSetup, load_accounts_file, parse_accounts
from kraken_sim.clock import SimClock
from kraken_sim.context import SimContext, to_json

DEFAULT_SOURCE = "127.0.0.1"

Accounts = str | Path | SimSetup | Mapping[str, Any]


class InProcessExchange:
    """One simulated exchange, its control operations as methods, and `adapter()` for clients.

    `accounts` is the accounts TOML (DESIGN.md §3) as text, a path to such a file, its parsed
    mapping, or a SimSetup. `seed` makes ids reproducible; `clock` is the simulator's clock
    (default: the machine's time); `sleep` is how delays are waited (module docstring);
    `latency_ms` is added to every /0/ request, like `--latency-ms`.
    """

    def __init__(
        self,
        accounts: Accounts,
        *,
        seed: int | None = None,
        clock: SimClock | None = None,
        sleep: Callable[[float], None] | None = None,
        latency_ms: float = 0.0,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        self.clock = clock if clock is not None else SimClock()
        self._context = SimContext.from_setup(
            _setup_of(accounts), seed=seed, clock=self.clock, latency_ms=latency_ms
        )
        self._sleep = sleep if sleep is not None else self.clock.advance
        self._source = source
        self._lock = threading.Lock()

    # --- the transport -----------------------------------------------------------------------

    def adapter(self) -> InProcessAdapter:
        """A requests transport adapter answering from this exchange; mount it on a session."""
        return InProcessAdapter(self)

    def session(self, base_url: str = "http://kraken.test") -> requests.Session:
        """A new requests.Session with `adapter()` mounted for `base_url`."""
        session = requests.Session()
        session.mount(base_url, self.adapter())
        return session

    def send(self, request: requests.PreparedRequest, timeout: Any = None) -> requests.Response:
        """Answer one prepared request as the HTTP server would (module docstring)."""
        url = urllib.parse.urlsplit(request.url or "")
        path = urllib.parse.unquote(url.path)
        verb = (request.method or "GET").upper()
        body = _body_bytes(request.body)
        if path.startswith("/sim/"):
            return _response(request, self._control_reply(verb, path[len("/sim/") :], body, url))
        with self._lock:
            admission = rest.admit(self._context, verb, path)
        read_timeout = _read_timeout(timeout)
        reply = admission.reply
        if reply is not None and reply.delivery is rest.Delivery.REFUSE:
            raise _refused(request, url)
        if reply is not None and reply.delivery is rest.Delivery.HANG:
            self._wait(read_timeout or 0.0)
            raise _timed_out(request, url, read_timeout)
        wait = admission.delay_s
        late = read_timeout is not None and wait >= read_timeout
        self._wait(read_timeout if late and read_timeout is not None else wait)
        if reply is None:
            api_request = rest.ApiRequest(
                query_string=url.query,
                body=body,
                content_type=request.headers.get("Content-Type", ""),
                api_key=request.headers.get("API-Key"),
                api_sign=request.headers.get("API-Sign"),
                source=self._source,
            )
            with self._lock:
                reply = rest.serve(self._context, admission, api_request)
        if late:
            raise _timed_out(request, url, read_timeout)
        if reply.delivery is rest.Delivery.HANG:  # a hang fault that let the request through
            self._wait(read_timeout or 0.0)
            raise _timed_out(request, url, read_timeout)
        if reply.delivery is rest.Delivery.DROP:
            raise requests.ConnectionError(
                ProtocolError(
                    "Connection aborted.",
                    http.client.RemoteDisconnected("Remote end closed connection without response"),
                ),
                request=request,
            )
        return _response(request, reply)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def _control_reply(
        self, verb: str, name: str, body: bytes, url: urllib.parse.SplitResult
    ) -> rest.ApiReply:
        try:
            with self._lock:
                payload = control.run(self._context, verb, name, body, url.query)
        except control.ControlError as exc:
            return rest.ApiReply(exc.status, to_json({"ok": False, "error": str(exc)}).encode())
        return rest.ApiReply(200, to_json(payload).encode())

    # --- control operations (the /sim/ endpoints, same code) ----------------------------------

    def control(self, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        """POST `payload` (or GET when None) to the control operation `path`, e.g. "state",
        "faults/clear", "requests?key=k"; the JSON answer, exactly as over HTTP. Raises
        control.ControlError where HTTP would answer 400/404/405."""
        name, _, query = path.partition("?")
        verb = "GET" if payload is None else "POST"
        body = b"" if payload is None else json.dumps(payload).encode()
        with self._lock:
            answer = control.run(self._context, verb, name, body, query)
        return json.loads(to_json(answer))

    def set_price(self, pair: str, price: Decimal | str) -> None:
        """Move a pair's price: fills and triggers whatever it crosses."""
        self.control("price", {"pair": pair, "price": str(price)})

    def trade(self, pair: str, side: str, price: Decimal | str, volume: Decimal | str) -> Decimal:
        """Trade `volume` through `price` as an outside taker on `side`: fills resting orders
        in price-time priority, the last one partly; returns the volume filled."""
        reply = self.control(
            "trade", {"pair": pair, "side": side, "price": str(price), "volume": str(volume)}
        )
        return Decimal(reply["traded"])

    def arm_fault(self, spec: Mapping[str, Any]) -> None:
        """Arm a fault; the spec is faults.py's (the same JSON object as `POST /sim/fault`)."""
        self.control("fault", spec)

    def faults(self) -> list[dict[str, Any]]:
        """The armed faults, each with its remaining count."""
        armed: list[dict[str, Any]] = self.control("faults")["faults"]
        return armed

    def clear_faults(self) -> None:
        self.control("faults/clear", {})

    def state(self) -> dict[str, Any]:
        """Accounts, balances, orders, prices, keys' nonce marks, counters, faults, clock."""
        state: dict[str, Any] = self.control("state")
        return state

    def set_nonce(self, key: str, nonce: int) -> None:
        """The exchange now remembers `nonce` as this key's high-water mark."""
        self.control("nonce", {"key": key, "nonce": nonce})

    def requests_log(self, key: str | None = None) -> list[dict[str, Any]]:
        """Recent private requests (of one API key, if given), oldest first."""
        query = "" if key is None else "?" + urllib.parse.urlencode({"key": key})
        logged: list[dict[str, Any]] = self.control("requests" + query)["requests"]
        return logged

    def advance_clock(self, seconds: float) -> float:
        """Move the simulator's clock forward; returns its total offset in seconds."""
        offset: float = self.control("clock", {"advance_s": seconds})["clock_offset_s"]
        return offset

    def clear_lockouts(self) -> None:
        self.control("lockouts/clear", {})

    def set_limits(self, *, rest: bool | None = None, orders: bool | None = None) -> None:
        """Switch the keys' REST limits and/or the engine's per-pair order limits on or off."""
        switches = {name: on for name, on in (("rest", rest), ("orders", orders)) if on is not None}
        self.control("limits", switches)


class InProcessAdapter(BaseAdapter):
    """`requests`' transport seam, answered by an InProcessExchange."""

    def __init__(self, exchange: InProcessExchange) -> None:
        super().__init__()
        self.exchange = exchange

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        return self.exchange.send(request, timeout)

    def close(self) -> None:
        """Nothing to release: there is no connection."""


def _setup_of(accounts: Accounts) -> SimSetup:
    if isinstance(accounts, SimSetup):
        return accounts
    if isinstance(accounts, Path):
        return load_accounts_file(accounts)
    if isinstance(accounts, str):
        return parse_accounts(tomllib.loads(accounts), source="accounts")
    return parse_accounts(accounts, source="accounts")


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    chunks: Iterable[Any] = body
    return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else chunk for chunk in chunks)


def _read_timeout(timeout: Any) -> float | None:
    """The read part of a requests timeout: a number, a (connect, read) pair, or urllib3's
    Timeout."""
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    if isinstance(timeout, urllib3.Timeout):
        timeout = timeout.read_timeout
    return None if timeout is None else float(timeout)


def _refused(request: requests.PreparedRequest, url: urllib.parse.SplitResult) -> Exception:
    host = url.hostname or "localhost"
    port = url.port or (443 if url.scheme == "https" else 80)
    reason = NewConnectionError(
        HTTPConnection(host, port),
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )
    pool = urllib3.HTTPConnectionPool(host, port)
    return requests.ConnectionError(MaxRetryError(pool, url.path, reason), request=request)


def _timed_out(
    request: requests.PreparedRequest, url: urllib.parse.SplitResult, read_timeout: float | None
) -> Exception:
    host = url.hostname or "localhost"
    pool = urllib3.HTTPConnectionPool(host, url.port or 80)
    message = f"Read timed out. (read timeout={read_timeout})"
    return requests.ReadTimeout(ReadTimeoutError(pool, url.path, message), request=request)


def _response(request: requests.PreparedRequest, reply: rest.ApiReply) -> requests.Response:
    """A requests.Response built as requests' own HTTPAdapter builds one, over an in-memory
    urllib3 response."""
    try:
        reason = http.HTTPStatus(reply.status).phrase
    except ValueError:  # 520 and other non-standard codes: no phrase, as from aiohttp
        reason = ""
    headers = {
        "Content-Type": f"{reply.content_type}; charset=utf-8",
        "Content-Length": str(len(reply.body)),
    }
    raw = urllib3.HTTPResponse(
        body=io.BytesIO(reply.body),
        headers=headers,
        status=reply.status,
        reason=reason,
        preload_content=False,
        decode_content=False,
        request_url=request.url,
    )
    response = requests.Response()
    response.status_code = reply.status
    response.headers = CaseInsensitiveDict(headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.raw = raw
    response.reason = reason
    response.url = request.url or ""
    response.request = request
    return response
