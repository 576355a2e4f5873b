"""The gates a copy passes just before it is sent: the kill switch, the user's close-only
switch (see `risk`), the master order still standing (not cancelled, expired or past its expiry
time), the signal not too old; and the slippage cap a market copy is sent with (see
`risk_slippage`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from copytrader.copying.accounts import CopierSettings
from copytrader.copying.kill_switch import KillSwitch
from copytrader.copying.risk import OrderLookup, RiskControls
from copytrader.domain import OrderStatus
from copytrader.kraken.models import OrderRequest
from copytrader.ledger import CopyRecord, MasterOrderRecord


class CopyGates:
    def __init__(
        self,
        kill_switch: KillSwitch,
        settings: CopierSettings,
        clock: Callable[[], float],
        risk: RiskControls | None = None,
    ) -> None:
        self._kill_switch = kill_switch
        self._settings = settings
        self._clock = clock
        self._risk = risk

    def kill_switch_reason(
        self, master: MasterOrderRecord | None = None, user_id: str = ""
    ) -> str | None:
        """The switches only (checked before every send): the kill switch, and with a master
        order and a user, that user's close-only."""
        kill = self._kill_switch.reason()
        if kill or master is None or not user_id or self._risk is None:
            return kill
        return self._risk.gate(master, user_id)

    def reason_not_to_send(self, master: MasterOrderRecord, user_id: str = "") -> str | None:
        """Why no copy (for `user_id`, when given) should be sent now, or None."""
        kill = self.kill_switch_reason(master, user_id)
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

    def cap(
        self,
        master: MasterOrderRecord,
        request: OrderRequest,
        tick_size: Decimal,
        reference: Decimal | None,
        user_id: str,
    ) -> tuple[OrderRequest, str | None]:
        """The copy's AddOrder under the user's slippage cap, and a note when capped."""
        if self._risk is None:
            return request, None
        return self._risk.cap(master, request, tick_size, reference, user_id)

    def as_sent(self, master: MasterOrderRecord, request: OrderRequest) -> OrderRequest:
        """A copy rebuilt from its ledger row, as it was first sent (capped or not)."""
        return request if self._risk is None else self._risk.as_sent(master, request)

    def after_send(
        self,
        broker: OrderLookup,
        master: MasterOrderRecord,
        copy: CopyRecord,
        request: OrderRequest,
    ) -> tuple[str, ...]:
        """Notes on a placed copy from the risk gates (a capped copy's fill)."""
        if self._risk is None or request.validate:
            return ()
        return self._risk.after_send(broker, master, copy, request)
