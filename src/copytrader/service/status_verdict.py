"""Is the daemon copying, and if not, why: the one rule behind `/healthz`, the health command
(`python -m copytrader.service.health`), the status page's headline and `daemon.not_copying`.

Copying means all of: the daemon runs its copy loop (not starting, not stopping), MASTER can be
used and is not resting, MASTER's orders were read recently (the feed is fresh), at least one
user is ready (connected and not resting), and the kill switch is off. Anything else is a
`Verdict` with `copying=False`, a state name and a sentence for the operator.

`HealthFacts` is what the rule reads. The daemon builds it live (`status_state.StatusBoard`) and
writes it, with the time, to `<data_dir>/health.json` every few seconds, so the health command
decides from the same facts with the same rule, and calls a file that stopped changing a hung or
dead daemon.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from copytrader.logs import get_logger

log = get_logger(__name__)

HEALTH_FILE_NAME = "health.json"
# The feed counts as fresh while its last successful read is younger than this many poll
# intervals, and never less than FEED_FRESH_MIN_S (a poll's own timeout and one retry fit).
FEED_FRESH_POLLS = 5
FEED_FRESH_MIN_S = 60.0
# The daemon rewrites health.json this often; the health command calls an older file stale.
HEALTH_FILE_INTERVAL_S = 5.0
HEALTH_FILE_STALE_S = 60.0


class Phase(Enum):
    """Where the daemon is in its life."""

    STARTING = "starting"  # connecting accounts, checking the ledger
    RUNNING = "running"  # in its copy loop
    STOPPING = "stopping"  # a stop was requested: draining, then exiting


class CopyState(Enum):
    """The verdict's state: `copying`, or the first reason it is not."""

    COPYING = "copying"
    STARTING = "starting"
    STOPPING = "stopping"
    MASTER_DOWN = "master_down"  # MASTER cannot be used, or rests (a lockout)
    FEED_STALE = "feed_stale"  # MASTER's orders have not been read for too long
    NO_USER_READY = "no_user_ready"  # every user is locked out, resting or not connected
    KILL_SWITCH = "kill_switch"  # the operator stopped copying on purpose


@dataclass(frozen=True)
class HealthFacts:
    """What the rule reads, as plain values (it round-trips through health.json)."""

    phase: str = Phase.STARTING.value
    # Why MASTER cannot be used (the daemon rests until it can), or None.
    master_problem: str | None = None
    # Seconds MASTER's key still rests (Kraken's lockout, a rate limit), 0 when it does not.
    master_rest_s: float = 0.0
    # Seconds since MASTER's orders were last read successfully; None: not yet.
    feed_age_s: float | None = None
    # The last error reading MASTER's orders, kept until a read succeeds.
    feed_error: str | None = None
    poll_interval_s: float = 1.0
    # Every enabled user: id -> None when ready, else why not ("locked out, 280 s left").
    users: Mapping[str, str | None] = field(default_factory=dict)
    kill_switch: str | None = None

    @property
    def ready_users(self) -> list[str]:
        return sorted(user for user, problem in self.users.items() if problem is None)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "users": dict(self.users)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> HealthFacts:
        users = raw.get("users") or {}
        return cls(
            phase=str(raw.get("phase", Phase.STARTING.value)),
            master_problem=_text_or_none(raw.get("master_problem")),
            master_rest_s=float(raw.get("master_rest_s") or 0.0),
            feed_age_s=None if raw.get("feed_age_s") is None else float(raw["feed_age_s"]),
            feed_error=_text_or_none(raw.get("feed_error")),
            poll_interval_s=float(raw.get("poll_interval_s") or 1.0),
            users={str(k): _text_or_none(v) for k, v in dict(users).items()},
            kill_switch=_text_or_none(raw.get("kill_switch")),
        )


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Verdict:
    copying: bool
    state: CopyState
    reason: str  # one sentence for the operator (what is wrong, or what is being copied)

    @property
    def healthy(self) -> bool:
        """What `/healthz` and the health command answer: copying, or paused by the operator's
        kill switch. A pause is the operator's wish, not a fault: a Railway redeploy made while
        it is on (changing a variable redeploys) must not fail its healthcheck and leave no
        daemon running, since the master's cancels are still mirrored while it is on."""
        return self.copying or self.state is CopyState.KILL_SWITCH


def feed_fresh_limit_s(poll_interval_s: float) -> float:
    return max(FEED_FRESH_MIN_S, FEED_FRESH_POLLS * poll_interval_s)


def decide(facts: HealthFacts) -> Verdict:
    """Copying, or the first reason it is not, in the order an operator should fix them."""
    if facts.phase == Phase.STOPPING.value:
        return Verdict(False, CopyState.STOPPING, "finishing the copies in flight, then exiting")
    if facts.master_problem:
        # The daemon's own sentence ("MASTER cannot be used: <why and what to fix>").
        return Verdict(False, CopyState.MASTER_DOWN, facts.master_problem)
    if facts.phase == Phase.STARTING.value:
        return Verdict(
            False, CopyState.STARTING, "connecting the accounts, then checking the ledger"
        )
    if facts.master_rest_s > 0:
        return Verdict(
            False, CopyState.MASTER_DOWN,
            f"MASTER's key rests for {facts.master_rest_s:.0f} s more (Kraken's lockout or"
            " rate limit): its orders are not read until then",
        )  # fmt: skip
    limit = feed_fresh_limit_s(facts.poll_interval_s)
    if facts.feed_age_s is None or facts.feed_age_s > limit:
        since = "not read yet" if facts.feed_age_s is None else (
            f"last read {facts.feed_age_s:.0f} s ago (more than {limit:.0f} s)"
        )  # fmt: skip
        error = f"; last error: {facts.feed_error}" if facts.feed_error else ""
        return Verdict(False, CopyState.FEED_STALE, f"MASTER's orders {since}{error}")
    if not facts.ready_users:
        if not facts.users:
            why = "no enabled user is configured"
        else:
            why = "no user is ready: " + "; ".join(
                f"{user}: {problem}" for user, problem in sorted(facts.users.items())
            )
        return Verdict(False, CopyState.NO_USER_READY, why)
    if facts.kill_switch:
        return Verdict(
            False, CopyState.KILL_SWITCH,
            f"{facts.kill_switch}: paused, nothing new is copied (cancels still are)",
        )  # fmt: skip
    ready = facts.ready_users
    return Verdict(
        True, CopyState.COPYING,
        f"MASTER to {len(ready)}/{len(facts.users)} users ({', '.join(ready)})",
    )  # fmt: skip


# --------------------------------------------------------------------------- health.json


def write_health_file(data_dir: Path, facts: HealthFacts, *, now: float | None = None) -> None:
    """Atomically replace `<data_dir>/health.json` with the facts, the verdict and the time."""
    verdict = decide(facts)
    payload = {
        "unix": time.time() if now is None else now,
        "pid": os.getpid(),
        "copying": verdict.copying,
        "state": verdict.state.value,
        "reason": verdict.reason,
        "facts": facts.to_json(),
    }
    path = data_dir / HEALTH_FILE_NAME
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, sort_keys=True) + "\n")
    os.replace(temporary, path)


def read_health_file(
    data_dir: Path, *, now: float | None = None, stale_s: float = HEALTH_FILE_STALE_S
) -> Verdict | None:
    """The verdict from `<data_dir>/health.json`, decided again from its facts, or None when
    there is no readable file. A file older than `stale_s` means the daemon stopped writing
    it (dead or hung): not copying."""
    path = data_dir / HEALTH_FILE_NAME
    try:
        raw = json.loads(path.read_text())
        written = float(raw["unix"])
        facts = HealthFacts.from_json(raw["facts"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    age = (time.time() if now is None else now) - written
    if age > stale_s:
        return Verdict(
            False, CopyState.FEED_STALE,
            f"the daemon last wrote {path} {age:.0f} s ago: it is not running, or hung",
        )  # fmt: skip
    return decide(facts)


# --------------------------------------------------------------------------- not copying alarm


class NotCopyingAlarm:
    """Logs `daemon.not_copying` (an error, forwarded to notifications) once the daemon has not
    been copying for `after_s`, once per such spell, and `daemon.copying_again` when it copies
    again after one. A stop is not a spell: the daemon says so itself (`daemon.stopped`)."""

    def __init__(self, after_s: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.after_s = after_s
        self._monotonic = monotonic
        self._since: float | None = None
        self._alarmed = False

    def observe(self, verdict: Verdict) -> bool:
        """Feed the current verdict; True when this call logged `daemon.not_copying`."""
        now = self._monotonic()
        if verdict.copying or verdict.state is CopyState.STOPPING:
            if self._alarmed and verdict.copying:
                log.info(
                    "daemon.copying_again",
                    message=f"copying again after {(now - (self._since or now)) / 60:.1f} min:"
                    f" {verdict.reason}",
                )
            self._since, self._alarmed = None, False
            return False
        if self._since is None:
            self._since = now
        if self._alarmed or now - self._since < self.after_s:
            return False
        self._alarmed = True
        log.error(
            "daemon.not_copying",
            message=f"not copying for {(now - self._since) / 60:.0f} min: {verdict.reason}",
            state=verdict.state.value,
            reason=verdict.reason,
            minutes=round((now - self._since) / 60, 1),
        )
        return True
