"""Injected faults: what the next matching requests suffer instead of (or besides) a normal reply.

A fault is armed with `POST /sim/fault` for one method name (or "*" for every public and private
method) and fires on the next `count` matching requests (-1: until cleared). Faults armed for the
same method fire in the order they were armed; each request takes at most one fault.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
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
    DROP_REPLY = "drop_reply"  # applied, then the connection is closed with no reply
    INTERNAL = "internal"  # EGeneral:Internal error, not applied
    BAD_REPLY = "bad_reply"  # applied, then HTTP 200 with a body that is not Kraken's envelope


# Faults that happen "in front of" Kraken: the request never reaches authentication, so its
# nonce is not consumed and re-sending the very same request later is accepted.
GATEWAY_KINDS = frozenset({FaultKind.HTTP502, FaultKind.HTTP520, FaultKind.HANG})

# Faults answered by Kraken itself after authentication (the nonce is consumed).
ERROR_BY_KIND = {
    FaultKind.UNAVAILABLE: errors.SERVICE_UNAVAILABLE,
    FaultKind.BUSY: errors.SERVICE_BUSY,
    FaultKind.INTERNAL: errors.INTERNAL_ERROR,
}


class FaultSpecError(ValueError):
    """A /sim/fault payload that does not describe a fault."""


@dataclass
class Fault:
    endpoint: str
    kind: FaultKind
    remaining: int  # -1 = until cleared
    latency_ms: float

    def as_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind.value,
            "count": self.remaining,
            "latency_ms": self.latency_ms,
        }


def parse_fault(payload: Any) -> Fault:
    """Validate a /sim/fault body: {"endpoint", "kind", "count"=1, "latency_ms"=0}."""
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
    unknown = sorted(set(payload) - {"endpoint", "kind", "count", "latency_ms"})
    if unknown:
        raise FaultSpecError(f"unknown field(s): {', '.join(unknown)}")
    return Fault(endpoint=endpoint, kind=kind, remaining=count, latency_ms=float(latency))


class FaultBook:
    """The armed faults."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def arm(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str) -> Fault | None:
        """The fault this request suffers, if any; uses up one of its count."""
        for fault in self._faults:
            if fault.endpoint in (method, ALL_METHODS):
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def armed(self) -> list[dict[str, Any]]:
        return [fault.as_json() for fault in self._faults]
