"""The copy's order is the master's: same type, side, prices on the grid, flags and expiry."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from copytrader.copying.kill_switch import KillSwitch
from copytrader.copying.order_request import build_request, copy_prices, limit_price_of
from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.ledger import Decision, MasterOrderRecord


def master(
    order_type: OrderType | None, side: Side = Side.BUY, **fields: object
) -> MasterOrderRecord:
    values: dict[str, object] = {
        "txid": "OMASTER-AAAAA-BBBBBB", "pair": "XBTUSD", "side": side, "order_type": order_type,
        "volume": Decimal("1"), "price": None, "price2": None, "oflags": frozenset({"fciq"}),
        "timeinforce": TimeInForce.GTC, "expiretm": None, "opentm": 1000.0,
        "status": OrderStatus.OPEN, "vol_exec": Decimal(0), "avg_price": None,
        "decision": Decision.COPY,
    }  # fmt: skip
    values.update(fields)
    return MasterOrderRecord(**values)  # type: ignore[arg-type]


TICK = Decimal("0.1")


@pytest.mark.parametrize(
    ("order_type", "side", "price", "price2", "expected"),
    [
        (OrderType.MARKET, Side.BUY, None, None, (None, None)),
        (OrderType.LIMIT, Side.BUY, "60000.15", None, ("60000.1", None)),
        (OrderType.LIMIT, Side.SELL, "60000.15", None, ("60000.2", None)),
        (OrderType.STOP_LOSS, Side.SELL, "50000.15", None, ("50000.2", None)),
        (OrderType.TAKE_PROFIT, Side.BUY, "50000.14", None, ("50000.1", None)),
        (OrderType.STOP_LOSS_LIMIT, Side.SELL, "50000", "49900.05", ("50000", "49900.1")),
        (OrderType.TAKE_PROFIT_LIMIT, Side.BUY, "50000", "50100.05", ("50000", "50100.0")),
    ],
)
def test_copy_prices_keep_the_masters_on_the_tick_grid(
    order_type: OrderType, side: Side, price: str | None, price2: str | None,
    expected: tuple[str | None, str | None],
) -> None:  # fmt: skip
    """Triggers stay (nearest tick); limit prices never get worse for the user."""
    order = master(order_type, side, price=price and Decimal(price),
                   price2=price2 and Decimal(price2))  # fmt: skip
    got = copy_prices(order, TICK)
    assert got == tuple(None if e is None else Decimal(e) for e in expected)


def test_reference_price_is_limit_trigger_or_fill() -> None:
    """Cost caps use the limit price, the trigger, or a market order's fill price."""
    assert limit_price_of(master(OrderType.LIMIT, price=Decimal("5"))) == Decimal("5")
    assert limit_price_of(master(OrderType.STOP_LOSS, price=Decimal("6"))) == Decimal("6")
    limit_after_trigger = master(OrderType.STOP_LOSS_LIMIT, price=Decimal("6"), price2=Decimal("7"))
    assert limit_price_of(limit_after_trigger) == Decimal("7")
    assert limit_price_of(master(OrderType.MARKET, avg_price=Decimal("8"))) == Decimal("8")
    assert limit_price_of(master(OrderType.MARKET)) is None


def test_request_keeps_type_side_flags_and_expiry() -> None:
    """post-only is kept on limits, dropped elsewhere; GTD expiry in whole seconds; dry run
    sets validate."""
    limit = master(OrderType.LIMIT, Side.SELL, price=Decimal("65000"),
                   oflags=frozenset({"post", "fciq", "viqc"}), timeinforce=TimeInForce.GTD,
                   expiretm=1_800_000_000.75)  # fmt: skip
    request = build_request(limit, "cl-id", Decimal("0.5"), Decimal("65000"), None, validate=True)
    assert (request.side, request.order_type, request.volume) == (Side.SELL, OrderType.LIMIT,
                                                                   Decimal("0.5"))  # fmt: skip
    assert request.oflags == frozenset({"post", "fciq"})
    assert (request.timeinforce, request.expiretm) == (TimeInForce.GTD, 1_800_000_000)
    assert (request.cl_ord_id, request.validate) == ("cl-id", True)
    stop = master(OrderType.STOP_LOSS, price=Decimal("70000"), oflags=frozenset({"post"}))
    assert build_request(stop, "x", Decimal(1), Decimal(7), None, validate=False).oflags == (
        frozenset()
    )
    with pytest.raises(ValueError, match="not copied"):
        build_request(master(None), "x", Decimal(1), None, None, validate=False)


def test_kill_switch_file_and_environment(tmp_path: Path) -> None:
    """The file in the data folder stops copying while it exists; the variable always."""
    switch = KillSwitch(tmp_path)
    assert switch.reason() is None
    (tmp_path / "KILL_SWITCH").write_text("")
    assert "KILL_SWITCH" in (switch.reason() or "")
    (tmp_path / "KILL_SWITCH").unlink()
    assert switch.reason() is None
    assert "COPYTRADER_KILL_SWITCH" in (KillSwitch(tmp_path, from_environment=True).reason() or "")
