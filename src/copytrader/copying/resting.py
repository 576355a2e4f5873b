"""Whether a user's account is resting: its broker sends no private call for a while after a
lockout, a bad key or signature, or spent nonce jumps (`KrakenBroker.cooldown_remaining_s`).

A resting account is not a reason to end a copy: each step of a copy asks `rest_of` before its
first call and after an `AccountUnusableError`, and a resting account makes the copy wait
(`CopyOutcomes.wait_for_rest`) instead of failing."""

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
