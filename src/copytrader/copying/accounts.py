"""What the copier works with: the users' accounts and sizing settings, the copier's settings,
and what it needs from a broker and tells an observer."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from copytrader.domain import SizingMode
from copytrader.kraken import models as kraken

# Tries at one step of a copy (placing it, or cancelling it) before it is given up.
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
    def cooldown_remaining_s(self) -> float: ...
    def cooldown_reason(self) -> str: ...


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
class CopyTimings:
    """The copier's time rules, in seconds, read against the copier's injected clocks (wall
    clock for retry times and the start-up window, monotonic clock for cache ages and waits)."""

    # Public ticker prices (a market order's reference price) are shared by all users this long.
    ticker_ttl_s: float = 2.0
    # A user's equity and balances are re-read after this long (prices move), and after a copy
    # of the user is placed or the master's orders fill (both change what sizing reads).
    snapshot_ttl_s: float = 30.0
    # A planned copy whose sizing reads failed transiently is tried again after this long.
    planned_retry_s: float = 2.0
    # Waits between attempts at a sent (or being cancelled) copy double from first_retry_s up
    # to max_retry_s.
    first_retry_s: float = 0.5
    max_retry_s: float = 8.0
    # Master orders opened before this run started, plus this margin for the difference between
    # Kraken's clock and ours, may have been copied by an earlier run: their copies are looked
    # up on the exchange before being sent.
    start_window_s: float = 5.0
    # The user's order index (for those lookups) reaches this far before the oldest master
    # order it must cover.
    index_margin_s: float = 60.0
    # A lane with nothing to do re-reads the balances a fill made stale once every other lane
    # is idle too (the fan-out is over), or after this long at most.
    refresh_after_idle_s: float = 0.5
    # How long the batch waits for a market order's ticker (read once for all users) before it
    # leaves those copies to their lanes: the polling thread must not hang on a slow API.
    warm_ticker_wait_s: float = 0.5
    # A batched copy whose lane starts within this long of the batch, with no master order
    # updated since, is sent on the batch's gates; a later one passes them again first.
    ready_fresh_s: float = 0.5
    # While the data disk is full, a lane looks again this often whether its write goes through.
    disk_full_retry_s: float = 1.0


@dataclass(frozen=True)
class CopierSettings:
    sizing_mode: SizingMode = SizingMode.EQUITY_RATIO
    max_signal_age_s: float = 60.0
    dry_run: bool = False
    equity_asset: str = "ZUSD"
    # Tries at one step of a copy: sizing reads, sends and lookups while placing it, or
    # CancelOrder calls while cancelling it. Each try that fails transiently counts one.
    max_attempts: int = MAX_ATTEMPTS
    timings: CopyTimings = CopyTimings()
