"""Typed views of Kraken's replies: frozen dataclasses, Decimal money, Enums for vocabulary.

Kraken sends amounts as strings and times as float seconds (kraken-api.md §4). Parsing lives
next to each type (`from_kraken`) so the broker only routes calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce

ZERO = Decimal(0)


def to_decimal(value: Any, default: Decimal = ZERO) -> Decimal:
    """Kraken's number (usually a string) as a Decimal; `default` when absent or unparsable."""
    if value is None or value == "" or isinstance(value, bool):
        return default
    try:
        # str() first: a JSON float becomes its shortest repr, never its binary expansion.
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return default
    return result if result.is_finite() else default


def to_optional_decimal(value: Any) -> Decimal | None:
    parsed = to_decimal(value, default=Decimal("NaN"))
    return None if parsed.is_nan() else parsed


def format_decimal(value: Decimal) -> str:
    """Plain notation for the wire: Decimal('1E-8') -> '0.00000001', never an exponent."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _time(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


@dataclass(frozen=True)
class AssetBalance:
    """BalanceEx entry: `available` = balance + credit - credit_used - hold_trade."""

    balance: Decimal
    hold_trade: Decimal
    available: Decimal

    @classmethod
    def from_kraken(cls, raw: Mapping[str, Any]) -> AssetBalance:
        balance = to_decimal(raw.get("balance"))
        hold = to_decimal(raw.get("hold_trade"))
        credit = to_decimal(raw.get("credit")) - to_decimal(raw.get("credit_used"))
        return cls(balance=balance, hold_trade=hold, available=balance + credit - hold)


@dataclass(frozen=True)
class TradeBalance:
    """TradeBalance in the asked-for asset; `equity` ("e") is what sizing uses."""

    asset: str
    equity: Decimal
    equivalent_balance: Decimal
    trade_balance: Decimal
    margin: Decimal
    unrealized_pnl: Decimal
    cost_basis: Decimal
    valuation: Decimal
    free_margin: Decimal
    margin_level: Decimal | None
    unexecuted_value: Decimal

    @classmethod
    def from_kraken(cls, asset: str, raw: Mapping[str, Any]) -> TradeBalance:
        return cls(
            asset=asset,
            equity=to_decimal(raw.get("e")),
            equivalent_balance=to_decimal(raw.get("eb")),
            trade_balance=to_decimal(raw.get("tb")),
            margin=to_decimal(raw.get("m")),
            unrealized_pnl=to_decimal(raw.get("n")),
            cost_basis=to_decimal(raw.get("c")),
            valuation=to_decimal(raw.get("v")),
            free_margin=to_decimal(raw.get("mf")),
            margin_level=to_optional_decimal(raw.get("ml")),
            unexecuted_value=to_decimal(raw.get("uv")),
        )


@dataclass(frozen=True)
class PairInfo:
    """AssetPairs entry. Fees are fractions (0.0026 = 0.26 %), at the lowest volume tier."""

    pair_id: str
    altname: str
    wsname: str
    base: str
    quote: str
    lot_decimals: int
    pair_decimals: int
    cost_decimals: int
    tick_size: Decimal
    ordermin: Decimal
    costmin: Decimal
    fee_taker: Decimal
    fee_maker: Decimal
    status: str

    @classmethod
    def from_kraken(cls, pair_id: str, raw: Mapping[str, Any]) -> PairInfo:
        pair_decimals = int(raw.get("pair_decimals", 8))
        return cls(
            pair_id=pair_id,
            altname=str(raw.get("altname", pair_id)),
            wsname=str(raw.get("wsname", "")),
            base=str(raw.get("base", "")),
            quote=str(raw.get("quote", "")),
            lot_decimals=int(raw.get("lot_decimals", 8)),
            pair_decimals=pair_decimals,
            cost_decimals=int(raw.get("cost_decimals", pair_decimals)),
            tick_size=to_decimal(raw.get("tick_size"), Decimal(1).scaleb(-pair_decimals)),
            ordermin=to_decimal(raw.get("ordermin")),
            costmin=to_decimal(raw.get("costmin")),
            fee_taker=_first_fee(raw.get("fees")),
            fee_maker=_first_fee(raw.get("fees_maker", raw.get("fees"))),
            status=str(raw.get("status", "online")),
        )


def _first_fee(schedule: Any) -> Decimal:
    try:
        return to_decimal(schedule[0][1]) / 100
    except (TypeError, IndexError, KeyError):
        return ZERO


@dataclass(frozen=True)
class Ticker:
    """Ticker entry: best ask/bid, last trade, and the rolling 24 h numbers."""

    pair_id: str
    ask: Decimal
    bid: Decimal
    last: Decimal
    open_today: Decimal
    high_24h: Decimal
    low_24h: Decimal
    volume_24h: Decimal

    @classmethod
    def from_kraken(cls, pair_id: str, raw: Mapping[str, Any]) -> Ticker:
        def pick(name: str, index: int) -> Decimal:
            values = raw.get(name)
            if isinstance(values, list) and len(values) > index:
                return to_decimal(values[index])
            return ZERO

        return cls(
            pair_id=pair_id,
            ask=pick("a", 0),
            bid=pick("b", 0),
            last=pick("c", 0),
            open_today=to_decimal(raw.get("o")),
            high_24h=pick("h", 1),
            low_24h=pick("l", 1),
            volume_24h=pick("v", 1),
        )


@dataclass(frozen=True)
class Order:
    """An order as OpenOrders/ClosedOrders/QueryOrders describe it.

    `order_type` is None for Kraken order types this project does not model (iceberg,
    trailing stops, settle-position); `order_type_raw` always has Kraken's word.
    """

    txid: str
    status: OrderStatus
    pair_altname: str
    side: Side
    order_type: OrderType | None
    volume: Decimal
    volume_exec: Decimal
    price: Decimal | None
    price2: Decimal | None
    avg_price: Decimal
    cost: Decimal
    fee: Decimal
    opentm: float
    closetm: float | None
    userref: int | None
    cl_ord_id: str | None
    oflags: frozenset[str]
    timeinforce: TimeInForce | None
    expiretm: float | None
    reason: str | None
    order_type_raw: str = ""

    @classmethod
    def from_kraken(cls, txid: str, raw: Mapping[str, Any]) -> Order:
        descr = raw.get("descr") or {}
        type_word = str(descr.get("ordertype", ""))
        try:
            order_type: OrderType | None = OrderType(type_word)
        except ValueError:
            order_type = None
        price = to_optional_decimal(descr.get("price"))
        price2 = to_optional_decimal(descr.get("price2"))
        userref = raw.get("userref")
        timeinforce = raw.get("timeinforce")
        cl_ord_id = raw.get("cl_ord_id")
        reason = raw.get("reason")
        return cls(
            txid=txid,
            status=OrderStatus(str(raw.get("status", "open"))),
            pair_altname=str(descr.get("pair", "")),
            side=Side(str(descr.get("type", ""))),
            order_type=order_type,
            volume=to_decimal(raw.get("vol")),
            volume_exec=to_decimal(raw.get("vol_exec")),
            price=price if price else None,
            price2=price2 if price2 else None,
            avg_price=to_decimal(raw.get("price")),
            cost=to_decimal(raw.get("cost")),
            fee=to_decimal(raw.get("fee")),
            opentm=_time(raw.get("opentm")) or 0.0,
            closetm=_time(raw.get("closetm")),
            userref=int(userref) if isinstance(userref, int | str) and str(userref) else None,
            cl_ord_id=str(cl_ord_id) if cl_ord_id else None,
            oflags=frozenset(f for f in str(raw.get("oflags", "")).split(",") if f),
            timeinforce=TimeInForce(timeinforce) if timeinforce in {"GTC", "IOC", "GTD"} else None,
            expiretm=_time(raw.get("expiretm")),
            reason=str(reason) if reason else None,
            order_type_raw=type_word,
        )

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.PENDING, OrderStatus.OPEN)


@dataclass(frozen=True)
class ClosedOrdersPage:
    """One page (at most 50, newest first) of ClosedOrders, and Kraken's total `count`."""

    orders: dict[str, Order]
    count: int


@dataclass(frozen=True)
class OrderRequest:
    """What to send as AddOrder. `pair` is a pair id or altname, as Kraken accepts."""

    pair: str
    side: Side
    order_type: OrderType
    volume: Decimal
    price: Decimal | None = None
    price2: Decimal | None = None
    cl_ord_id: str | None = None
    userref: int | None = None
    oflags: frozenset[str] = field(default_factory=frozenset)
    timeinforce: TimeInForce = TimeInForce.GTC
    expiretm: int | None = None
    validate: bool = False

    def __post_init__(self) -> None:
        if self.cl_ord_id is not None and self.userref is not None:
            raise ValueError("Kraken takes cl_ord_id or userref, not both")

    def to_params(self) -> dict[str, str]:
        """The AddOrder form fields (strings: krakenex signs a urlencoded body)."""
        params = {
            "pair": self.pair,
            "type": self.side.value,
            "ordertype": self.order_type.value,
            "volume": format_decimal(self.volume),
        }
        if self.price is not None:
            params["price"] = format_decimal(self.price)
        if self.price2 is not None:
            params["price2"] = format_decimal(self.price2)
        if self.cl_ord_id is not None:
            params["cl_ord_id"] = self.cl_ord_id
        if self.userref is not None:
            params["userref"] = str(self.userref)
        if self.oflags:
            params["oflags"] = ",".join(sorted(self.oflags))
        if self.timeinforce is not TimeInForce.GTC:
            params["timeinforce"] = self.timeinforce.value
        if self.expiretm is not None:
            params["expiretm"] = str(self.expiretm)
        if self.validate:
            # Only sent when true: old Kraken read any `validate` key as validate-only.
            params["validate"] = "true"
        return params


@dataclass(frozen=True)
class AddOrderResult:
    """AddOrder's answer, or what a lookup by `cl_ord_id` found when the answer was lost."""

    txids: tuple[str, ...]
    description: str
    cl_ord_id: str | None
    resolved_by_lookup: bool = False


@dataclass(frozen=True)
class PermissionReport:
    """What `copytrader check` learns about a key: which calls it may make (None = not tried)."""

    query_funds: bool
    query_orders: bool
    websocket: bool
    create_orders: bool | None
    problems: tuple[str, ...] = ()
