"""The drawdown stop, and the close-only switches looked at between copies.

Every `risk_check_seconds` (one TradeBalance per user with `max_drawdown_pct`, one REST point):
the user's equity raises the high-water mark kept in the ledger (`risk_state`); once the equity
is `max_drawdown_pct` or more below that mark, the user goes close-only (`risk.drawdown_stop`
with account, equity, mark and pct, then `risk.close_only_on`), recorded in the ledger so a
restart keeps it. It stays until the operator creates `<data_dir>/RESET_DRAWDOWN.<user id>`:
the stop is lifted, the mark starts again from the equity then, the file is removed
(`risk.drawdown_reset`, `risk.close_only_off`).

The same round asks every user's close-only switch, so that turning one on or off is reported
within a round even when no copy is being made.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from copytrader.copying.risk import RESET_DRAWDOWN_FILE_NAME, RiskControls, account_of
from copytrader.kraken.models import TradeBalance
from copytrader.logs import get_logger

log = get_logger(__name__)


class EquityBroker(Protocol):
    def trade_balance(self, asset: str = "ZUSD") -> TradeBalance: ...


class RiskMonitor:
    """Runs the drawdown checks on a thread of its own until `stop` is set."""

    def __init__(
        self,
        controls: RiskControls,
        brokers: Mapping[str, EquityBroker],
        *,
        equity_asset: str,
        interval_s: float,
        stop: threading.Event,
    ) -> None:
        self._controls = controls
        self._brokers = dict(brokers)
        self._asset = equity_asset
        self._interval_s = interval_s
        self._stop = stop
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="risk-monitor", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            try:
                self.check_once()
            except Exception as error:  # a bug must not end the checks silently
                log.exception(
                    "risk.check_failed",
                    message=f"the risk check failed ({error}); trying again next round",
                )
            if self._stop.wait(self._interval_s):
                return

    def check_once(self) -> None:
        for user_id, broker in self._brokers.items():
            if self._stop.is_set():
                return
            self._reset_if_asked(user_id, broker)
            if self._controls.settings_of(user_id).max_drawdown_pct is not None:
                self._check_drawdown(user_id, broker)
            self._controls.close_only_reason(user_id)

    def _equity(self, user_id: str, broker: EquityBroker) -> Decimal | None:
        try:
            return broker.trade_balance(self._asset).equity
        except Exception as error:  # noqa: BLE001 - the next round reads it again
            log.info(
                "risk.equity_unread",
                message=f"{user_id}: equity not read for the drawdown check ({error})",
                account=account_of(user_id),
                user=user_id,
            )
            return None

    def _check_drawdown(self, user_id: str, broker: EquityBroker) -> None:
        limit = self._controls.settings_of(user_id).max_drawdown_pct
        assert limit is not None
        if self._controls.drawdown_stopped(user_id):
            return
        equity = self._equity(user_id, broker)
        if equity is None:
            return
        state = self._controls.ledger.note_equity(user_id, equity)
        mark = state.equity_mark
        if mark is None or mark <= 0:
            return
        pct = (mark - equity) / mark * 100
        if pct < limit:
            return
        shown_pct = pct.quantize(Decimal("0.01"))
        reason = (
            f"drawdown stop: equity {equity} {self._asset} is {shown_pct}% below its high-water"
            f" mark {mark} (max_drawdown_pct {limit})"
        )
        detail = {
            "equity": str(equity),
            "mark": str(mark),
            "pct": str(shown_pct),
            "max_drawdown_pct": str(limit),
            "asset": self._asset,
        }
        self._controls.stop_for_drawdown(user_id, reason, detail)
        log.error(
            "risk.drawdown_stop",
            message=(
                f"{user_id}: {reason}: the account is close-only until the operator creates"
                f" {self._controls.data_dir / f'{RESET_DRAWDOWN_FILE_NAME}.{user_id}'}"
            ),
            account=account_of(user_id),
            user=user_id,
            **detail,
        )

    def _reset_if_asked(self, user_id: str, broker: EquityBroker) -> None:
        path = self._controls.data_dir / f"{RESET_DRAWDOWN_FILE_NAME}.{user_id}"
        if not path.exists():
            return
        equity = self._equity(user_id, broker)
        if equity is None:
            return  # asked again next round; the file stays until it is done
        was_stopped = self._controls.drawdown_stopped(user_id)
        self._controls.lift_drawdown_stop(
            user_id, equity, {"equity": str(equity), "was_stopped": was_stopped}
        )
        path.unlink(missing_ok=True)
        log.warning(
            "risk.drawdown_reset",
            message=(
                f"{user_id}: drawdown stop lifted by {path.name}; the high-water mark starts"
                f" again from the equity {equity} {self._asset}"
            ),
            account=account_of(user_id),
            user=user_id,
            equity=str(equity),
            was_stopped=was_stopped,
        )
