"""CancelAllOrdersAfter: Kraken's dead-man switch, one timer per account.

`timeout` (whole seconds, 0 to 86399) arms the timer to fire `timeout` seconds from now; 0
disables it. A call re-arms it (Kraken suggests every 15-30 s with 60). When the simulator's
clock reaches the trigger time, every open order of the account is cancelled and the timer is
off until a new non-zero timeout is sent. Timers are checked before every request, like order
expiry, so moving the clock (`/sim/clock`) and making any call fires a due timer (the orders'
`closetm` is that call's time, their reason "Dead man switch"). The reply is Kraken's
`{"currentTime", "triggerTime"}` in RFC 3339 seconds; `triggerTime` is "0" when disabled.

Kraken keeps the timer per API key; the simulator's engine knows accounts, not keys, so the
timer is per account (every key of an account shares it).
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from typing import Any

from kraken_sim import params as p
from kraken_sim.errors import SimError, invalid_arguments

MAX_TIMEOUT_S = 86400  # exclusive
REASON_DEAD_MAN = "Dead man switch"


def rfc3339(moment: float) -> str:
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(moment))


class DeadManSwitch:
    def __init__(self) -> None:
        self._triggers: dict[str, float] = {}  # account -> when it fires

    def arm(self, account_id: str, params: Mapping[str, Any], now: float) -> dict[str, str]:
        timeout = p.integer(params, "timeout")
        if timeout is None or not 0 <= timeout < MAX_TIMEOUT_S:
            raise SimError(invalid_arguments("timeout"))
        if timeout == 0:
            self._triggers.pop(account_id, None)
            return {"currentTime": rfc3339(now), "triggerTime": "0"}
        self._triggers[account_id] = now + timeout
        return {"currentTime": rfc3339(now), "triggerTime": rfc3339(now + timeout)}

    def due(self, now: float) -> list[tuple[str, float]]:
        """The accounts whose timer has fired by `now`, with when; their timers are now off."""
        fired = sorted((when, account) for account, when in self._triggers.items() if now >= when)
        for _, account in fired:
            del self._triggers[account]
        return [(account, when) for when, account in fired]
