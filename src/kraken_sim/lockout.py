"""Temporary lockout after repeated authentication failures, as Kraken does.

Failures are counted per subject: an API key for bad signatures and bad nonces, a source
address for unknown keys. `failures` of them within `within_seconds` lock the subject out for
`duration_seconds`; while locked out every call of that subject gets EGeneral:Temporary lockout.
Calls made during the lockout do not extend it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from kraken_sim.accounts import LockoutPolicy


class Lockouts:
    """Failure counters and lockout deadlines for many subjects."""

    def __init__(self, policy: LockoutPolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def is_locked(self, subject: str) -> bool:
        until = self._locked_until.get(subject)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._locked_until[subject]
        return False

    def record_failure(self, subject: str) -> bool:
        """Count one failure; True if this failure started a lockout."""
        now = self._clock()
        recent = self._failures.setdefault(subject, deque())
        recent.append(now)
        while recent and recent[0] <= now - self._policy.within_seconds:
            recent.popleft()
        if len(recent) < self._policy.failures:
            return False
        recent.clear()
        self._locked_until[subject] = now + self._policy.duration_seconds
        return True

    def clear(self) -> None:
        """Forget all failures and lockouts (a test control)."""
        self._failures.clear()
        self._locked_until.clear()

    def locked_subjects(self) -> list[str]:
        return [subject for subject in list(self._locked_until) if self.is_locked(subject)]
