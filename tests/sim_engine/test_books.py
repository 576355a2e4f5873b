"""Books: market orders walk the book, resting orders fill partly, public market data.

Every expectation about a walk is computed here from the Depth answer read just before the order
(an independent walk of the book as it was), with Kraken's fee and rounding rules.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from kraken_sim.accounts import AccountsFileError, parse_accounts
from kraken_sim.books import BookSettings, PairBook
from kraken_sim.engine import Engine
from kraken_sim.errors import UNKNOWN_ASSET_PAIR, invalid_arguments
from tests.sim_engine.conftest import Clock, add, error_of, order

BOOKS = BookSettings(enabled=True, default=PairBook(levels=10, refill_seconds=10.0))
TAKER = Decimal("0.004")


@pytest.fixture
def market(clock: Clock) -> Engine:
    engine = Engine(seed=7, clock=clock, books=BOOKS)
    engine.add_account("alice", balances={"ZUSD": Decimal("500000"), "XXBT": Decimal("5")},
                       tier="intermediate")  # fmt: skip
    engine.add_account("bob", balances={"ZUSD": Decimal("100000"), "XXBT": Decimal("2")},
                       tier="intermediate")  # fmt: skip
    return engine


def _depth(engine: Engine, pair: str = "XBTUSD") -> dict[str, list[list[Any]]]:
    result: dict[str, list[list[Any]]] = engine.public("Depth", {"pair": pair})["XXBTZUSD"]
    return result


def _walk(levels: list[list[Any]], volume: Decimal) -> list[tuple[Decimal, Decimal]]:
    """An independent walk: (price, volume) taken from each level, best first."""
    taken = []
    for price, there, _ in levels:
        if volume <= 0:
            break
        take = min(Decimal(there), volume)
        taken.append((Decimal(price), take))
        volume -= take
    return taken


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _trades(engine: Engine, found: dict[str, Any], account: str = "alice") -> list[dict[str, Any]]:
    history = engine.private(account, "TradesHistory", {})["trades"]
    return [history[txid] for txid in found["trades"]]


def test_book_has_a_spread_and_levels_that_thin_out_from_the_price(market: Engine) -> None:
    depth = _depth(market)
    asks = [Decimal(row[0]) for row in depth["asks"]]
    bids = [Decimal(row[0]) for row in depth["bids"]]
    assert len(asks) == len(bids) == 10
    assert bids[0] < Decimal(60000) < asks[0]
    assert asks == sorted(asks)
    assert bids == sorted(bids, reverse=True)
    ticker = market.public("Ticker", {"pair": "XBTUSD"})["XXBTZUSD"]
    assert ticker["a"][0] == f"{asks[0]:.5f}"
    assert ticker["b"][0] == f"{bids[0]:.5f}"
    assert ticker["a"][0] != ticker["b"][0]


def test_market_buy_fills_as_an_independent_walk_of_the_book_as_it_was(market: Engine) -> None:
    asks = _depth(market)["asks"]
    volume = sum((Decimal(row[1]) for row in asks[:3]), Decimal(0)) + Decimal("0.01")
    expected = _walk(asks, volume)
    before = market.balances("alice")["ZUSD"]
    txid = add(market, pair="XBTUSD", type="buy", ordertype="market", volume=str(volume))
    found = order(market, txid)
    trades = _trades(market, found)
    assert [(Decimal(t["price"]), Decimal(t["vol"])) for t in trades] == expected
    costs = [_cents(price * vol) for price, vol in expected]
    fees = [_cents(cost * TAKER) for cost in costs]
    assert [Decimal(t["cost"]) for t in trades] == costs
    assert [Decimal(t["fee"]) for t in trades] == fees
    assert found["status"] == "closed"
    assert Decimal(found["vol_exec"]) == volume
    assert Decimal(found["cost"]) == sum(costs)
    assert Decimal(found["fee"]) == sum(fees)
    average = sum(costs, Decimal(0)) / volume
    assert found["price"] == f"{average:.1f}"
    assert before - market.balances("alice")["ZUSD"] == sum(costs) + sum(fees)
    assert "partial" not in found["misc"]


def test_slippage_grows_with_size(market: Engine) -> None:
    averages = []
    for volume in ("0.01", "0.5", "2"):
        txid = add(market, pair="XBTUSD", type="sell", ordertype="market", volume=volume)
        found = order(market, txid)
        averages.append(Decimal(found["cost"]) / Decimal(found["vol_exec"]))
        market.set_price("XBTUSD", "60000")  # same centre; what was consumed stays consumed
    assert averages[0] > averages[1] > averages[2]


def test_what_a_taker_consumes_comes_back_over_time(market: Engine, clock: Clock) -> None:
    full = _depth(market)["asks"]
    add(market, pair="XBTUSD", type="buy", ordertype="market", volume=full[0][1])
    assert _depth(market)["asks"][0][0] == full[1][0]
    clock.advance(5)  # half the refill time: half of the level is back
    half = _depth(market)["asks"][0]
    assert half[0] == full[0][0]
    assert Decimal(half[1]) < Decimal(full[0][1])
    clock.advance(5)
    assert _depth(market)["asks"][0][:2] == full[0][:2]


def test_the_book_is_the_same_for_a_seed_and_differs_between_seeds(clock: Clock) -> None:
    books = [Engine(seed=seed, clock=clock, books=BOOKS) for seed in (1, 1, 2)]
    depths = [engine.public("Depth", {"pair": "XBTUSD"}) for engine in books]
    assert depths[0] == depths[1] != depths[2]


def test_marketable_limit_walks_up_to_its_limit_and_rests_the_remainder(market: Engine) -> None:
    asks = _depth(market)["asks"]
    limit = asks[1][0]
    volume = Decimal(asks[0][1]) + Decimal(asks[1][1]) + Decimal("0.3")
    txid = add(market, pair="XBTUSD", type="buy", ordertype="limit", price=limit,
               volume=str(volume))  # fmt: skip
    found = order(market, txid)
    assert found["status"] == "open"
    assert found["misc"] == "partial"
    assert Decimal(found["vol_exec"]) == volume - Decimal("0.3")
    assert [t["maker"] for t in _trades(market, found)] == [False, False]
    held = market.state()["accounts"]["alice"]["hold_trade"]["ZUSD"]
    rest_cost = _cents(Decimal("0.3") * Decimal(limit))
    assert Decimal(held) == rest_cost + _cents(rest_cost * TAKER)


def test_ioc_limit_keeps_what_it_took_and_cancels_the_rest(market: Engine) -> None:
    bids = _depth(market)["bids"]
    volume = Decimal(bids[0][1]) + Decimal("0.5")
    txid = add(market, pair="XBTUSD", type="sell", ordertype="limit", price=bids[0][0],
               volume=str(volume), timeinforce="IOC")  # fmt: skip
    found = order(market, txid)
    assert (found["status"], found["reason"], found["misc"]) == (
        "canceled",
        "Insufficient liquidity",
        "partial",
    )
    assert found["vol_exec"] == bids[0][1]


def test_trade_through_fills_resting_orders_in_price_time_priority(market: Engine) -> None:
    first = add(market, pair="XBTUSD", type="buy", ordertype="limit", price="59000", volume="0.4")
    better = add(market, "bob", pair="XBTUSD", type="buy", ordertype="limit", price="59100",
                 volume="0.3")  # fmt: skip
    later = add(market, "bob", pair="XBTUSD", type="buy", ordertype="limit", price="59000",
                volume="0.4")  # fmt: skip
    below = add(market, pair="XBTUSD", type="buy", ordertype="limit", price="58900", volume="1")
    traded = market.trade("XBTUSD", "sell", "59000", "0.5")
    assert traded == Decimal("0.5")
    assert order(market, better, "bob")["status"] == "closed"
    partly = order(market, first)
    assert (partly["status"], partly["vol_exec"], partly["misc"]) == (
        "open",
        "0.20000000",
        "partial",
    )
    assert order(market, later, "bob")["vol_exec"] == "0.00000000"
    assert order(market, below)["vol_exec"] == "0.00000000"
    trade = _trades(market, partly)[0]
    assert (trade["price"], trade["maker"], trade["fee"]) == ("59000.00000", True, "29.50000")
    assert market.state()["prices"]["XXBTZUSD"] == "60000"


def test_a_partly_filled_limit_cancelled_keeps_its_fills(market: Engine) -> None:
    txid = add(market, pair="XBTUSD", type="sell", ordertype="limit", price="61000", volume="1")
    market.trade("XBTUSD", "buy", "61000", "0.25")
    market.trade("XBTUSD", "buy", "61500", "0.15")
    usd_before = market.balances("alice")["ZUSD"]
    market.private("alice", "CancelOrder", {"txid": txid})
    found = order(market, txid)
    assert (found["status"], found["vol_exec"], found["misc"]) == (
        "canceled",
        "0.40000000",
        "partial",
    )
    assert len(found["trades"]) == 2
    assert found["price"] == "61000.0"
    assert found["cost"] == "24400.00000"
    assert market.balances("alice")["XXBT"] == Decimal("4.6")
    assert market.balances("alice")["ZUSD"] == usd_before
    assert market.state()["accounts"]["alice"]["hold_trade"] == {}


def test_a_price_move_fills_the_rest_of_a_partly_filled_order(market: Engine) -> None:
    txid = add(market, pair="XBTUSD", type="buy", ordertype="limit", price="59500", volume="0.6")
    market.trade("XBTUSD", "sell", "59500", "0.2")
    market.set_price("XBTUSD", "59400")
    found = order(market, txid)
    assert (found["status"], found["vol_exec"], len(found["trades"])) == ("closed", "0.60000000", 2)


def test_trade_control_refuses_what_it_cannot_mean(market: Engine) -> None:
    assert error_of(lambda: market.trade("NOPE", "sell", "1", "1")) == UNKNOWN_ASSET_PAIR
    assert error_of(lambda: market.trade("XBTUSD", "up", "1", "1")) == invalid_arguments("type")
    bad_volume = invalid_arguments("volume")
    assert error_of(lambda: market.trade("XBTUSD", "sell", "1", "0.000000001")) == bad_volume


def test_public_trades_ohlc_and_spread_follow_the_tape(market: Engine, clock: Clock) -> None:
    add(market, pair="XBTUSD", type="buy", ordertype="market", volume="0.1")
    first = market.public("Trades", {"pair": "XBTUSD"})
    rows = first["XXBTZUSD"]
    assert rows
    assert all(row[3] == "b" and row[4] == "m" for row in rows)
    clock.advance(61)
    add(market, pair="XBTUSD", type="sell", ordertype="market", volume="0.2")
    newer = market.public("Trades", {"pair": "XBTUSD", "since": first["last"]})["XXBTZUSD"]
    assert newer
    assert all(row[3] == "s" for row in newer)
    assert next(row[6] for row in newer) == rows[-1][6] + 1
    candles = market.public("OHLC", {"pair": "XBTUSD", "interval": "1"})
    volumes = [Decimal(row[6]) for row in candles["XXBTZUSD"]]
    assert sum(volumes) == Decimal("0.3")
    assert candles["last"] < candles["XXBTZUSD"][-1][0]
    spread = market.public("Spread", {"pair": "XBTUSD"})
    bid, ask = spread["XXBTZUSD"][-1][1:]
    assert Decimal(bid) < Decimal(ask)
    assert error_of(lambda: market.public("OHLC", {"pair": "XBTUSD", "interval": "2"})) == (
        invalid_arguments("interval")
    )


def test_books_section_of_the_accounts_file() -> None:
    base: dict[str, Any] = {"accounts": [{"name": "a", "key": "k", "secret": "c2VjcmV0"}]}
    assert not parse_accounts(base, source="f").books.enabled
    setup = parse_accounts(
        {**base, "books": {"levels": 5, "XBTUSD": {"spread_bps": "10", "level_volume": "2"}}},
        source="f",
    )
    assert setup.books.enabled
    assert setup.books.default.levels == 5
    btc = setup.books.pairs["XXBTZUSD"]
    assert (btc.levels, btc.spread_bps, btc.level_volume) == (5, Decimal(10), Decimal(2))
    for wrong, says in (
        ({"levels": 0}, "levels"),
        ({"NOPE": {}}, "unknown pair"),
        ({"XBTUSD": {"depth": 1}}, "depth"),
        ({"growth": 0.5}, "growth"),
    ):
        with pytest.raises(AccountsFileError, match=says):
            parse_accounts({**base, "books": wrong}, source="f")


def test_market_orders_wait_for_the_engine_when_a_delay_is_set(clock: Clock) -> None:
    """With market_delay_ms, AddOrder answers while the order is pending (shown open, holding
    its walk's cost); it walks the book once the delay has passed."""
    delayed = BookSettings(enabled=True, market_delay_ms=5)
    engine = Engine(seed=7, clock=clock, books=delayed)
    engine.add_account("alice", balances={"ZUSD": Decimal("100000")}, tier="pro")
    txid = add(engine, pair="XBTUSD", type="buy", ordertype="market", volume="0.5")
    waiting = order(engine, txid)
    assert (waiting["status"], waiting["vol_exec"]) == ("pending", "0.00000000")
    assert list(engine.private("alice", "OpenOrders", {})["open"]) == [txid]
    held = Decimal(engine.state()["accounts"]["alice"]["hold_trade"]["ZUSD"])
    clock.advance(0.004)
    assert order(engine, txid)["status"] == "pending"
    clock.advance(0.002)
    done = order(engine, txid)
    assert (done["status"], done["vol_exec"]) == ("closed", "0.50000000")
    assert Decimal(done["cost"]) + Decimal(done["fee"]) == held
    assert engine.state()["accounts"]["alice"]["hold_trade"] == {}


def test_a_pending_market_order_can_be_cancelled(clock: Clock) -> None:
    engine = Engine(seed=7, clock=clock, books=BookSettings(enabled=True, market_delay_ms=50))
    engine.add_account("alice", balances={"XXBT": Decimal("1")}, tier="pro")
    txid = add(engine, pair="XBTUSD", type="sell", ordertype="market", volume="0.5")
    engine.private("alice", "CancelOrder", {"txid": txid})
    clock.advance(1)
    found = order(engine, txid)
    assert (found["status"], found["vol_exec"]) == ("canceled", "0.00000000")
    assert engine.balances("alice")["XXBT"] == Decimal("1")


def test_a_partly_filled_order_expires_with_its_fills(market: Engine, clock: Clock) -> None:
    txid = add(market, pair="XBTUSD", type="buy", ordertype="limit", price="59000", volume="0.5",
               timeinforce="GTD", expiretm="+60")  # fmt: skip
    market.trade("XBTUSD", "sell", "58000", "0.2")
    clock.advance(61)
    closed = market.private("alice", "ClosedOrders", {})["closed"][txid]
    assert (closed["status"], closed["vol_exec"], closed["misc"]) == (
        "expired",
        "0.20000000",
        "partial",
    )
    assert market.state()["accounts"]["alice"]["hold_trade"] == {}
