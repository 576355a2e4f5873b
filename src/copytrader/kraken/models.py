"""Typed views of Kraken's replies: frozen dataclasses, Decimal money, Enums for vocabulary.

Kraken sends amounts as strings and times as float seconds (kraken-api.md §4). Parsing lives
next to each type (`from_kraken`) so the broker only routes calls.

Every number is checked here, where it enters; one that fails raises `BadNumberError` (a
ValueError naming the field), which the broker turns into `BadReplyError` naming the account and
the method. A bad number never becomes a 0, a default or a NaN. The rules:
- text: at most 64 characters of ASCII digits with an optional sign and one decimal point, as
  Kraken writes numbers ("0.00100000", "-12.5"); no exponent ("1e999999"), no "NaN",
  "Infinity", spaces, underscores or non-ASCII digits (which Decimal would accept). A JSON
  number is accepted if it is finite;
- magnitude: no amount (balance, volume, price, cost, fee paid) beyond 1e15 in absolute value
  (MAX_AMOUNT): a trillion dollars or more than 47 million times all bitcoin; a value beyond it
  is a broken reply, not money;
- sign: never negative, except where Kraken's field can be (TradeBalance's unrealized P/L `n`,
  valuation `v` and free margin `mf`). Balances included: this daemon trades spot, and a spot
  balance does not go below zero;
- fee rates (AssetPairs' schedules, in percent): 0 to 10 % (Kraken's highest is 0.40 %);
  decimals counts: 0 to 18; a tick size: above 0; a fill (`vol_exec`) never above the order's
  volume (`vol`);
- times (unix seconds): 0 to 1e11 (the year 5138); 0 means "none" where Kraken uses it so;
  userref: a signed 32-bit integer; counts: 0 to 1e9.
An absent field (or "") takes its documented default, usually 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce

ZERO = Decimal(0)
MAX_AMOUNT = Decimal("1e15")
MAX_FEE_PERCENT = Decimal(10)
MAX_DECIMALS = 18
MAX_TIME_S = 1e11
MAX_COUNT = 10**9
_MAX_TEXT = 64
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class BadNumberError(ValueError):
    """A number in Kraken's reply that is not a sane one; names the field, shows the value
    (a number from a reply, never anything secret) cut to a few characters."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "…" + text[-1]


def _number(value: Any, field: str) -> Decimal:
    """The value as a finite Decimal, or BadNumberError (the text rules of the module doc)."""
    if isinstance(value, bool):
        raise BadNumberError(field, f"{_shown(value)} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadNumberError(field, f"{_shown(value)} is not a finite number")
        # repr() first: a JSON float becomes its shortest form, never its binary expansion.
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise BadNumberError(field, f"a {type(value).__name__} is not a number")
    if len(value) > _MAX_TEXT or not _NUMBER.fullmatch(value):
        raise BadNumberError(field, f"{_shown(value)} is not a decimal number")
    return Decimal(value)


def to_decimal(
    value: Any,
    field: str,
    *,
    default: Decimal = ZERO,
    signed: bool = False,
    limit: Decimal = MAX_AMOUNT,
) -> Decimal:
    """Kraken's number as a checked Decimal; `default` when absent. Never negative unless
    `signed`, never beyond `limit` in absolute value."""
    if value is None or value == "":
        return default
    result = _number(value, field)
    if abs(result) > limit:
        raise BadNumberError(field, f"{_shown(value)} is beyond ±{limit:g}")
    if result < 0 and not signed:
        raise BadNumberError(field, f"{_shown(value)} is negative")
    return result


def to_optional_decimal(value: Any, field: str) -> Decimal | None:
    """A checked, non-negative Decimal, or None when absent."""
    if value is None or value == "":
        return None
    return to_decimal(value, field)


def to_int(value: Any, field: str, *, low: int, high: int, default: int | None = None) -> int:
    """Kraken's integer (a JSON number or its digits as text), within [low, high]."""
    if value is None or value == "":
        if default is None:
            raise BadNumberError(field, "is missing")
        return default
    number = _number(value, field)
    if number != number.to_integral_value():
        raise BadNumberError(field, f"{_shown(value)} is not a whole number")
    if not low <= number <= high:
        raise BadNumberError(field, f"{_shown(value)} is outside {low}..{high}")
    return int(number)


def to_time(value: Any, field: str) -> float | None:
    """Unix seconds; None when absent or 0 (Kraken's "none", e.g. no expiry)."""
    if value is None or value == "":
        return None
    seconds = to_decimal(value, field, limit=Decimal(str(MAX_TIME_S)))
    return float(seconds) if seconds > 0 else None


def format_decimal(value: Decimal) -> str:
    """Plain notation for the wire: Decimal('1E-8') -> '0.00000001', never an exponent."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class AssetBalance:
    """BalanceEx entry: `available` = balance + credit - credit_used - hold_trade."""

    balance: Decimal
    hold_trade: Decimal
    available: Decimal

    @classmethod
    def from_kraken(cls, raw: Mapping[str, Any], asset: str = "") -> AssetBalance:
        def amount(name: str) -> Decimal:
            return to_decimal(raw.get(name), f"{asset}.{name}" if asset else name)

        balance = amount("balance")
        hold = amount("hold_trade")
        credit = amount("credit") - amount("credit_used")
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
        def amount(name: str, *, signed: bool = False) -> Decimal:
            return to_decimal(raw.get(name), name, signed=signed)

        return cls(
            asset=asset,
            equity=amount("e"),
            equivalent_balance=amount("eb"),
            trade_balance=amount("tb"),
            margin=amount("m"),
            unrealized_pnl=amount("n", signed=True),
            cost_basis=amount("c"),
            valuation=amount("v", signed=True),
            free_margin=amount("mf", signed=True),
            margin_level=to_optional_decimal(raw.get("ml"), "ml"),
            unexecuted_value=amount("uv"),
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
        def decimals(name: str, default: int) -> int:
            return to_int(
                raw.get(name), f"{pair_id}.{name}", low=0, high=MAX_DECIMALS, default=default
            )

        pair_decimals = decimals("pair_decimals", 8)
        tick_size = to_decimal(
            raw.get("tick_size"), f"{pair_id}.tick_size", default=Decimal(1).scaleb(-pair_decimals)
        )
        if tick_size <= 0:
            raise BadNumberError(f"{pair_id}.tick_size", "is not above 0")
        return cls(
            pair_id=pair_id,
            altname=str(raw.get("altname", pair_id)),
            wsname=str(raw.get("wsname", "")),
            base=str(raw.get("base", "")),
            quote=str(raw.get("quote", "")),
            lot_decimals=decimals("lot_decimals", 8),
            pair_decimals=pair_decimals,
            cost_decimals=decimals("cost_decimals", pair_decimals),
            tick_size=tick_size,
            ordermin=to_decimal(raw.get("ordermin"), f"{pair_id}.ordermin"),
            costmin=to_decimal(raw.get("costmin"), f"{pair_id}.costmin"),
            fee_taker=_first_fee(raw.get("fees"), f"{pair_id}.fees"),
            fee_maker=_first_fee(raw.get("fees_maker", raw.get("fees")), f"{pair_id}.fees_maker"),
            status=str(raw.get("status", "online")),
        )


def _first_fee(schedule: Any, field: str) -> Decimal:
    """The lowest volume tier's fee of a schedule `[[volume, percent], ...]`, as a fraction."""
    if schedule is None or schedule == []:
        return ZERO
    if not isinstance(schedule, list) or not isinstance(schedule[0], list | tuple):
        raise BadNumberError(field, "is not a fee schedule")
    if len(schedule[0]) < 2:
        raise BadNumberError(field, "is not a fee schedule")
    return to_decimal(schedule[0][1], field, limit=MAX_FEE_PERCENT) / 100


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
            if values is None:
                return ZERO
            if not isinstance(values, list) or len(values) <= index:
                raise BadNumberError(f"{pair_id}.{name}", "is not a list of numbers")
            return to_decimal(values[index], f"{pair_id}.{name}[{index}]")

        return cls(
            pair_id=pair_id,
            ask=pick("a", 0),
            bid=pick("b", 0),
            last=pick("c", 0),
            open_today=to_decimal(raw.get("o"), f"{pair_id}.o"),
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

        def amount(name: str) -> Decimal:
            return to_decimal(raw.get(name), f"{txid}.{name}")

        def descr_price(name: str) -> Decimal | None:
            try:
                return to_optional_decimal(descr.get(name), f"{txid}.descr.{name}") or None
            except BadNumberError:
                if order_type is None:
                    # An order type we do not model (trailing stops) may write an offset
                    # ("+5.0%") here: not a price, and nothing reads it as one.
                    return None
                raise

        volume = amount("vol")
        volume_exec = amount("vol_exec")
        if volume_exec > volume > 0:
            raise BadNumberError(f"{txid}.vol_exec", f"{volume_exec} is above vol {volume}")
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
            volume=volume,
            volume_exec=volume_exec,
            price=descr_price("price"),
            price2=descr_price("price2"),
            avg_price=amount("price"),
            cost=amount("cost"),
            fee=amount("fee"),
            opentm=to_time(raw.get("opentm"), f"{txid}.opentm") or 0.0,
            closetm=to_time(raw.get("closetm"), f"{txid}.closetm"),
            userref=(
                to_int(userref, f"{txid}.userref", low=-(2**31), high=2**31 - 1)
                if userref not in (None, "")
                else None
            ),
            cl_ord_id=str(cl_ord_id) if cl_ord_id else None,
            oflags=frozenset(f for f in str(raw.get("oflags", "")).split(",") if f),
            timeinforce=TimeInForce(timeinforce) if timeinforce in {"GTC", "IOC", "GTD"} else None,
            expiretm=to_time(raw.get("expiretm"), f"{txid}.expiretm"),
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
