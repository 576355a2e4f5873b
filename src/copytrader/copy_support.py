"""What the copier works with: accounts, settings, the kill switch, cached balances, and the
copy's AddOrder built from the master order (prices on the tick grid, flags kept).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from copytrader.domain import OrderType, TimeInForce
from copytrader.kraken.models import (
    AddOrderResult,
    AssetBalance,
    ClosedOrdersPage,
    Order,
    OrderRequest,
    PairInfo,
    Ticker,
    TradeBalance,
)
from copytrader.ledger import Ledger, MasterOrderRecord
from copytrader.logs import get_logger
from copytrader.sizing import PairRules, SizingMode, round_price_to_tick

log = get_logger(__name__)

KILL_SWITCH_FILE_NAME = "KILL_SWITCH"
# Equity and balances are re-read after this long (prices move), and after a copy of the user
# is placed or the master's orders fill (both change what the sizing reads).
SNAPSHOT_TTL_S = 30.0
# Attempts at sending one copy before it is abandoned.
MAX_ATTEMPTS = 6
KEPT_OFLAGS = frozenset({"post", "fcib", "fciq", "nompp"})


class CopyBroker(Protocol):
    """What the copier needs from one account's broker (KrakenBroker has it)."""

    def trade_balance(self, asset: str = "ZUSD") -> TradeBalance: ...
    def balances_ex(self) -> dict[str, AssetBalance]: ...
    def pair(self, name: str) -> PairInfo: ...
    def ticker(self, pair: str) -> Ticker: ...
    def add_order(self, request: OrderRequest) -> AddOrderResult: ...
    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> Order | None: ...
    def cancel_order(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> int: ...
    def open_orders(self, *, cl_ord_id: str | None = None) -> dict[str, Order]: ...
    def closed_orders(
        self, *, start: float | None = None, ofs: int = 0, cl_ord_id: str | None = None
    ) -> ClosedOrdersPage: ...


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


class KillSwitch:
    """Copying stops while `<data_dir>/KILL_SWITCH` exists or COPYTRADER_KILL_SWITCH is set.

    Checked before every copy is sent, so creating the file stops the next copy without a
    restart or redeploy; removing it resumes (signals older than max_signal_age are skipped).
    """

    def __init__(self, data_dir: Path, *, from_environment: bool = False) -> None:
        self.path = data_dir / KILL_SWITCH_FILE_NAME
        self.from_environment = from_environment
        self._was_on = False
        self._lock = threading.Lock()

    def reason(self) -> str | None:
        """Why copying is stopped, or None when it is not."""
        if self.from_environment:
            why: str | None = "kill switch on (COPYTRADER_KILL_SWITCH)"
        elif self.path.exists():
            why = f"kill switch on (file {self.path})"
        else:
            why = None
        with self._lock:
            changed, self._was_on = (why is not None) != self._was_on, why is not None
        if changed:
            if why:
                log.warning("copy.kill_switch_on", message=f"{why}: no new copies are sent")
            else:
                log.info("copy.kill_switch_off", message="kill switch off: copying resumes")
        return why


class AccountSnapshots:
    """An account's equity and balances, read when needed and kept `ttl_s`.

    `invalidate()` (after a fill) makes them stale: the next use reads them again, unless
    `refresh_stale()` (called by the user's lane once it has nothing else to do) already did,
    which takes that read off the next copy's critical path.
    """

    def __init__(
        self,
        broker: CopyBroker,
        *,
        equity_asset: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._asset = equity_asset
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # (read at, value); None: never read; read at -inf: stale
        self._equity: tuple[float, Decimal] | None = None
        self._balances: tuple[float, dict[str, AssetBalance]] | None = None

    def invalidate(self, *, equity: bool = True, balances: bool = True) -> None:
        with self._lock:
            if equity and self._equity is not None:
                self._equity = (float("-inf"), self._equity[1])
            if balances and self._balances is not None:
                self._balances = (float("-inf"), self._balances[1])

    def _fresh(self, cached: tuple[float, object] | None) -> bool:
        return cached is not None and self._clock() - cached[0] < self._ttl_s

    def equity(self) -> Decimal:
        with self._lock:
            cached = self._equity
        if cached is not None and self._fresh(cached):
            return cached[1]
        value = self._broker.trade_balance(self._asset).equity
        with self._lock:
            self._equity = (self._clock(), value)
        return value

    def balances(self) -> dict[str, AssetBalance]:
        with self._lock:
            cached = self._balances
        if cached is not None and self._fresh(cached):
            return cached[1]
        value = self._broker.balances_ex()
        with self._lock:
            self._balances = (self._clock(), value)
        return value

    def stale(self) -> bool:
        """Whether something sizing has read before was invalidated since."""
        with self._lock:
            return any(
                cached is not None and cached[0] == float("-inf")
                for cached in (self._equity, self._balances)
            )

    def refresh_stale(self) -> None:
        """Read again what was invalidated (only what sizing has used before)."""
        with self._lock:
            equity_stale = self._equity is not None and self._equity[0] == float("-inf")
            balances_stale = self._balances is not None and self._balances[0] == float("-inf")
        if equity_stale:
            self.equity()
        if balances_stale:
            self.balances()


def pair_rules(info: PairInfo) -> PairRules:
    return PairRules(
        altname=info.altname,
        base=info.base,
        lot_decimals=info.lot_decimals,
        tick_size=info.tick_size,
        ordermin=info.ordermin,
        costmin=info.costmin if info.costmin > 0 else None,
    )


def limit_price_of(master: MasterOrderRecord) -> Decimal | None:
    """The price an order's cost is estimated at, when the order itself fixes one."""
    if master.order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
        return master.price2
    if master.order_type is OrderType.MARKET:
        return master.avg_price
    return master.price  # limit price, or the trigger of a stop-loss / take-profit


def copy_prices(master: MasterOrderRecord, tick: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """`price`/`price2` for the copy: the master's, on the tick grid (limits never worse)."""
    side = master.side
    order_type = master.order_type
    price = master.price
    price2 = master.price2
    if order_type is OrderType.MARKET:
        return None, None
    if order_type is OrderType.LIMIT:
        assert price is not None
        return round_price_to_tick(price, tick, side=side, limit=True), None
    assert price is not None
    trigger = round_price_to_tick(price, tick, side=side, limit=False)
    if order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
        assert price2 is not None
        return trigger, round_price_to_tick(price2, tick, side=side, limit=True)
    return trigger, None


def build_request(
    master: MasterOrderRecord,
    cl_ord_id: str,
    volume: Decimal,
    price: Decimal | None,
    price2: Decimal | None,
    *,
    validate: bool,
) -> OrderRequest:
    """The copy's AddOrder: the master's type, side, time-in-force, expiry and flags."""
    if master.order_type is None:
        raise ValueError(f"master order {master.txid} has a type that is not copied")
    oflags = frozenset(master.oflags & KEPT_OFLAGS)
    if master.order_type is not OrderType.LIMIT:
        oflags -= {"post"}  # post-only exists for limit orders only
    gtd = master.timeinforce is TimeInForce.GTD and master.expiretm
    return OrderRequest(
        pair=master.pair,
        side=master.side,
        order_type=master.order_type,
        volume=volume,
        price=price,
        price2=price2,
        cl_ord_id=cl_ord_id,
        oflags=oflags,
        timeinforce=master.timeinforce,
        expiretm=int(master.expiretm) if gtd and master.expiretm else None,
        validate=validate,
    )


# ClosedOrders pages (50 orders each) read for one index; beyond that, copies are looked up
# one by one.
INDEX_MAX_PAGES = 20


class ExchangeOrderIndex:
    """One user's orders on the exchange by `cl_ord_id`, read once: open orders plus the closed
    ones opened or closed after `since`.

    It settles copies an earlier run may have sent (a crash between AddOrder and writing
    `placed`, or a power cut that lost the ledger's last writes). Read after this run started,
    it holds every order an earlier (dead) run placed since `since`; and each of its reads is
    signed with a higher nonce than any request of that run, so a request of that run still on
    its way is refused by Kraken afterwards.
    """

    def __init__(self, broker: CopyBroker, since: float) -> None:
        self.since = since
        self.complete = True
        self._orders: dict[str, Order] = {}
        for order in broker.open_orders().values():
            self._add(order)
        offset = 0
        for _ in range(INDEX_MAX_PAGES):
            page = broker.closed_orders(start=since, ofs=offset)
            for order in page.orders.values():
                self._add(order)
            offset += len(page.orders)
            if not page.orders or offset >= page.count:
                return
        self.complete = False

    def _add(self, order: Order) -> None:
        if order.cl_ord_id:
            self._orders[order.cl_ord_id] = order

    def find(self, cl_ord_id: str) -> Order | None:
        return self._orders.get(cl_ord_id)


def log_summary_once(ledger: Ledger, master: MasterOrderRecord) -> None:
    """Once all copies of the master order are done, log `copy.summary` ("copied to 2/2
    users"); the ledger makes sure that happens exactly once, whichever thread gets there."""
    summary = ledger.claim_summary(master.txid)
    if summary is None:
        return
    fields: dict[str, object] = {}
    if summary.last_acked_at is not None:
        fields["seen_to_all_acked_ms"] = round(
            (summary.last_acked_at - summary.first_seen_at) * 1000, 1
        )
        fields["max_latency_ms"] = summary.max_latency_ms
    log.info(
        "copy.summary",
        message=(
            f"master order {master.txid} copied to {summary.placed}/{summary.total} users"
            + (f" ({summary.skipped} skipped)" if summary.skipped else "")
            + (f" ({summary.failed} failed)" if summary.failed else "")
            + (f" ({master.skip_reason})" if master.skip_reason else "")
        ),
        master_txid=master.txid,
        pair=master.pair,
        side=master.side.value,
        order_type=master.order_type.value if master.order_type else None,
        users=summary.total,
        placed=summary.placed,
        skipped=summary.skipped,
        failed=summary.failed,
        cancelled=summary.cancelled,
        **fields,
    )
