"""Whether a user's account is resting: its broker sends no private call for a while after a
lockout, a bad key or signature, or spent nonce jumps (`KrakenBroker.cooldown_remaining_s`).

A resting account is not a reason to end a copy. The user's lane asks `rest_of` before each
step and waits for the rest to end (in memory: the rest is the broker's, so a restart goes on at
once); a step that meets the rest itself (the call that started it, answered with a lockout or
a bad key) asks `rest_of` after the `AccountUnusableError`, and the copy waits
(`CopyOutcomes.wait_if_resting`, uncounted) instead of failing. An `AccountUnusableError` that
starts no rest (a missing permission) still ends the copy `failed`."""

from __future__ import annotations

from dataclasses import dataclass

from copytrader.copying.accounts import UserAccount


@dataclass(frozen=True)
class Rest:
    remaining_s: float
    reason: str  # what started it, as the broker recorded it


def rest_of(account: UserAccount) -> Rest | None:
    """The account's current rest, or None when it may trade."""
    remaining = account.broker.cooldown_remaining_s()
    if remaining <= 0:
        return None
    return Rest(remaining, account.broker.cooldown_reason())
