"""The gates a copy passes just before it is sent: the kill switch, the master order still
standing (not cancelled, expired or past its expiry time), the signal not too old."""

from __future__ import annotations

from collections.abc import Callable

from copytrader.copying.accounts import CopierSettings
from copytrader.copying.kill_switch import KillSwitch
from copytrader.domain import OrderStatus
from copytrader.ledger import MasterOrderRecord


class CopyGates:
    def __init__(
        self, kill_switch: KillSwitch, settings: CopierSettings, clock: Callable[[], float]
    ) -> None:
        self._kill_switch = kill_switch
        self._settings = settings
        self._clock = clock

    def kill_switch_reason(self) -> str | None:
        return self._kill_switch.reason()

    def reason_not_to_send(self, master: MasterOrderRecord) -> str | None:
        """Why no copy should be sent now, or None."""
        kill = self._kill_switch.reason()
        if kill:
            return kill
        if master.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            return f"master order {master.status.value} before the copy was sent"
        if master.status not in (OrderStatus.OPEN, OrderStatus.PENDING):
            age = self._clock() - master.opentm
            if age > self._settings.max_signal_age_s:
                return (
                    f"signal too old: master order filled {age:.0f} s ago, more than "
                    f"max_signal_age_seconds {self._settings.max_signal_age_s:g}"
                )
        if master.expiretm and master.expiretm <= self._clock():
            return "master order's expiry time has passed"
        return None
