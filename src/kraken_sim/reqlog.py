"""What the simulator was asked: a bounded log of private requests and simple counters."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

MAX_LOGGED = 2000


@dataclass(frozen=True)
class LoggedRequest:
    time: float
    key: str | None  # the full key, only for filtering; never printed
    account: str | None
    method: str
    nonce: str | None
    error: str | None
    fault: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "account": self.account,
            "method": self.method,
            "nonce": self.nonce,
            "error": self.error,
            "fault": self.fault,
        }


class RequestLog:
    """The last MAX_LOGGED private requests, plus counts of every /0/ request by method."""

    def __init__(self) -> None:
        self._private: deque[LoggedRequest] = deque(maxlen=MAX_LOGGED)
        self.requests = 0
        self.by_method: Counter[str] = Counter()
        self.by_error: Counter[str] = Counter()

    def count(self, method: str) -> None:
        self.requests += 1
        self.by_method[method] += 1

    def record_error(self, error: str) -> None:
        self.by_error[error] += 1

    def record_private(self, entry: LoggedRequest) -> None:
        self._private.append(entry)

    def private_requests(self, key: str | None = None) -> list[dict[str, Any]]:
        return [entry.as_json() for entry in self._private if key is None or entry.key == key]
