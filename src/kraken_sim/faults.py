"""Injected faults: what the next matching requests suffer instead of (or besides) a normal reply.

A fault is armed for one method name (or "*" for every public and private method), over HTTP
with `POST /sim/fault` or in-process with `InProcessExchange.arm_fault`, and fires on the next
`count` matching requests (-1: until cleared). Faults armed for the same method fire in the
order they were armed; each request takes at most one fault, whatever its outcome turns out to be.

The spec is one JSON object:

    {"endpoint": "AddOrder", "kind": "drop_reply", "count": 1}
    {"endpoint": "Balance", "kind": "latency", "latency_ms": 300}
    {"endpoint": "OpenOrders", "kind": "mutate", "path": "open.*.vol", "value": "NaN"}
    {"endpoint": "Balance", "kind": "mutate", "path": "ZUSD", "delete": true}
    {"endpoint": "AddOrder", "kind": "error_string"}
    {"endpoint": "AddOrder", "kind": "http502", "apply_probability": 0.5, "seed": 7, "count": -1}
    {"endpoint": "AddOrder", "kind": "late_visibility", "delay_s": 2}
    {"endpoint": "Balance", "kind": "throttled", "retry_after_s": 3}
    {"endpoint": "ws:executions", "kind": "ws_skip"}

Kinds, by where they act:

- in front of the exchange (nothing applied, the nonce is not consumed, so re-sending the very
  same request later is accepted; but see `apply_probability` below): `refused` (the
  connection is closed before the request is read; in-process: `requests.ConnectionError`
  wrapping urllib3's `NewConnectionError`),
  `http502`, `http520` (a proxy's HTML/text error page), `hang` (no reply ever; in-process:
  `requests.ReadTimeout`);
- "a 502 may or may not mean the order reached the engine": `http502`, `http520` and `hang`
  take `"apply_probability"` (0 to 1, default 0). Each time the fault fires it draws from its own
  random generator (seeded with `"seed"`, default 0, so a run repeats exactly): when the draw
  says so, the request goes through in full (authentication, nonce, the engine) and only then is
  the answer replaced by the 502/520 page or by silence. The request log's `fault` says which
  requests took the fault; the account's orders say whether it was applied;
- `latency`: `latency_ms` more, then the request is served normally;
- Kraken's own errors after authentication (nonce consumed, nothing applied): `unavailable`
  (EService:Unavailable), `busy` (EService:Busy), `internal` (EGeneral:Internal error),
  `deadline_elapsed` (EService:Deadline elapsed: the engine did not take the request in time),
  `throttled` (`EService: Throttled: <unix time>`, the simulator's clock now plus
  `"retry_after_s"`, default 1, rounded up to a whole second);
- `late_visibility` (`"delay_s"` > 0, on the simulator's clock): the write is applied and
  answered normally, but the orders it created (the reply's `txid`s) are left out of
  OpenOrders, ClosedOrders and QueryOrders until `delay_s` has passed, as Kraken's order lists
  have been seen to lag an accepted order. ClosedOrders' `count` leaves out the hidden orders of
  the page it answers. The WebSocket holds its `executions` frames back for as long.
  Cancelling such an order works at once; TradesHistory and the `state` control operation
  show it. `faults/clear` makes every hidden order visible;
- on the reply, after the call was applied: `drop_reply` (the connection is closed with no
  reply; in-process: `requests.ConnectionError`), `bad_reply` (HTTP 200, a JSON body that is not
  Kraken's envelope), `mutate` and `error_string` below.

- on the private WebSocket (endpoint `ws:executions` or `ws:balances`, only these kinds): each
  frame of that channel about to be sent on any connection counts as one request.
  `ws_skip`: the frame is not sent but its `sequence` is used up, so the client sees a gap;
  `ws_drop`: the frame is not sent and the TCP connection is closed with no WebSocket close
  frame, as when a network path fails (the client sees close code 1006);
  `ws_stall`: the frame is not sent and the connection goes silent, open but with no further
  frame, heartbeat or reply, until the client closes it.

`mutate` changes a successful reply's `result`. `path` is dot-separated and relative to
`result` ("" is `result` itself); a segment is an object key, a list index, or `*` for every
member of an object or list. Every node the path reaches is set to `value` (any JSON value;
Kraken's numbers are strings, so "NaN", "-1" or "1e400" are the interesting ones) or, with
`"delete": true`, removed. A last segment that names a missing key of an object adds it. A reply
that is an error, or where the path reaches nothing, goes out unchanged (the fault is still used
up; the log line `sim.fault_missed` says so).

`error_string` turns the reply's `error` list into one string, its entries joined by ", "
(`""` for a success, whose `result` stays), as some Kraken endpoints have answered.
"""

from __future__ import annotations

import copy
import enum
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kraken_sim import errors

ALL_METHODS = "*"


class FaultKind(enum.Enum):
    LATENCY = "latency"  # adds latency_ms, then the request is served normally
    UNAVAILABLE = "unavailable"  # EService:Unavailable, not applied
    BUSY = "busy"  # EService:Busy, not applied
    HTTP502 = "http502"  # HTTP 502 Bad Gateway from the "proxy", not applied
    HTTP520 = "http520"  # HTTP 520 (Cloudflare's unknown error), not applied
    HANG = "hang"  # no reply ever; not applied
    REFUSED = "refused"  # the connection is closed before the request is read; not applied
    DROP_REPLY = "drop_reply"  # applied, then the connection is closed with no reply
    INTERNAL = "internal"  # EGeneral:Internal error, not applied
    BAD_REPLY = "bad_reply"  # applied, then HTTP 200 with a body that is not Kraken's envelope
    MUTATE = "mutate"  # applied, then parts of a successful reply's result are changed
    ERROR_STRING = "error_string"  # applied, then the reply's error list becomes one string
    DEADLINE_ELAPSED = "deadline_elapsed"  # EService:Deadline elapsed, not applied
    THROTTLED = "throttled"  # EService: Throttled: <unix time>, not applied
    LATE_VISIBILITY = "late_visibility"  # applied; its orders are listed only after delay_s
    WS_SKIP = "ws_skip"  # a WebSocket frame is not sent; its sequence number is used up
    WS_DROP = "ws_drop"  # a WebSocket frame is not sent; the connection is closed
    WS_STALL = "ws_stall"  # a WebSocket frame is not sent; the connection goes silent


# The WebSocket's channels a fault can be armed for, and the kinds that act there (only there).
SOCKET_ENDPOINTS = frozenset({"ws:executions", "ws:balances"})
SOCKET_KINDS = frozenset({FaultKind.WS_SKIP, FaultKind.WS_DROP, FaultKind.WS_STALL})


# Faults that happen "in front of" Kraken: unless an apply_probability draw lets it through, the
# request never reaches authentication, so its nonce is not consumed and re-sending the very same
# request later is accepted.
GATEWAY_KINDS = frozenset({FaultKind.HTTP502, FaultKind.HTTP520, FaultKind.HANG, FaultKind.REFUSED})

# Faults answered by Kraken itself after authentication (the nonce is consumed).
ERROR_BY_KIND = {
    FaultKind.UNAVAILABLE: errors.SERVICE_UNAVAILABLE,
    FaultKind.BUSY: errors.SERVICE_BUSY,
    FaultKind.INTERNAL: errors.INTERNAL_ERROR,
    FaultKind.DEADLINE_ELAPSED: errors.DEADLINE_ELAPSED,
}
# Gateway faults that may let the request through before failing (apply_probability).
MAYBE_APPLIED_KINDS = frozenset({FaultKind.HTTP502, FaultKind.HTTP520, FaultKind.HANG})
DEFAULT_RETRY_AFTER_S = 1.0


class FaultSpecError(ValueError):
    """A /sim/fault payload that does not describe a fault."""


@dataclass
class Fault:
    endpoint: str
    kind: FaultKind
    remaining: int  # -1 = until cleared
    latency_ms: float
    mutation: Mutation | None = None
    apply_probability: float = 0.0  # gateway kinds: chance that the request is applied first
    seed: int = 0
    delay_s: float = 0.0  # late_visibility
    retry_after_s: float = DEFAULT_RETRY_AFTER_S  # throttled
    _draws: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._draws = random.Random(self.seed)

    def applies_first(self) -> bool:
        """For a gateway fault: does this firing let the request reach the exchange first?
        One draw per firing from the fault's own seeded generator."""
        if self.kind not in MAYBE_APPLIED_KINDS or self.apply_probability <= 0:
            return False
        return self._draws.random() < self.apply_probability

    def error(self, now: float) -> str | None:
        """The Kraken error this fault answers with after authentication, if it is one."""
        if self.kind is FaultKind.THROTTLED:
            return errors.throttled(math.ceil(now + self.retry_after_s))
        return ERROR_BY_KIND.get(self.kind)

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "endpoint": self.endpoint,
            "kind": self.kind.value,
            "count": self.remaining,
            "latency_ms": self.latency_ms,
        }
        if self.mutation is not None:
            shown.update(self.mutation.as_json())
        if self.kind in MAYBE_APPLIED_KINDS:
            shown.update(apply_probability=self.apply_probability, seed=self.seed)
        if self.kind is FaultKind.LATE_VISIBILITY:
            shown["delay_s"] = self.delay_s
        if self.kind is FaultKind.THROTTLED:
            shown["retry_after_s"] = self.retry_after_s
        return shown


@dataclass(frozen=True)
class Mutation:
    """What a `mutate` fault does to a reply's result: set every node `path` reaches to `value`,
    or delete them."""

    path: str
    value: Any = None
    delete: bool = False

    @property
    def segments(self) -> list[str]:
        return self.path.split(".") if self.path else []

    def as_json(self) -> dict[str, Any]:
        if self.delete:
            return {"path": self.path, "delete": True}
        return {"path": self.path, "value": self.value}

    def apply(self, envelope: dict[str, Any]) -> int:
        """Change `envelope["result"]` in place; returns how many nodes were changed (0: none
        reached, or the envelope has no result)."""
        if "result" not in envelope:
            return 0
        if not self.segments:
            if self.delete:
                del envelope["result"]
            else:
                envelope["result"] = copy.deepcopy(self.value)
            return 1
        return self._apply(envelope["result"], self.segments)

    def _apply(self, node: Any, segments: list[str]) -> int:
        head, rest = segments[0], segments[1:]
        targets: list[Any]
        if isinstance(node, dict):
            if head == "*":
                targets = list(node)
            elif head in node or (not rest and not self.delete):
                targets = [head]
            else:
                targets = []
        elif isinstance(node, list):
            if head == "*":
                targets = list(range(len(node)))
            elif head.isdigit() and int(head) < len(node):
                targets = [int(head)]
            else:
                targets = []
        else:
            return 0
        if rest:
            return sum(self._apply(node[target], rest) for target in targets)
        for target in reversed(targets):  # list indices stay valid while deleting from the end
            if self.delete:
                del node[target]
            else:
                node[target] = copy.deepcopy(self.value)
        return len(targets)


_COMMON_FIELDS = {"endpoint", "kind", "count", "latency_ms"}
_KIND_FIELDS = {
    FaultKind.MUTATE: {"path", "value", "delete"},
    FaultKind.HTTP502: {"apply_probability", "seed"},
    FaultKind.HTTP520: {"apply_probability", "seed"},
    FaultKind.HANG: {"apply_probability", "seed"},
    FaultKind.LATE_VISIBILITY: {"delay_s"},
    FaultKind.THROTTLED: {"retry_after_s"},
}


def _number(payload: dict[str, Any], name: str, default: float) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultSpecError(f"'{name}' must be a number")
    return float(value)


def parse_fault(payload: Any) -> Fault:
    """Validate a fault spec (the module docstring): {"endpoint", "kind", "count"=1,
    "latency_ms"=0} plus, for `mutate`, {"path", "value" | "delete": true}."""
    if not isinstance(payload, dict):
        raise FaultSpecError("body must be a JSON object")
    endpoint = payload.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise FaultSpecError('\'endpoint\' must be a method name like "AddOrder" or "*"')
    try:
        kind = FaultKind(payload.get("kind"))
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise FaultSpecError(f"'kind' must be one of {known}") from None
    count = payload.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or (count < 1 and count != -1):
        raise FaultSpecError("'count' must be a positive integer, or -1 for until cleared")
    latency = payload.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise FaultSpecError("'latency_ms' must be a number >= 0")
    if kind is FaultKind.LATENCY and latency == 0:
        raise FaultSpecError("a latency fault needs 'latency_ms' > 0")
    if (endpoint in SOCKET_ENDPOINTS) != (kind in SOCKET_KINDS):
        socket = ", ".join(sorted(k.value for k in SOCKET_KINDS))
        raise FaultSpecError(
            f"the WebSocket endpoints ({', '.join(sorted(SOCKET_ENDPOINTS))}) take exactly the "
            f"kinds {socket}"
        )
    allowed = _COMMON_FIELDS | _KIND_FIELDS.get(kind, set())
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise FaultSpecError(f"unknown field(s) for kind {kind.value!r}: {', '.join(unknown)}")
    mutation = _parse_mutation(payload) if kind is FaultKind.MUTATE else None
    probability = _number(payload, "apply_probability", 0.0)
    if not 0 <= probability <= 1:
        raise FaultSpecError("'apply_probability' must be between 0 and 1")
    seed = payload.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FaultSpecError("'seed' must be an integer")
    delay_s = _number(payload, "delay_s", 0.0)
    if kind is FaultKind.LATE_VISIBILITY and delay_s <= 0:
        raise FaultSpecError("a late_visibility fault needs 'delay_s' > 0 (seconds)")
    retry_after_s = _number(payload, "retry_after_s", DEFAULT_RETRY_AFTER_S)
    if retry_after_s < 0:
        raise FaultSpecError("'retry_after_s' must be >= 0")
    return Fault(
        endpoint=endpoint,
        kind=kind,
        remaining=count,
        latency_ms=float(latency),
        mutation=mutation,
        apply_probability=probability,
        seed=seed,
        delay_s=delay_s,
        retry_after_s=retry_after_s,
    )


def _parse_mutation(payload: dict[str, Any]) -> Mutation:
    path = payload.get("path")
    if not isinstance(path, str):
        raise FaultSpecError("a mutate fault needs 'path': dot-separated, relative to 'result'")
    if path and any(segment == "" for segment in path.split(".")):
        raise FaultSpecError(f"'path' has an empty segment: {path!r}")
    delete = payload.get("delete", False)
    if not isinstance(delete, bool):
        raise FaultSpecError("'delete' must be true or false")
    if delete == ("value" in payload):
        raise FaultSpecError("a mutate fault needs exactly one of 'value' and 'delete': true")
    return Mutation(path=path, value=copy.deepcopy(payload.get("value")), delete=delete)


class FaultBook:
    """The armed faults, and the orders a `late_visibility` fault keeps out of the order lists."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._hidden: dict[str, float] = {}  # txid -> when it becomes visible

    def arm(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()
        self._hidden.clear()

    def hide(self, txids: Iterable[str], until: float) -> None:
        for txid in txids:
            self._hidden[txid] = until

    def hidden(self, now: float) -> frozenset[str]:
        """The orders still kept out of the order lists at `now`."""
        for txid in [t for t, until in self._hidden.items() if until <= now]:
            del self._hidden[txid]
        return frozenset(self._hidden)

    def take(self, method: str) -> Fault | None:
        """The fault this request suffers, if any; uses up one of its count."""
        return self._take((method, ALL_METHODS))

    def take_socket(self, channel: str) -> Fault | None:
        """The fault the next frame of this WebSocket channel suffers, if any (armed for
        `ws:<channel>` itself; "*" does not reach the socket)."""
        return self._take((f"ws:{channel}",))

    def _take(self, endpoints: tuple[str, ...]) -> Fault | None:
        for fault in self._faults:
            if fault.endpoint in endpoints:
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def armed(self) -> list[dict[str, Any]]:
        return [fault.as_json() for fault in self._faults]
