"""The engine's order and trade records, and the money rules that apply to one order.

The simulator imports nothing from `copytrader`, so it has its own enums. An order is the
engine's bookkeeping record of one AddOrder: it is created once, then changed only by the engine
as the order triggers, fills, expires or is cancelled (hence a plain dataclass); a trade never
changes (frozen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum

from kraken_sim.markets import Asset, Pair


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS = "stop-loss"
    TAKE_PROFIT = "take-profit"
    STOP_LOSS_LIMIT = "stop-loss-limit"
    TAKE_PROFIT_LIMIT = "take-profit-limit"

    @property
    def is_trigger(self) -> bool:
        return self not in (OrderType.MARKET, OrderType.LIMIT)

    @property
    def has_limit_after_trigger(self) -> bool:
        return self in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)

    @property
    def is_stop_loss(self) -> bool:
        return self in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)


# Order types Kraken has that the simulator refuses with EOrder:Invalid order.
UNSUPPORTED_ORDER_TYPES = frozenset(
    {"iceberg", "trailing-stop", "trailing-stop-limit", "settle-position"}
)


class Status(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in (Status.PENDING, Status.OPEN)


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    GTD = "GTD"
    FOK = "FOK"  # fill entirely at once or be cancelled with nothing filled

    @property
    def never_rests(self) -> bool:
        return self in (TimeInForce.IOC, TimeInForce.FOK)


# Cancel reasons the simulator writes into closed orders' `reason`.
REASON_USER = "User requested"
REASON_POST_ONLY = "Post only order"
REASON_IOC = "Insufficient liquidity"
REASON_FUNDS = "Insufficient funds"


@dataclass
class SimOrder:
    txid: str
    seq: int  # creation order across the engine: the tie-breaker for every "newest first"
    pair: Pair
    side: Side
    ordertype: OrderType
    volume: Decimal  # base units; quote units when `viqc`
    price: Decimal | None  # limit price (limit) or trigger price (stop/take-profit)
    price2: Decimal | None  # limit price after the trigger (*-limit)
    oflags: tuple[str, ...]  # as shown: the caller's flags plus the fee-currency default
    timeinforce: TimeInForce
    userref: int | None
    cl_ord_id: str | None
    opentm: float
    starttm: float
    expiretm: float
    status: Status = Status.OPEN
    triggered: bool = False
    vol_exec: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    misc: list[str] = field(default_factory=list)
    trade_ids: list[str] = field(default_factory=list)
    closetm: float | None = None
    close_seq: int = 0
    reason: str | None = None
    # A market order the engine works after a delay: when, and what it holds until then.
    due: float = 0.0
    market_hold: Decimal = Decimal(0)

    @property
    def fee_in_base(self) -> bool:
        return "fcib" in self.oflags

    @property
    def post_only(self) -> bool:
        return "post" in self.oflags

    @property
    def viqc(self) -> bool:
        return "viqc" in self.oflags

    @property
    def reserve_price(self) -> Decimal:
        """The price its hold is computed at: the limit price once known, else the trigger."""
        if self.ordertype.has_limit_after_trigger:
            assert self.price2 is not None
            return self.price2
        assert self.price is not None
        return self.price


@dataclass(frozen=True)
class Trade:
    txid: str
    ordertxid: str
    postxid: str
    trade_id: int
    pair: Pair
    time: float
    side: Side
    ordertype: OrderType
    price: Decimal
    vol: Decimal
    cost: Decimal
    fee: Decimal
    fee_in_base: bool
    maker: bool


def ceil_to(amount: Decimal, asset: Asset) -> Decimal:
    return amount.quantize(asset.quantum, rounding=ROUND_UP)


def round_to(amount: Decimal, asset: Asset) -> Decimal:
    return amount.quantize(asset.quantum, rounding=ROUND_HALF_UP)


def floor_lot(amount: Decimal, pair: Pair) -> Decimal:
    return amount.quantize(pair.lot_quantum, rounding=ROUND_DOWN)


def reservation(
    pair: Pair, side: Side, volume: Decimal, price: Decimal, fee_in_base: bool
) -> tuple[Asset, Decimal]:
    """What an order of `volume` at `price` must hold: (asset, amount), at the taker fee rate.

    Rounded up so that what a fill at this price or better spends never exceeds it: a fill spends
    round(volume*fill) + round(cost*rate), and each part is at most its ceiling here.
    """
    if side is Side.BUY:
        cost = ceil_to(volume * price, pair.quote)
        fee = Decimal(0) if fee_in_base else ceil_to(cost * pair.taker_rate, pair.quote)
        return pair.quote, cost + fee
    fee = ceil_to(volume * pair.taker_rate, pair.base) if fee_in_base else Decimal(0)
    return pair.base, volume + fee


def order_hold(order: SimOrder) -> tuple[Asset, Decimal]:
    """What an open order holds out of its account's available funds: its unfilled part (a
    market order waiting for the engine: what its walk of the book would cost on arrival)."""
    if order.ordertype is OrderType.MARKET:
        asset = order.pair.quote if order.side is Side.BUY else order.pair.base
        return asset, order.market_hold
    volume = order.volume - order.vol_exec
    return reservation(order.pair, order.side, volume, order.reserve_price, order.fee_in_base)


@dataclass(frozen=True)
class Fill:
    """The balance changes of one fill, all already rounded to each asset's ledger precision."""

    vol: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    base_delta: Decimal  # what the account's base balance changes by
    quote_delta: Decimal


def compute_fill(
    pair: Pair, side: Side, vol: Decimal, price: Decimal, fee_in_base: bool, rate: Decimal
) -> Fill:
    """A fill of `vol` at `price` with fee `rate`, in quote (default) or in base (`fcib`)."""
    cost = round_to(vol * price, pair.quote)
    if fee_in_base:
        fee = round_to(vol * rate, pair.base)
        if side is Side.BUY:
            return Fill(vol, price, cost, fee, vol - fee, -cost)
        return Fill(vol, price, cost, fee, -(vol + fee), cost)
    fee = round_to(cost * rate, pair.quote)
    if side is Side.BUY:
        return Fill(vol, price, cost, fee, vol, -(cost + fee))
    return Fill(vol, price, cost, fee, -vol, cost - fee)
