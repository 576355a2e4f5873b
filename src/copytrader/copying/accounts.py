"""What the copier works with: the users' accounts and sizing settings, the copier's settings,
and what it needs from a broker and tells an observer."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from copytrader.domain import SizingMode
from copytrader.kraken import models as kraken

# Equity and balances are re-read after this long (prices move), and after a copy of the user
# is placed or the master's orders fill (both change what the sizing reads).
SNAPSHOT_TTL_S = 30.0
# Attempts at sending one copy before it is abandoned.
MAX_ATTEMPTS = 6


class CopyBroker(Protocol):
    """What the copier needs from one account's broker (KrakenBroker has it)."""

    def trade_balance(self, asset: str = "ZUSD") -> kraken.TradeBalance: ...
    def balances_ex(self) -> dict[str, kraken.AssetBalance]: ...
    def pair(self, name: str) -> kraken.PairInfo: ...
    def cached_pair(self, name: str) -> kraken.PairInfo | None: ...
    def ticker(self, pair: str) -> kraken.Ticker: ...
    def add_order(self, request: kraken.OrderRequest) -> kraken.AddOrderResult: ...
    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> kraken.Order | None: ...
    def cancel_order(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> int: ...
    def open_orders(self, *, cl_ord_id: str | None = None) -> dict[str, kraken.Order]: ...
    def closed_orders(
        self, *, start: float | None = None, ofs: int = 0, cl_ord_id: str | None = None
    ) -> kraken.ClosedOrdersPage: ...
    def settle(self, seconds: float) -> None: ...


class CopyObserver(Protocol):
    """Told about each outcome (the lifecycle's Heartbeat counts them)."""

    def copy_placed(self) -> None: ...
    def copy_skipped(self) -> None: ...
    def copy_failed(self) -> None: ...


@dataclass(frozen=True)
class UserSizing:
    """A user's sizing settings (from config.UserConfig)."""

    multiplier: Decimal = Decimal(1)
    max_order_fraction: Decimal | None = None
    max_notional: Decimal | None = None
    fixed_notional: Decimal | None = None
    round_up_to_minimum: bool = False


@dataclass(frozen=True)
class UserAccount:
    user_id: str
    display_name: str
    broker: CopyBroker
    sizing: UserSizing


@dataclass(frozen=True)
class CopierSettings:
    sizing_mode: SizingMode = SizingMode.EQUITY_RATIO
    max_signal_age_s: float = 60.0
    dry_run: bool = False
    equity_asset: str = "ZUSD"
    snapshot_ttl_s: float = SNAPSHOT_TTL_S
    max_attempts: int = MAX_ATTEMPTS
