"""A user whose key Kraken locked out (and whose broker then rests) catches up: its copies wait
instead of failing, and go out once the account can trade again, within each order's rules. The
other users are not held up.

The lockout is the exchange's own (requests with a wrong signature under the user's key, as a
leaked or mistyped secret elsewhere would cause); the user's broker rests `REST_S` after it
(production: minutes), and the tests wait for outcomes, never for a fixed time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from copytrader.domain import OrderStatus, OrderType, Side
from copytrader.ledger import CopyState, MasterOrderRecord
from tests.copy_fast.world import CopyWorld, copy_world, wait_until

USERS = ["ann", "ben"]
REST_S = 0.4  # the brokers' rest after a lockout in these tests


def events(
    logs: Sequence[Mapping[str, Any]], name: str, **fields: object
) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name and all(e.get(k) == v for k, v in fields.items())]


def placed_on_exchange_once(world: CopyWorld, master: MasterOrderRecord) -> None:
    """Every user's copy is `placed` and the exchange holds exactly one order with its id
    (`world.orders` fails on a second one)."""
    assert set(world.states(master).values()) == {CopyState.PLACED}, world.states(master)
    assert world.on_exchange(master) == set(world.users)


def test_copies_for_a_locked_out_user_wait_through_the_rest_and_go_out_after_it(
    tmp_path: Path,
) -> None:
    """ann's key is locked out: her copies of a resting limit order and of a market order
    wait (through two rests, uncounted, never `failed`), ben's go out at once; when the lockout
    ends, ann's copies are placed, each exactly once (the one sent into the lockout is looked up
    by its cl_ord_id before it is sent again)."""
    with copy_world(tmp_path, USERS, cooldown_s=REST_S) as world, capture_logs() as logs:
        warm = world.add_master(volume="0.1", price="50000")
        world.wait_done(warm)  # both users' balances are cached: the next copies are batched
        world.lock_out("ann")

        resting = world.add_master(volume="0.1", price="49000")
        market = world.add_master(
            order_type=OrderType.MARKET, price=None, avg_price="60000",
            status=OrderStatus.CLOSED, volume="0.05",
        )  # fmt: skip
        wait_until(lambda: world.copy(market, "ben").state is CopyState.PLACED, "ben's market copy")
        assert world.copy(resting, "ben").state is CopyState.PLACED
        # ann's first copy went out into the lockout, and waits `submitting` through one rest,
        # then another (its lookup after the first rest met the lockout again).
        wait_until(
            lambda: len(events(logs, "copy.waiting", user="ann", master_txid=resting.txid)) >= 2,
            "ann's copy waiting through two rests",
        )
        assert world.states(resting)["ann"] is CopyState.SUBMITTING
        assert world.states(market)["ann"] is CopyState.PLANNED
        assert events(logs, "copy.failed") == []
        assert world.copy(resting, "ann").attempts == 1  # the rests are not counted
        assert events(logs, "copy.account_resting", user="ann")  # once per rest
        assert events(logs, "copy.account_resting", user="ben") == []

        world.exchange.clear_lockouts()
        world.wait_done(resting, market)

        placed_on_exchange_once(world, warm)
        placed_on_exchange_once(world, resting)
        placed_on_exchange_once(world, market)
        assert events(logs, "copy.failed") == []
        assert world.copy(resting, "ann").attempts == 2  # into the lockout, then after it
        [resent] = events(logs, "copy.resend", user="ann")
        assert resent["master_txid"] == resting.txid
        assert events(logs, "copy.account_rest_over", user="ann")


def test_after_the_rest_a_market_order_past_the_signal_window_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    """ann is locked out while a market order and a resting limit order come in. When her
    account may trade again, the market order's signal is older than max_signal_age_seconds:
    her copy of it is skipped, saying so; the limit order still stands and is copied."""
    max_age_s = 1.0
    with (
        copy_world(tmp_path, USERS, cooldown_s=REST_S, max_signal_age_s=max_age_s) as world,
        capture_logs() as logs,
    ):
        world.lock_out("ann")
        market = world.add_master(
            order_type=OrderType.MARKET, price=None, avg_price="60000",
            status=OrderStatus.CLOSED, volume="0.05",
        )  # fmt: skip
        resting = world.add_master(volume="0.1", price="49000", side=Side.BUY)
        wait_until(lambda: world.copy(resting, "ben").state is CopyState.PLACED, "ben's copies")
        assert world.copy(market, "ben").state is CopyState.PLACED
        wait_until(
            lambda: events(logs, "copy.waiting", user="ann", master_txid=market.txid),
            "ann's market copy waiting for the rest",
        )
        # The lockout lasts until the market order is older than the window.
        wait_until(
            lambda: time.time() - market.opentm > max_age_s, "the signal to age past the window"
        )
        world.exchange.clear_lockouts()
        world.wait_done(market, resting)

        skipped = world.copy(market, "ann")
        assert skipped.state is CopyState.SKIPPED, skipped
        assert "signal too old" in str(skipped.reason)
        [event] = events(logs, "copy.skipped", user="ann", master_txid=market.txid)
        assert "max_signal_age_seconds" in event["reason"]
        placed_on_exchange_once(world, resting)
        assert events(logs, "copy.failed") == []
        assert world.copy(market, "ann").cl_ord_id not in world.orders("ann")


def test_a_cancel_during_the_rest_is_carried_out_after_it(tmp_path: Path) -> None:
    """ann's copy is placed; her key is then locked out and the master cancels. ben's copy is
    cancelled at once; ann's cancel waits for the rest (uncounted) and is done after it. A
    second master order, cancelled while ann's copy of it was waiting to be sent, is never
    sent to her."""
    with copy_world(tmp_path, USERS, cooldown_s=REST_S) as world, capture_logs() as logs:
        placed = world.add_master(volume="0.1", price="49000")
        world.wait_done(placed)
        world.lock_out("ann")
        unsent = world.add_master(volume="0.1", price="48000")
        wait_until(
            lambda: events(logs, "copy.waiting", user="ann", master_txid=unsent.txid),
            "ann's copy waiting for the rest",
        )
        world.cancel_master(placed)
        world.cancel_master(unsent)
        wait_until(lambda: world.copy(placed, "ben").state is CopyState.CANCELLED, "ben's cancel")
        wait_until(
            lambda: events(logs, "copy.waiting", user="ann", master_txid=placed.txid),
            "ann's cancel waiting for the rest",
        )
        assert world.copy(placed, "ann").state is CopyState.PLACED
        world.exchange.clear_lockouts()
        world.wait_done(placed, unsent)

        assert world.states(placed) == {"ann": CopyState.CANCELLED, "ben": CopyState.CANCELLED}
        ann_orders = world.orders("ann")
        assert ann_orders[world.copy(placed, "ann").cl_ord_id].status is OrderStatus.CANCELLED
        assert world.copy(unsent, "ann").state is CopyState.SKIPPED
        assert world.copy(unsent, "ann").cl_ord_id not in ann_orders
        assert events(logs, "copy.failed") == []
        assert events(logs, "copy.cancel_failed") == []


def test_a_key_refused_without_a_rest_still_fails_the_copy_at_once(tmp_path: Path) -> None:
    """Only a rest makes a copy wait: a key that may read but not trade (Permission denied on
    AddOrder: no lockout follows, so the broker does not rest) ends the copy `failed`, loudly,
    and the user's later copies are not held up by a wait."""
    reads = ("query_funds", "query_orders", "cancel_orders")
    with (
        copy_world(tmp_path, USERS, cooldown_s=REST_S, permissions={"ann": reads}) as world,
        capture_logs() as logs,
    ):
        first = world.add_master(volume="0.1", price="49000")
        second = world.add_master(volume="0.1", price="48000")
        world.wait_done(first, second)
        assert world.states(first) == {"ann": CopyState.FAILED, "ben": CopyState.PLACED}
        assert world.states(second) == {"ann": CopyState.FAILED, "ben": CopyState.PLACED}
        assert "Permission denied" in str(world.copy(first, "ann").error)
        assert events(logs, "copy.waiting") == []
        assert events(logs, "copy.account_resting") == []
