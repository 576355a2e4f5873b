"""The risk gates a user's copies pass besides the kill switch: close-only (switched by a file,
the environment, the config, or the drawdown stop) and the slippage cap of market copies.

Close-only: only what reduces the user's holding is copied. On spot that is a sell (sizing never
sells more than the user holds) and every cancel (cancels do not pass the gates at all); a buy
is skipped with the reason. It is on for a user while any of these holds:

- `COPYTRADER_CLOSE_ONLY` is set (every user);
- the file `<data_dir>/CLOSE_ONLY` exists (every user), or `<data_dir>/CLOSE_ONLY.<user id>`
  (that user): like the kill switch, creating or removing it takes effect at the next copy,
  without a restart or redeploy;
- the user's `close_only = true` (its default: `[copy] close_only`);
- the user is in the drawdown stop (see `risk_monitor`), kept in the ledger until the operator
  lifts it with the file `<data_dir>/RESET_DRAWDOWN.<user id>`.

Each change is one event per user: `risk.close_only_on` / `risk.close_only_off`, with `account`
and the reason.

The slippage cap (`max_slippage_bps`): see `risk_slippage`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from copytrader.config.types import USER_PREFIX
from copytrader.copying.risk_slippage import CappedFill, cap_market_copy, read_capped_fill
from copytrader.domain import OrderType, Side, TimeInForce
from copytrader.kraken.models import OrderRequest
from copytrader.ledger import CopyRecord, MasterOrderRecord, RiskState
from copytrader.logs import get_logger

log = get_logger(__name__)

CLOSE_ONLY_FILE_NAME = "CLOSE_ONLY"
RESET_DRAWDOWN_FILE_NAME = "RESET_DRAWDOWN"


@dataclass(frozen=True)
class UserRisk:
    """A user's risk settings (from config.UserConfig; None / False: off)."""

    max_slippage_bps: Decimal | None = None
    close_only: bool = False
    max_drawdown_pct: Decimal | None = None
    cancel_after_s: int = 0  # the dead-man switch's timeout (service/deadman.py); 0: off


class RiskLedger(Protocol):
    """What the risk gates keep in the ledger (Ledger has it)."""

    def risk_state(self, user_id: str) -> RiskState: ...
    def note_equity(self, user_id: str, equity: Decimal) -> RiskState: ...
    def set_drawdown_stop(self, user_id: str, reason: str, detail: dict[str, Any]) -> None: ...
    def lift_drawdown_stop(self, user_id: str, equity: Decimal, detail: dict[str, Any]) -> None: ...
    def record_risk_event(
        self, user_id: str, kind: str, master_txid: str | None, detail: dict[str, Any]
    ) -> None: ...


class OrderLookup(Protocol):
    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> Any: ...


def account_of(user_id: str) -> str:
    return f"{USER_PREFIX}{user_id}"


class RiskControls:
    """The users' risk settings and close-only state, read by the gates before every copy."""

    def __init__(
        self,
        data_dir: Path,
        users: Mapping[str, UserRisk],
        ledger: RiskLedger,
        *,
        close_only_env: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.users = dict(users)
        self._ledger = ledger
        self._close_only_env = close_only_env
        self._lock = threading.Lock()
        self._was_on: dict[str, str] = {}  # user -> the reason last reported
        # The drawdown stops, as the ledger keeps them (written through by the monitor).
        self._stopped: dict[str, str] = {}
        for user_id in self.users:
            state = ledger.risk_state(user_id)
            if state.drawdown_stop:
                self._stopped[user_id] = state.stop_reason or "drawdown stop"

    @property
    def ledger(self) -> RiskLedger:
        return self._ledger

    def settings_of(self, user_id: str) -> UserRisk:
        return self.users.get(user_id, UserRisk())

    # ---- close-only -----------------------------------------------------------------------

    def close_only_reason(self, user_id: str) -> str | None:
        """Why only reducing orders are copied for this user now, or None; reports a change."""
        why = self._why_close_only(user_id)
        with self._lock:
            before = self._was_on.get(user_id)
            if why == before:
                return why
            if why is None:
                self._was_on.pop(user_id, None)
            else:
                self._was_on[user_id] = why
        if why is not None and before is None:
            log.warning(
                "risk.close_only_on",
                message=f"{user_id}: close-only ({why}): only sells of what the account holds"
                " and cancels are copied, buys are skipped",
                account=account_of(user_id),
                user=user_id,
                reason=why,
            )
        elif why is None:
            log.info(
                "risk.close_only_off",
                message=f"{user_id}: close-only off ({before} no longer holds): every order is"
                " copied again",
                account=account_of(user_id),
                user=user_id,
                reason=before,
            )
        else:  # still on, for another reason
            log.info(
                "risk.close_only_on",
                message=f"{user_id}: close-only now because {why}",
                account=account_of(user_id),
                user=user_id,
                reason=why,
            )
        return why

    def _why_close_only(self, user_id: str) -> str | None:
        if self._close_only_env:
            return "COPYTRADER_CLOSE_ONLY is set"
        if (self.data_dir / CLOSE_ONLY_FILE_NAME).exists():
            return f"file {self.data_dir / CLOSE_ONLY_FILE_NAME}"
        own = self.data_dir / f"{CLOSE_ONLY_FILE_NAME}.{user_id}"
        if own.exists():
            return f"file {own}"
        if self.settings_of(user_id).close_only:
            return "the user's close_only = true"
        with self._lock:
            return self._stopped.get(user_id)

    def gate(self, master: MasterOrderRecord, user_id: str) -> str | None:
        """Why this user's copy of `master` must not go out under close-only, or None."""
        why = self.close_only_reason(user_id)
        if why is None or master.side is not Side.BUY:
            return None
        return f"close-only ({why}): a buy would add to the holding"

    # ---- the drawdown stop (see risk_monitor) ---------------------------------------------

    def drawdown_stopped(self, user_id: str) -> bool:
        with self._lock:
            return user_id in self._stopped

    def stop_for_drawdown(self, user_id: str, reason: str, detail: dict[str, Any]) -> None:
        self._ledger.set_drawdown_stop(user_id, reason, detail)
        with self._lock:
            self._stopped[user_id] = reason

    def lift_drawdown_stop(self, user_id: str, equity: Decimal, detail: dict[str, Any]) -> None:
        self._ledger.lift_drawdown_stop(user_id, equity, detail)
        with self._lock:
            self._stopped.pop(user_id, None)

    # ---- the slippage cap (see risk_slippage) ---------------------------------------------

    def cap(
        self,
        master: MasterOrderRecord,
        request: OrderRequest,
        tick_size: Decimal,
        reference: Decimal | None,
        user_id: str,
    ) -> tuple[OrderRequest, str | None]:
        """The copy's AddOrder with the user's slippage cap applied (a market copy becomes an
        IOC limit), and a note saying so; unchanged when there is no cap."""
        bps = self.settings_of(user_id).max_slippage_bps
        if bps is None or master.order_type is not OrderType.MARKET:
            return request, None
        return cap_market_copy(master, request, tick_size, bps, reference)

    @staticmethod
    def as_sent(master: MasterOrderRecord, request: OrderRequest) -> OrderRequest:
        """A copy rebuilt from its ledger row as it was first sent: a market copy with a price
        in its row went out capped (an IOC limit at that price)."""
        if master.order_type is OrderType.MARKET and request.price is not None:
            return OrderRequest(
                pair=request.pair, side=request.side, order_type=OrderType.LIMIT,
                volume=request.volume, price=request.price, cl_ord_id=request.cl_ord_id,
                oflags=request.oflags, timeinforce=TimeInForce.IOC, validate=request.validate,
            )  # fmt: skip
        return request

    def after_send(
        self,
        broker: OrderLookup,
        master: MasterOrderRecord,
        copy: CopyRecord,
        request: OrderRequest,
    ) -> tuple[str, ...]:
        """After a capped copy was placed: how much of it filled. The unfilled part is
        reported (`risk.slippage_unfilled`, a `risk_events` row) and never chased. Notes for
        the copy's ledger row."""
        if master.order_type is not OrderType.MARKET or request.order_type is not OrderType.LIMIT:
            return ()
        fill = read_capped_fill(broker, copy.cl_ord_id)
        if fill is None:
            return (f"capped at {request.price}: its fill could not be read",)
        return (self._report_fill(master, copy, request, fill),)

    def _report_fill(
        self, master: MasterOrderRecord, copy: CopyRecord, request: OrderRequest, fill: CappedFill
    ) -> str:
        unfilled = request.volume - fill.filled
        note = (
            f"IOC limit {request.price} (max_slippage_bps"
            f" {self.settings_of(copy.user_id).max_slippage_bps} from {master.avg_price or '?'}):"
            f" filled {fill.filled} of {request.volume}"
        )
        if unfilled <= 0:
            return note
        note += f", {unfilled} unfilled, not chased"
        detail = {
            "cap_price": str(request.price),
            "master_avg_price": None if master.avg_price is None else str(master.avg_price),
            "volume": str(request.volume),
            "filled": str(fill.filled),
            "unfilled": str(unfilled),
            "avg_price": None if fill.avg_price is None else str(fill.avg_price),
            "max_slippage_bps": str(self.settings_of(copy.user_id).max_slippage_bps),
        }
        self._ledger.record_risk_event(copy.user_id, "slippage_unfilled", master.txid, detail)
        log.warning(
            "risk.slippage_unfilled",
            message=(
                f"copy of {master.txid} for {copy.user_id}: the book had only {fill.filled}"
                f" of {request.volume} within the cap {request.price}; {unfilled} left"
                " unfilled and not chased"
            ),
            account=account_of(copy.user_id),
            user=copy.user_id,
            master_txid=master.txid,
            cl_ord_id=copy.cl_ord_id,
            **detail,
        )
        return note
