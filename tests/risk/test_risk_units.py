"""The risk gates' configuration keys (defaults from [copy], per-user overrides, refusals) and
the slippage cap's tick rounding, each against independent arithmetic."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from copytrader.config.settings import load_settings
from copytrader.copying.risk_slippage import cap_price
from copytrader.domain import Side
from copytrader.errors import ConfigError

CONFIG = """
[copy]
max_slippage_bps = "25"
max_drawdown_pct = "30"
cancel_after_seconds = 60
dead_man_on_stop = "leave"
risk_check_seconds = 5

[[users]]
id = "alice"

[[users]]
id = "bob"
max_slippage_bps = "5"
close_only = true
max_drawdown_pct = "12.5"
cancel_after_seconds = 0
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "accounts.toml").write_text(text)
    return tmp_path


def test_risk_keys_default_from_copy_and_are_overridden_per_user(tmp_path: Path) -> None:
    settings = load_settings({}, cwd=_write(tmp_path, CONFIG), dotenv=False)
    copy = settings.copy
    assert (copy.dead_man_on_stop, copy.risk_check_seconds) == ("leave", 5.0)
    alice, bob = (spec.user for spec in settings.users)
    assert alice is not None
    assert bob is not None
    assert (alice.max_slippage_bps, alice.close_only) == (Decimal(25), False)
    assert (alice.max_drawdown_pct, alice.cancel_after_seconds) == (Decimal(30), 60)
    assert (bob.max_slippage_bps, bob.close_only) == (Decimal(5), True)
    assert (bob.max_drawdown_pct, bob.cancel_after_seconds) == (Decimal("12.5"), 0)
    assert not settings.close_only_env
    env = {"COPYTRADER_CLOSE_ONLY": "yes"}
    assert load_settings(env, cwd=tmp_path, dotenv=False).close_only_env


@pytest.mark.parametrize(
    ("line", "field", "phrase"),
    [
        ('max_slippage_bps = "0"', "max_slippage_bps", "positive"),
        ('max_slippage_bps = "10001"', "max_slippage_bps", "at most 10000"),
        ("max_slippage_bps = 0.5", "max_slippage_bps", "as strings"),
        ('max_drawdown_pct = "100.5"', "max_drawdown_pct", "at most 100"),
        ("close_only = 1", "close_only", "true or false"),
        ("cancel_after_seconds = 5", "cancel_after_seconds", "between 15 and 86399"),
        ("cancel_after_seconds = 86400", "cancel_after_seconds", "between 15 and 86399"),
        ("cancel_after_seconds = 60.0", "cancel_after_seconds", "whole number"),
    ],
)
def test_bad_risk_values_are_refused_naming_the_field(
    tmp_path: Path, line: str, field: str, phrase: str
) -> None:
    _write(tmp_path, f'[[users]]\nid = "alice"\n{line}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({}, cwd=tmp_path, dotenv=False)
    assert field in str(caught.value)
    assert phrase in str(caught.value)


def test_dead_man_on_stop_takes_only_its_two_words(tmp_path: Path) -> None:
    _write(tmp_path, '[copy]\ndead_man_on_stop = "keep"\n[[users]]\nid = "alice"\n')
    with pytest.raises(ConfigError, match=r"disarm \| leave"):
        load_settings({}, cwd=tmp_path, dotenv=False)


@pytest.mark.parametrize(
    ("base", "bps", "side", "tick", "expected"),
    [
        # 60025.2 x 1.001 = 60085.2252 -> down to the tick for a buy (never above the cap)
        ("60025.2", "10", Side.BUY, "0.1", "60085.2"),
        # 60025.2 x 0.999 = 59965.1748 -> up to the tick for a sell (never below the cap)
        ("60025.2", "10", Side.SELL, "0.1", "59965.2"),
        # on the grid already: unchanged
        ("100", "50", Side.BUY, "0.5", "100.5"),
        ("0.123456", "1", Side.SELL, "0.00001", "0.12345"),  # 0.1234436544 -> up: 0.12345
    ],
)
def test_the_cap_is_rounded_to_the_tick_never_past_the_bound(
    base: str, bps: str, side: Side, tick: str, expected: str
) -> None:
    price = cap_price(Decimal(base), Decimal(bps), side, Decimal(tick))
    assert price == Decimal(expected)
    bound = Decimal(base) * (1 + Decimal(bps) / 10_000 * (1 if side is Side.BUY else -1))
    assert price <= bound if side is Side.BUY else price >= bound
