"""What paper mode learns from the daemon's log lines: copies per user, latency, readiness.

The daemon's JSON lines are the only interface: paper mode never imports the copy engine, so
what it reports is what an operator reading the same logs would see.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

import structlog

# Events the copy engine logs, one per copy, with the outcome.
COPY_OUTCOMES: Mapping[str, str] = {
    "copy.placed": "placed",
    "copy.skipped": "skipped",
    "copy.failed": "failed",
    "copy.validated": "skipped",  # dry run: Kraken validated the copy, nothing was placed
}
# Any of these means the daemon is up and watching the master: the demo trader may start.
READY_EVENTS = frozenset({"daemon.running"})
# Events that name a master order the daemon has seen: every `copy.*` event has `master_txid`.
MASTER_EVENT_PREFIXES = ("copy.", "master.", "feed.")
_USER_FIELDS = ("user_id", "user", "account")
_MASTER_FIELDS = ("master_txid", "master_order", "master")


def _text(event: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = event.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _user_of(event: Mapping[str, Any]) -> str | None:
    raw = _text(event, _USER_FIELDS)
    return raw.removeprefix("USER:") if raw else None


def _latency_ms(event: Mapping[str, Any], placed_at: Mapping[str, float]) -> float | None:
    for name, scale in (("latency_ms", 1.0), ("latency_s", 1000.0)):
        value = event.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) * scale
    # Fallback: from the demo trader's acknowledgement to this log line.
    master = _text(event, _MASTER_FIELDS)
    stamp = event.get("timestamp")
    if master is not None and master in placed_at and isinstance(stamp, str):
        try:
            logged = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
        return max(0.0, (logged - placed_at[master]) * 1000.0)
    return None


class PaperStats:
    """Counts from the daemon's log lines. Fed by one thread, read after it has finished."""

    def __init__(self, user_ids: Sequence[str]) -> None:
        self.user_ids = tuple(user_ids)
        self.by_user: dict[str, dict[str, int]] = {
            u: {"placed": 0, "skipped": 0, "failed": 0} for u in self.user_ids
        }
        self.masters_seen: set[str] = set()
        self.placed_events: list[dict[str, Any]] = []
        self.outcomes = {"placed": 0, "skipped": 0, "failed": 0}

    def observe_line(self, line: str) -> dict[str, Any] | None:
        """Parse one output line; count it if it is a copy event. None if it is not JSON."""
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        name = event.get("event")
        outcome = COPY_OUTCOMES.get(name) if isinstance(name, str) else None
        master = (
            _text(event, _MASTER_FIELDS)
            if isinstance(name, str) and name.startswith(MASTER_EVENT_PREFIXES)
            else None
        )
        if outcome is not None:
            self.outcomes[outcome] += 1
            user = _user_of(event)
            if user is not None:
                self.by_user.setdefault(user, {"placed": 0, "skipped": 0, "failed": 0})
                self.by_user[user][outcome] += 1
            if outcome == "placed":
                self.placed_events.append(event)
        if master:
            self.masters_seen.add(master)
        return event

    @staticmethod
    def is_ready_event(event: Mapping[str, Any]) -> bool:
        return event.get("event") in READY_EVENTS

    def summary(
        self, *, placed_at: Mapping[str, float], master_orders_placed: int, master_cancels: int
    ) -> dict[str, Any]:
        latencies = [
            ms for ms in (_latency_ms(e, placed_at) for e in self.placed_events) if ms is not None
        ]
        return {
            "master_orders_placed": master_orders_placed,
            "master_cancels": master_cancels,
            "master_orders_seen": len(self.masters_seen),
            "copies_placed": self.outcomes["placed"],
            "copies_skipped": self.outcomes["skipped"],
            "copies_failed": self.outcomes["failed"],
            "by_user": self.by_user,
            "copy_latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
            "copy_latency_ms_worst": round(max(latencies), 1) if latencies else None,
        }

    @staticmethod
    def sentence(summary: Mapping[str, Any]) -> str:
        median, worst = summary["copy_latency_ms_median"], summary["copy_latency_ms_worst"]
        latency = "no copies timed" if median is None else f"median {median} ms, worst {worst} ms"
        return (
            f"paper run over: {summary['master_orders_seen']} master orders seen "
            f"({summary['master_orders_placed']} placed by the demo trader); copies placed "
            f"{summary['copies_placed']}, skipped {summary['copies_skipped']}, failed "
            f"{summary['copies_failed']}; copy latency {latency}"
        )


def render_console(stream: TextIO) -> Callable[[dict[str, Any]], str] | None:
    """On a terminal, a function drawing a daemon JSON line the way our own lines look there."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    renderer = structlog.dev.ConsoleRenderer(colors=True)

    def render(event: dict[str, Any]) -> str:
        fields = dict(event)
        level = str(fields.get("level", "info"))
        return str(renderer(None, level, fields))

    return render
