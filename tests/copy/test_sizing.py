"""Copy sizing: modes, caps, lot rounding and minimums, exact to the last decimal."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copytrader.copying.sizing import (
    PairRules,
    Sized,
    SizingRequest,
    Skipped,
    round_price_to_tick,
    round_volume_down,
    size_copy,
)
from copytrader.domain import Side, SizingMode

XBTUSD = PairRules(
    altname="XBTUSD", base="XXBT", lot_decimals=8, tick_size=Decimal("0.1"),
    ordermin=Decimal("0.0001"), costmin=Decimal("0.5"),
)  # fmt: skip


def floor_places(value: Decimal, places: int) -> Decimal:
    """Independent reference: Decimal at 100 digits, truncated."""
    with localcontext() as ctx:
        ctx.prec = 100
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def ratio_times(volume: Decimal, numerator: Decimal, denominator: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 100
        return volume * numerator / denominator


def buy(**overrides: object) -> SizingRequest:
    fields: dict[str, object] = {
        "mode": SizingMode.EQUITY_RATIO, "side": Side.BUY, "master_volume": Decimal("0.5"),
        "reference_price": Decimal("60000"), "rules": XBTUSD,
        "master_equity": Decimal("40000"), "user_equity": Decimal("10000"),
    }  # fmt: skip
    fields.update(overrides)
    return SizingRequest(**fields)  # type: ignore[arg-type]


def test_equity_ratio_buy_scales_by_equity() -> None:
    """A buy copies master volume x user equity / master equity."""
    assert size_copy(buy()) == Sized(Decimal("0.12500000"))


def test_equity_ratio_buy_rounds_down_to_lot_decimals() -> None:
    """1/3 of the master's equity gives a volume truncated (not rounded) at 8 decimals."""
    result = size_copy(buy(master_volume=Decimal("1"), user_equity=Decimal("10000"),
                           master_equity=Decimal("30000")))  # fmt: skip
    assert result == Sized(Decimal("0.33333333"), ("rounded down to 8 decimals",))


def test_equity_ratio_applies_the_multiplier() -> None:
    """The user's multiplier scales the equity-ratio size too."""
    result = size_copy(buy(multiplier=Decimal("1.5")))
    assert result == Sized(Decimal("0.18750000"))


def test_equity_ratio_sell_scales_by_base_holding_before_the_sell() -> None:
    """Master sells half of its 0.8 BTC: a user holding 0.3 BTC sells 0.15."""
    request = buy(side=Side.SELL, master_volume=Decimal("0.4"), master_base_before=Decimal("0.8"),
                  user_base_holding=Decimal("0.3"), user_base_available=Decimal("0.3"))  # fmt: skip
    assert size_copy(request) == Sized(Decimal("0.15000000"))


def test_sell_is_capped_by_the_available_holding() -> None:
    """A sell never asks for more than the user's base not held by open orders."""
    request = buy(side=Side.SELL, master_volume=Decimal("0.8"), master_base_before=Decimal("0.8"),
                  user_base_holding=Decimal("0.3"), user_base_available=Decimal("0.1"))  # fmt: skip
    assert size_copy(request) == Sized(Decimal("0.10000000"), ("capped by available XXBT 0.1",))


def test_sell_without_holding_is_skipped() -> None:
    """A user holding none of the base asset has nothing to sell."""
    request = buy(side=Side.SELL, master_base_before=Decimal("1"), user_base_holding=Decimal("0"))
    assert size_copy(request) == Skipped("user holds no XXBT to sell")


def test_multiplier_mode() -> None:
    """multiplier: master volume x multiplier, whatever the equities."""
    result = size_copy(buy(mode=SizingMode.MULTIPLIER, multiplier=Decimal("0.123456789")))
    # 0.5 x 0.123456789 = 0.0617283945 -> 0.06172839
    assert result == Sized(Decimal("0.06172839"), ("rounded down to 8 decimals",))


def test_fixed_notional_mode() -> None:
    """fixed_notional: the notional divided by the reference price."""
    result = size_copy(buy(mode=SizingMode.FIXED_NOTIONAL, fixed_notional=Decimal("100"),
                           reference_price=Decimal("61234.5")))  # fmt: skip
    assert result == Sized(Decimal("0.00163306"), ("rounded down to 8 decimals",))
    missing = size_copy(buy(mode=SizingMode.FIXED_NOTIONAL))
    assert isinstance(missing, Skipped)


def test_max_order_fraction_caps_cost_against_equity() -> None:
    """Cost is capped at max_order_fraction x user equity."""
    result = size_copy(buy(master_volume=Decimal("2"), max_order_fraction=Decimal("0.10")))
    # raw 0.5 BTC; cap 0.10 x 10000 / 60000 = 0.0166666...
    assert result == Sized(
        Decimal("0.01666666"), ("capped by max_order_fraction 0.10", "rounded down to 8 decimals")
    )


def test_max_notional_and_fraction_take_the_smaller() -> None:
    """With both caps the tighter one wins and both are noted if both bind."""
    result = size_copy(buy(max_order_fraction=Decimal("0.5"), max_notional=Decimal("150")))
    assert isinstance(result, Sized)
    assert result.volume == Decimal("0.00250000")
    assert result.notes[:2] == ("capped by max_order_fraction 0.5", "capped by max_notional 150")


def test_below_ordermin_is_skipped_with_the_reason() -> None:
    """A copy below ordermin is skipped by default, saying the pair and the minimum."""
    result = size_copy(buy(master_volume=Decimal("0.0002"), user_equity=Decimal("1000")))
    assert result == Skipped("copy volume 0.000005 is below XBTUSD ordermin 0.0001")


def test_below_costmin_is_skipped() -> None:
    """A copy whose cost is below costmin is skipped."""
    rules = PairRules("XBTUSD", "XXBT", 8, Decimal("0.1"), Decimal("0.00001"), Decimal("5"))
    result = size_copy(buy(rules=rules, master_volume=Decimal("0.0004")))  # 0.0001 x 60000 = 6
    assert result == Sized(Decimal("0.00010000"))
    result = size_copy(buy(rules=rules, master_volume=Decimal("0.0003")))  # 0.000075 -> 4.5
    assert result == Skipped("copy cost 4.5 is below XBTUSD costmin 5")


def test_round_up_to_minimum_when_opted_in() -> None:
    """Opted-in users get the smallest valid size instead, with the reason noted."""
    result = size_copy(buy(master_volume=Decimal("0.0002"), user_equity=Decimal("1000"),
                           round_up_to_minimum=True))  # fmt: skip
    assert isinstance(result, Sized)
    assert result.volume == Decimal("0.00010000")
    assert "rounded up to the minimum 0.0001" in result.notes[-1]


def test_round_up_uses_costmin_rounded_up_to_the_lot() -> None:
    """Costmin/price is rounded UP to the lot grid so the cost really reaches costmin."""
    rules = PairRules("XBTUSD", "XXBT", 8, Decimal("0.1"), Decimal("0.00001"), Decimal("5"))
    result = size_copy(buy(rules=rules, master_volume=Decimal("0.0001"),
                           reference_price=Decimal("60001"), round_up_to_minimum=True))  # fmt: skip
    assert isinstance(result, Sized)
    # 5 / 60001 = 0.0000833319... -> 0.00008334
    assert result.volume == Decimal("0.00008334")
    assert result.volume * Decimal("60001") >= Decimal("5")


def test_round_up_never_breaks_a_cap() -> None:
    """If the minimum is above a cap, the copy is skipped and the cap named."""
    result = size_copy(buy(master_volume=Decimal("0.0002"), user_equity=Decimal("1000"),
                           max_notional=Decimal("3"), round_up_to_minimum=True))  # fmt: skip
    assert isinstance(result, Skipped)
    assert "would break max_notional 3" in result.reason


def test_zero_equities_are_skipped_not_divided() -> None:
    """Unknown or zero equities give a reason instead of a ZeroDivisionError."""
    assert isinstance(size_copy(buy(master_equity=Decimal(0))), Skipped)
    assert isinstance(size_copy(buy(user_equity=None)), Skipped)
    assert isinstance(size_copy(buy(side=Side.SELL, user_base_holding=Decimal(1))), Skipped)


def test_caps_without_price_are_skipped() -> None:
    """Cost caps need a reference price; without one the copy is skipped, not guessed."""
    result = size_copy(buy(reference_price=None, max_notional=Decimal("10")))
    assert result == Skipped("no reference price to apply the user's cost caps")


@pytest.mark.parametrize(
    ("price", "tick", "side", "limit", "expected"),
    [
        ("60000.15", "0.1", Side.BUY, True, "60000.1"),
        ("60000.15", "0.1", Side.SELL, True, "60000.2"),
        ("60000.15", "0.1", Side.BUY, False, "60000.2"),
        ("60000.14", "0.1", Side.SELL, False, "60000.1"),
        ("60000.1", "0.1", Side.SELL, True, "60000.1"),
        ("1.23456", "0.0005", Side.BUY, True, "1.2345"),
        ("1.23456", "0.0005", Side.SELL, True, "1.2350"),
        ("101", "5", Side.BUY, True, "100"),
    ],
)
def test_prices_go_on_the_tick_grid(
    price: str, tick: str, side: Side, limit: bool, expected: str
) -> None:
    """Limit prices never round to worse than the master's; triggers to the nearest tick."""
    got = round_price_to_tick(Decimal(price), Decimal(tick), side=side, limit=limit)
    assert str(got) == expected


def test_round_volume_down() -> None:
    """Volumes are truncated to lot_decimals."""
    assert round_volume_down(Decimal("0.123456789"), 8) == Decimal("0.12345678")
    assert round_volume_down(Decimal("5"), 0) == Decimal("5")
    assert round_volume_down(Decimal("0.00000001"), 4) == Decimal("0")


positive = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000000"), places=8)


@settings(max_examples=400, deadline=None)
@given(volume=positive, user=positive, master_eq=positive, lot=st.integers(0, 10))
def test_equity_ratio_matches_independent_arithmetic(
    volume: Decimal, user: Decimal, master_eq: Decimal, lot: int
) -> None:
    """For any inputs, the buy volume is floor(volume x user/master, lot) or a minimum skip."""
    rules = PairRules("P", "B", lot, Decimal("0.1"), Decimal(0), None)
    result = size_copy(buy(master_volume=volume, user_equity=user, master_equity=master_eq,
                           rules=rules))  # fmt: skip
    expected = floor_places(ratio_times(volume, user, master_eq), lot)
    assert isinstance(result, Sized)
    assert result.volume == expected
    assert result.volume.as_tuple().exponent == -lot


@settings(max_examples=400, deadline=None)
@given(
    volume=positive, user=positive, master_eq=positive, price=positive,
    fraction=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1"), places=3),
    notional=positive, ordermin=st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=5),
    costmin=st.decimals(min_value=Decimal(0), max_value=Decimal(10), places=2),
    round_up=st.booleans(),
)  # fmt: skip
def test_sized_copies_respect_every_rule(
    volume: Decimal, user: Decimal, master_eq: Decimal, price: Decimal, fraction: Decimal,
    notional: Decimal, ordermin: Decimal, costmin: Decimal, round_up: bool,
) -> None:  # fmt: skip
    """Whatever the inputs: on the lot grid, within caps, at or above minimums, else a reason."""
    rules = PairRules("P", "B", 8, Decimal("0.1"), ordermin, costmin)
    request = buy(master_volume=volume, user_equity=user, master_equity=master_eq,
                  reference_price=price, max_order_fraction=fraction, max_notional=notional,
                  rules=rules, round_up_to_minimum=round_up)  # fmt: skip
    result = size_copy(request)
    if isinstance(result, Skipped):
        assert result.reason
        return
    with localcontext() as ctx:
        ctx.prec = 100
        got = result.volume
        assert got == floor_places(got, 8)
        assert got * price <= fraction * user
        assert got * price <= notional
        assert got >= ordermin
        assert got * price >= costmin
        raw = ratio_times(volume, user, master_eq)
        if not round_up:
            assert got <= raw
        minimum = max(ordermin, (costmin / price).quantize(Decimal("1e-8"), ROUND_CEILING))
        assert got <= max(raw, minimum)
