"""A requests transport that answers from a script, for tests (httpx's MockTransport habit).

    transport = ScriptedTransport(lambda call: reply({"ZUSD": "1"}))
    broker = KrakenBroker(..., api_url=SCRIPTED_URL, transport=transport)

The script gets each `Call` (method, Kraken method name, form or query fields, headers, timeout)
and returns a `Reply` or an exception to raise (what requests raises for a network failure).
Every call is kept in `transport.calls`.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter

# Nothing listens here: with the transport mounted, no call reaches the network.
SCRIPTED_URL = "http://kraken.scripted.invalid"


@dataclass(frozen=True)
class Call:
    """One request as the transport received it."""

    http_method: str
    path: str
    fields: dict[str, str]
    headers: dict[str, str]
    body: str
    timeout: Any

    @property
    def method(self) -> str:
        """Kraken's method name: the last part of the path (`Balance`, `AddOrder`...)."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Reply:
    """What the transport answers: a status and a body (a JSON document unless `raw`)."""

    status: int = 200
    document: Any = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps(self.document).encode()


def reply(result: Any) -> Reply:
    """Kraken's envelope around a result, with no error."""
    return Reply(document={"error": [], "result": result})


def error_reply(error: Any) -> Reply:
    """Kraken's envelope carrying `error` as given (a list of strings, usually)."""
    return Reply(document={"error": error})


Script = Callable[[Call], Reply | BaseException]


def in_turn(outcomes: Iterable[Reply | BaseException]) -> Script:
    """A script answering each call with the next outcome, the last one for ever after."""
    pending = list(outcomes)
    lock = threading.Lock()

    def answer(_: Call) -> Reply | BaseException:
        with lock:
            return pending.pop(0) if len(pending) > 1 else pending[0]

    return answer


def by_method(answers: Mapping[str, Script]) -> Script:
    """A script that dispatches on Kraken's method name."""

    def answer(call: Call) -> Reply | BaseException:
        return answers[call.method](call)

    return answer


class ScriptedTransport(BaseAdapter):
    """Answers every request from `script`; records the calls; never touches the network."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script
        self.calls: list[Call] = []
        self.closed = False
        self._builder = HTTPAdapter()
        self._lock = threading.Lock()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = urllib.parse.urlsplit(request.url or "")
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        text = body if request.method == "POST" else url.query
        call = Call(
            http_method=request.method or "",
            path=url.path,
            fields=dict(urllib.parse.parse_qsl(text)),
            headers=dict(request.headers),
            body=body,
            timeout=timeout,
        )
        with self._lock:
            self.calls.append(call)
        outcome = self.script(call)
        if isinstance(outcome, BaseException):
            raise outcome
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(outcome.body()),
            headers={"Content-Type": "application/json", **outcome.headers},
            status=outcome.status,
            preload_content=False,
            decode_content=False,
        )
        return self._builder.build_response(request, raw)

    def close(self) -> None:
        self.closed = True

    def methods(self) -> list[str]:
        """Kraken's method names of the calls so far, in order."""
        with self._lock:
            return [call.method for call in self.calls]
