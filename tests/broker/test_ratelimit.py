"""Client-side rate limits: wait instead of earning EAPI:Rate limit exceeded; pair backoff."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from copytrader.domain import OrderType, RateTier, Side
from copytrader.kraken.models import AddOrderResult, OrderRequest
from copytrader.kraken.ratelimit import (
    HEADROOM,
    REST_LIMITS,
    PairBackoff,
    RestCounter,
    rate_state_for,
    rest_cost,
)
from tests.broker.conftest import SimAccount, accounts_toml, make_broker, new_key, sim_counters
from tests.simproc import running_sim


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("method", "cost"),
    [("Balance", 1), ("OpenOrders", 1), ("TradesHistory", 2), ("Ledgers", 2), ("AddOrder", 0),
     ("CancelOrder", 0)],
)  # fmt: skip
def test_rest_costs(method: str, cost: int) -> None:
    """Ledgers and trade history cost 2, order entry 0 (engine-limited), everything else 1."""
    assert rest_cost(method) == cost


def test_rest_counter_books_calls_and_says_how_long_to_wait() -> None:
    """Up to max - headroom calls go at once; then each waits 1/decay seconds more."""
    clock = FakeClock()
    limit = REST_LIMITS[RateTier.STARTER]
    counter = RestCounter(limit, clock)
    free_calls = int(limit.maximum - HEADROOM)
    assert [counter.reserve(1) for _ in range(free_calls)] == [0.0] * free_calls
    waits = [counter.reserve(1) for _ in range(3)]
    assert waits == pytest.approx([1 / 0.33, 2 / 0.33, 3 / 0.33])
    clock.now += 100
    assert counter.level == 0
    assert counter.reserve(0) == 0
    counter.penalize()
    assert counter.level == limit.maximum
    assert counter.reserve(1) == pytest.approx((HEADROOM + 1) / 0.33)


def test_pair_backoff_doubles_until_cleared() -> None:
    """Each EOrder:Rate limit exceeded doubles the pair's wait (capped); success clears it."""
    clock = FakeClock()
    backoff = PairBackoff(clock)
    assert [backoff.penalize("XBTUSD") for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.wait_s("XBTUSD") == 30
    assert backoff.wait_s("ETHUSD") == 0
    clock.now += 10
    assert backoff.wait_s("XBTUSD") == 20
    backoff.clear("XBTUSD")
    assert backoff.wait_s("XBTUSD") == 0
    assert backoff.penalize("XBTUSD") == 1


def test_rate_state_is_shared_per_key() -> None:
    """Every broker of one key in a process shares one counter; other keys have their own."""
    key = new_key()
    assert rate_state_for(key, RateTier.PRO) is rate_state_for(key, RateTier.PRO)
    assert rate_state_for(new_key(), RateTier.PRO) is not rate_state_for(key, RateTier.PRO)
    with capture_logs() as logs:
        assert rate_state_for(key, RateTier.STARTER).tier is RateTier.PRO
    assert [e["event"] for e in logs] == ["broker.tier_mismatch"]


def test_brokers_of_one_key_wait_instead_of_being_refused(tmp_path: Path) -> None:
    """Two brokers sharing a pro key make 22 calls fast: they wait, Kraken never refuses one."""
    account = SimAccount(name="master", account_id="MASTER", tier="pro")
    with running_sim(accounts_toml(account)) as sim:
        # Both share the account's data folder, as the daemon and `copytrader check` do: with a
        # nonce file each, two ms clocks on one key race and earn Invalid nonce (then a lockout).
        brokers = [make_broker(account, sim, tmp_path, client_rate_limit=True) for _ in range(2)]
        started = time.monotonic()
        for n in range(22):
            brokers[n % 2].balances()
        elapsed = time.monotonic() - started
        counters = sim_counters(sim)
    assert "EAPI:Rate limit exceeded" not in counters["by_error"]
    assert counters["by_method"]["Balance"] == 22
    # 19 calls fit under the maximum (20 - headroom); the other 3 wait ~1 s each at 1/s decay.
    assert elapsed >= 2.0


def test_pair_backs_off_after_engine_rate_limit(tmp_path: Path) -> None:
    """Past the engine's per-pair limit the broker backs off; each order is still placed once."""
    account = SimAccount(name="master", account_id="MASTER", tier="starter")
    with running_sim(accounts_toml(account)) as sim:
        broker = make_broker(account, sim, tmp_path, client_rate_limit=True)
        order = OrderRequest(
            pair="XBTUSD", side=Side.BUY, order_type=OrderType.MARKET, volume=Decimal("0.0001")
        )
        results: list[AddOrderResult] = []
        with capture_logs() as logs:
            # Starter: 60 per pair, decaying 1/s. Go on until the engine refused at least once.
            while len(results) < 300 and not any(e["event"] == "broker.pair_backoff" for e in logs):
                results.append(broker.add_order(order))
            results += [broker.add_order(order) for _ in range(3)]
        counters = sim_counters(sim)
        closed = broker.closed_orders().count
    assert counters["by_error"].get("EOrder:Rate limit exceeded", 0) >= 1
    assert len({r.txids for r in results}) == len(results)
    assert closed == len(results)
    backoffs = [e for e in logs if e["event"] == "broker.pair_backoff"]
    assert backoffs[0]["pair"] == "XBTUSD"
    assert backoffs[0]["account"] == "MASTER"
