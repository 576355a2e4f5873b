"""The copy engine's decisions, in-process: gates, sizing, uncertain copies, cancels, per-user
order, and that no error stalls a user's copies (see world.py for the set-up).

In every test where one copy goes wrong, the other users' copies and the same user's later
copies go through."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from copytrader.copying.accounts import CopyBroker, UserAccount, UserSizing
from copytrader.copying.kill_switch import KILL_SWITCH_FILE_NAME
from copytrader.copying.unknown_outcomes import UnknownOutcomes
from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.errors import DiskFullError
from copytrader.kraken import models
from copytrader.kraken.broker import KrakenBroker
from copytrader.ledger import CopyState, Decision, Ledger, MasterOrderRecord
from copytrader.nonce.store import nonce_file_name
from tests.copy_fast.world import CopyWorld, copy_world, wait_until

USERS = ["ann", "ben"]


class BuggyBroker:
    """A user's real broker, except that asking for the pair `broken` raises KeyError, as a
    bug in reading the pair table would: the thing around the copier, not the copier."""

    def __init__(self, broker: KrakenBroker, broken: str) -> None:
        self.broker = broker
        self.broken = broken

    def trade_balance(self, asset: str = "ZUSD") -> models.TradeBalance:
        return self.broker.trade_balance(asset)

    def balances_ex(self) -> dict[str, models.AssetBalance]:
        return self.broker.balances_ex()

    def pair(self, name: str) -> models.PairInfo:
        if name == self.broken:
            raise KeyError(name)
        return self.broker.pair(name)

    def cached_pair(self, name: str) -> models.PairInfo | None:
        return None if name == self.broken else self.broker.cached_pair(name)

    def ticker(self, pair: str) -> models.Ticker:
        return self.broker.ticker(pair)

    def add_order(self, request: models.OrderRequest) -> models.AddOrderResult:
        return self.broker.add_order(request)

    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> models.Order | None:
        return self.broker.find_order_by_cl_ord_id(cl_ord_id)

    def cancel_order(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> int:
        return self.broker.cancel_order(txid=txid, cl_ord_id=cl_ord_id)

    def open_orders(self, *, cl_ord_id: str | None = None) -> dict[str, models.Order]:
        return self.broker.open_orders(cl_ord_id=cl_ord_id)

    def closed_orders(
        self, *, start: float | None = None, ofs: int = 0, cl_ord_id: str | None = None
    ) -> models.ClosedOrdersPage:
        return self.broker.closed_orders(start=start, ofs=ofs, cl_ord_id=cl_ord_id)

    def settle(self, seconds: float) -> None:
        self.broker.settle(seconds)

    def cooldown_remaining_s(self) -> float:
        return self.broker.cooldown_remaining_s()

    def cooldown_reason(self) -> str:
        return self.broker.cooldown_reason()


def events(
    logs: Sequence[Mapping[str, Any]], name: str, **fields: object
) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name and all(e.get(k) == v for k, v in fields.items())]


def assert_placed_once(world: CopyWorld, *masters: MasterOrderRecord) -> None:
    """Every user's copy of each master order is `placed`, and on the exchange exactly once."""
    for master in masters:
        assert set(world.states(master).values()) == {CopyState.PLACED}, world.states(master)
        assert world.on_exchange(master) == set(world.users)


# ---- sizing and gates --------------------------------------------------------------------


def test_copies_are_sized_by_equity_ratio_and_a_copy_below_the_minimum_is_skipped(
    tmp_path: Path,
) -> None:
    """A limit buy is copied at master volume x user equity / master equity, to the lot; a user
    whose copy falls below the pair's minimum is skipped with the reason."""
    balances = {"ann": '{ ZUSD = "10000" }', "ben": '{ ZUSD = "30000" }', "cy": '{ ZUSD = "1" }'}
    with copy_world(tmp_path, ["ann", "ben", "cy"], balances=balances) as world:
        master = world.add_master(volume="0.1", price="50000", master_equity="100000")
        copies = {c.user_id: c for c in world.wait_done(master)}
        assert copies["ann"].volume == Decimal("0.01")
        assert copies["ben"].volume == Decimal("0.03")
        assert copies["cy"].state is CopyState.SKIPPED
        assert copies["cy"].reason is not None
        assert "ordermin" in copies["cy"].reason
        for user in ("ann", "ben"):
            order = world.orders(user)[copies[user].cl_ord_id]
            assert (order.volume, order.price) == (copies[user].volume, Decimal("50000"))


def test_a_cost_cap_limits_the_copy(tmp_path: Path) -> None:
    """max_order_fraction caps one user's copy at that fraction of its equity (the other
    user's copy is not capped)."""
    sizing = {"ann": UserSizing(max_order_fraction=Decimal("0.05"))}
    balances = {user: '{ ZUSD = "20000" }' for user in USERS}
    with copy_world(tmp_path, USERS, balances=balances, sizing=sizing) as world:
        master = world.add_master(volume="1", price="50000", master_equity="100000")
        copies = {c.user_id: c for c in world.wait_done(master)}
        assert copies["ann"].volume == Decimal("0.02")  # 5% of 20000 at 50000
        assert copies["ben"].volume == Decimal("0.2")
        assert_placed_once(world, master)


def test_gates_kill_switch_old_signal_and_cancelled_master_skip_and_later_copies_go(
    tmp_path: Path,
) -> None:
    """Nothing is sent while the kill switch file exists, for a filled master order older than
    max_signal_age, or for a master order cancelled before its copies went out; each copy says
    why, and the next master order is copied as usual."""
    with copy_world(tmp_path, USERS, max_signal_age_s=30) as world:
        switch = world.data_dir / KILL_SWITCH_FILE_NAME
        switch.write_text("")
        stopped = world.add_master()
        world.wait_done(stopped)
        switch.unlink()
        old = world.add_master(status=OrderStatus.CLOSED, opened_ago_s=120, avg_price="60000")
        world.wait_done(old)
        cancelled = world.add_master(status=OrderStatus.CANCELLED)
        world.wait_done(cancelled)
        later = world.add_master()
        world.wait_done(later)
        for master, why in ((stopped, "kill switch"), (old, "signal too old"),
                            (cancelled, "canceled")):  # fmt: skip
            for copy in world.ledger.copies_of(master.txid):
                assert copy.state is CopyState.SKIPPED
                assert copy.reason is not None
                assert why in copy.reason, copy.reason
            assert world.on_exchange(master) == set()
        assert_placed_once(world, later)


# ---- uncertain copies, cancels, order -----------------------------------------------------


def test_a_lost_addorder_reply_is_resolved_by_cl_ord_id_not_resent(tmp_path: Path) -> None:
    """AddOrder replies lost after the exchange applied them: every copy ends placed, once."""
    with copy_world(tmp_path, USERS) as world:
        world.exchange.arm_fault({"endpoint": "AddOrder", "kind": "drop_reply", "count": 2})
        master = world.add_master()
        world.wait_done(master)
        assert world.exchange.faults() == []  # both faults fired
        assert_placed_once(world, master)


def test_a_copy_an_earlier_run_left_submitting_is_found_by_cl_ord_id(tmp_path: Path) -> None:
    """An earlier run wrote `submitting`, sent the AddOrder and died: the next run finds the
    order by its cl_ord_id and records it, sending nothing again."""
    crashed = Ledger.in_data_dir(tmp_path / "data", run_id="crashed-run")
    now = time.time()
    master = MasterOrderRecord(
        txid="OCRASH-AAAAA-BBBBBB", pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.1"), price=Decimal("50000"), price2=None, oflags=frozenset(),
        timeinforce=TimeInForce.GTC, expiretm=None, opentm=now - 30, status=OrderStatus.OPEN,
        vol_exec=Decimal(0), avg_price=None, decision=Decision.COPY, first_seen_at=now - 30,
        master_equity=Decimal("100000"), master_base_before=Decimal(0),
    )  # fmt: skip
    crashed.record_master_order(master, ["ann"])
    sub = crashed.mark_submitting(
        master.txid, "ann", volume=Decimal("0.01"), price=Decimal("50000"), price2=None
    )
    crashed.close()
    restarted = Ledger.in_data_dir(tmp_path / "data", run_id="restarted-run")
    with copy_world(tmp_path, ["ann"], ledger=restarted) as world:
        request = models.OrderRequest(
            pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT, volume=Decimal("0.01"),
            price=Decimal("50000"), cl_ord_id=sub.cl_ord_id,
        )  # fmt: skip
        sent = world.brokers["ann"].add_order(request)  # what the crashed run had sent
        with capture_logs() as logs:
            world.copier.kick()
            [copy] = world.wait_done(master)
        assert (copy.state, copy.txid) == (CopyState.PLACED, sent.txids[0])
        assert events(logs, "copy.resend") == []
        assert list(world.orders("ann")) == [sub.cl_ord_id]


def test_a_master_cancel_cancels_the_placed_copies(tmp_path: Path) -> None:
    with copy_world(tmp_path, USERS) as world:
        master = world.add_master()
        world.wait_done(master)
        world.ledger.record_master_update(master.txid, OrderStatus.CANCELLED, Decimal(0))
        world.copier.kick()
        world.wait_done(master)
        assert set(world.states(master).values()) == {CopyState.CANCELLED}
        for user in USERS:
            order = world.orders(user)[world.copy(master, user).cl_ord_id]
            assert order.status is OrderStatus.CANCELLED


def test_a_users_buy_is_copied_before_the_sell_that_follows_it(tmp_path: Path) -> None:
    """A market buy then a sell sized by the user's holdings: the buy's AddOrder fails once
    (the exchange is unavailable) and is retried, and the sell still waits for it, so it sells
    what the buy bought (sent first, it would find nothing to sell)."""
    with copy_world(tmp_path, ["ann"], balances={"ann": '{ ZUSD = "10000" }'}) as world:
        world.exchange.arm_fault({"endpoint": "AddOrder", "kind": "unavailable", "count": 1})
        buy = world.add_master(
            order_type=OrderType.MARKET, volume="1", price=None, avg_price="60000",
            status=OrderStatus.CLOSED, master_equity="100000",
        )  # fmt: skip
        sell = world.add_master(
            side=Side.SELL, order_type=OrderType.MARKET, volume="1", price=None,
            avg_price="60000", status=OrderStatus.CLOSED, master_base_before="2",
        )  # fmt: skip
        world.wait_done(buy, sell)
        assert world.copy(buy, "ann").volume == Decimal("0.1")
        assert world.copy(sell, "ann").state is CopyState.PLACED
        assert world.copy(sell, "ann").volume == Decimal("0.05")  # half of what the buy bought


# ---- nothing stalls a user's copies -------------------------------------------------------


def test_a_bug_in_one_users_broker_fails_that_copy_and_nothing_else(tmp_path: Path) -> None:
    """A KeyError from ben's broker while sizing an ETH copy ends that copy `failed` at once
    (one error event, with the traceback); ann's ETH copy and both users' next copies go."""

    def wrap(user: str, broker: KrakenBroker) -> CopyBroker:
        return BuggyBroker(broker, "ETHUSD") if user == "ben" else broker

    with copy_world(tmp_path, USERS, wrap=wrap) as world, capture_logs() as logs:
        eth = world.add_master(pair="ETHUSD", price="2000")
        later = world.add_master()
        world.wait_done(eth, later)
        assert world.states(eth) == {"ann": CopyState.PLACED, "ben": CopyState.FAILED}
        failed = world.copy(eth, "ben")
        assert failed.error is not None
        assert "KeyError" in failed.error
        assert failed.attempts == 0  # never retried
        [event] = events(logs, "copy.failed", user="ben")
        assert event["log_level"] == "error"
        assert isinstance(event["exc_info"], KeyError)
        assert_placed_once(world, later)


def test_a_master_order_that_cannot_be_sized_fails_its_copies_and_later_ones_go(
    tmp_path: Path,
) -> None:
    """A NaN volume in the ledger (poison: it cannot be sized) fails those copies, loudly, and
    the users' next copies are placed."""
    with copy_world(tmp_path, USERS) as world, capture_logs() as logs:
        poison = world.add_master(volume="NaN")
        later = world.add_master()
        world.wait_done(poison, later)
        assert set(world.states(poison).values()) == {CopyState.FAILED}
        assert len(events(logs, "copy.failed", master_txid=poison.txid, log_level="error")) == 2
        assert_placed_once(world, later)


def test_transient_failures_are_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    """TradeBalance keeps answering EService:Unavailable: each planned buy is tried
    max_attempts times, each try counted, then ends `failed`; once the exchange answers again
    the users' next copies are placed."""
    with copy_world(tmp_path, USERS, max_attempts=3) as world, capture_logs() as logs:
        world.exchange.arm_fault({"endpoint": "TradeBalance", "kind": "unavailable", "count": -1})
        stuck = world.add_master()
        world.wait_done(stuck)
        for copy in world.ledger.copies_of(stuck.txid):
            assert (copy.state, copy.attempts) == (CopyState.FAILED, 2)
            assert copy.error is not None
            assert "gave up after 3 attempts" in copy.error
        assert len(events(logs, "copy.retry", master_txid=stuck.txid)) == 4  # 2 per user
        world.exchange.clear_faults()
        later = world.add_master()
        world.wait_done(later)
        assert_placed_once(world, later)


def test_a_copy_whose_lookups_keep_failing_ends_outcome_unknown_never_resent(
    tmp_path: Path,
) -> None:
    """The AddOrder reply is lost (the order is on the exchange) and every lookup fails: after
    its attempts the copy ends `failed` marked "outcome unknown" with its cl_ord_id (the
    operator looks it up), never sent a second time; the user's next copy goes."""
    with copy_world(tmp_path, ["ann"], max_attempts=3) as world, capture_logs() as logs:
        world.exchange.arm_fault({"endpoint": "AddOrder", "kind": "drop_reply", "count": 1})
        for method in ("OpenOrders", "ClosedOrders", "QueryOrders"):
            world.exchange.arm_fault({"endpoint": method, "kind": "unavailable", "count": -1})
        lost = world.add_master()
        [copy] = world.wait_done(lost)
        assert copy.state is CopyState.FAILED
        assert copy.error is not None
        assert "outcome unknown" in copy.error
        assert copy.cl_ord_id in copy.error
        [event] = events(logs, "copy.failed", master_txid=lost.txid)
        assert (event["log_level"], event["outcome_unknown"]) == ("error", True)
        world.exchange.clear_faults()
        later = world.add_master()
        world.wait_done(later)
        orders = world.orders("ann")
        assert set(orders) == {copy.cl_ord_id, world.copy(later, "ann").cl_ord_id}


# ---- a full disk ----------------------------------------------------------------------------


def test_a_full_ledger_disk_is_reported_once_and_nothing_is_lost(tmp_path: Path) -> None:
    """The ledger fills its (capped) file: every write after that fails with SQLite's own
    "database or disk is full", from any thread, with one `ledger.disk_full` event in all; a
    master order that cannot be recorded is recorded once there is space again (one
    `ledger.disk_full_recovered`), and its copies are placed once."""
    with copy_world(tmp_path, USERS) as world, capture_logs() as logs:
        first = world.add_master()
        world.wait_done(first)
        world.ledger.limit_size(1)  # no page more than the file has now
        for filler in range(10_000):  # master orders fill the last free space, as a disk fills
            seen_before = dataclasses.replace(
                first, txid=f"OFILL{filler:05d}-AAAAA-BBBBBB", decision=Decision.BASELINE
            )
            try:
                world.ledger.record_master_order(seen_before, [])
            except DiskFullError:
                break
        blocked = dataclasses.replace(first, txid="OFULL1-AAAAA-BBBBBB")
        for _ in range(3):
            try:
                world.ledger.record_master_order(blocked, world.users)
            except DiskFullError:
                pass
            else:
                raise AssertionError("a write went through on a full ledger")
        assert len(events(logs, "ledger.disk_full")) == 1
        world.ledger.limit_size(None)
        assert world.ledger.record_master_order(blocked, world.users)
        world.copier.kick()
        world.wait_done(blocked)
        assert len(events(logs, "ledger.disk_full_recovered")) == 1
        assert len(events(logs, "ledger.disk_full")) == 1
        assert_placed_once(world, first, blocked)


def test_a_full_disk_under_the_nonce_files_waits_and_resumes_without_losing_a_copy(
    tmp_path: Path,
) -> None:
    """Every user's nonce file needs a new block (its first ceiling) on a disk that has none:
    the kernel answers ENOSPC (the write goes to /dev/full). No private call is sent, no copy is
    charged an attempt or failed, one `nonce.disk_full` is logged; once the files can be
    written, every copy is placed once and `nonce.disk_full_recovered` is logged once."""
    with copy_world(tmp_path, USERS) as world, capture_logs() as logs:
        full = []
        for user in USERS:
            name = nonce_file_name(world.accounts[user].account_id)
            link = world.data_dir / f"{name}.ceiling.tmp"
            link.symlink_to("/dev/full")
            full.append(link)
        master = world.add_master()

        def waited(user: str) -> bool:
            return len(events(logs, "copy.waits_for_disk", user=user)) >= 3

        wait_until(lambda: all(waited(user) for user in USERS), "lanes waiting for the disk")
        assert len(events(logs, "nonce.disk_full")) == 1
        assert set(world.states(master).values()) <= {CopyState.PLANNED, CopyState.SUBMITTING}
        assert world.exchange.state()["counters"]["by_method"].get("AddOrder", 0) == 0
        for link in full:
            os.unlink(link)
        world.wait_done(master)
        assert len(events(logs, "nonce.disk_full_recovered")) == 1
        assert len(events(logs, "nonce.disk_full")) == 1
        assert events(logs, "copy.retry") == []
        assert_placed_once(world, master)


def test_copies_sized_together_in_a_batch_have_the_rules_volumes(tmp_path: Path) -> None:
    """Once a first buy filled the balance caches, the next master order's copies are sized
    together (one `copy.batched`) with the volumes the rules give, a cost cap included."""
    sizing = {"ben": UserSizing(max_order_fraction=Decimal("0.05"))}
    balances = {"ann": '{ ZUSD = "10000" }', "ben": '{ ZUSD = "30000" }'}
    with copy_world(tmp_path, USERS, balances=balances, sizing=sizing) as world:
        first = world.add_master(volume="0.2", price="50000", master_equity="100000")
        world.wait_done(first)
        # The lanes end once they have re-read the balances the first copies made stale: only
        # then are the caches fresh for a batch (on a busy machine that takes a moment).
        wait_until(lambda: world.copier.in_flight() == 0, "lanes idle with fresh balances")
        with capture_logs() as logs:
            second = world.add_master(volume="0.3", price="50001", master_equity="100000")
            world.wait_done(second)
        [batched] = events(logs, "copy.batched")
        assert (batched["copies"], batched["master_txids"]) == (2, [second.txid])
        volumes = {c.user_id: c.volume for c in world.ledger.copies_of(second.txid)}
        # ann: 0.3 x 10000 / 100000; ben: 0.3 x 30000 / 100000 = 0.09, capped at 5% of 30000
        # at 50001 = 0.02999940001..., down to 8 decimals
        assert volumes == {"ann": Decimal("0.03"), "ben": Decimal("0.02999940")}
        assert_placed_once(world, first, second)


def test_a_copy_with_an_unknown_outcome_found_later_is_recorded_and_cancelled_with_its_master(
    tmp_path: Path,
) -> None:
    """The copy ended `failed` with an unknown outcome while its order did land. Once lookups
    work again, the sweep finds it by cl_ord_id and records it `placed`; its master having been
    cancelled meanwhile, the lane cancels it: no live copy is left behind. Nothing is sent."""
    with copy_world(tmp_path, ["ann"], max_attempts=3) as world:
        world.exchange.arm_fault({"endpoint": "AddOrder", "kind": "drop_reply", "count": 1})
        for method in ("OpenOrders", "ClosedOrders", "QueryOrders"):
            world.exchange.arm_fault({"endpoint": method, "kind": "unavailable", "count": -1})
        lost = world.add_master()
        [copy] = world.wait_done(lost)
        assert copy.state is CopyState.FAILED
        world.cancel_master(lost)
        sweep = UnknownOutcomes(
            world.ledger,
            {"ann": UserAccount("ann", "Ann", world.brokers["ann"], UserSizing())},
            time.time,
        )
        assert sweep.sweep() == 0  # lookups still failing: nothing decided
        world.exchange.clear_faults()
        with capture_logs() as logs:
            assert sweep.sweep() == 1
            world.copier.kick()
            wait_until(
                lambda: world.copy(lost, "ann").state is CopyState.CANCELLED, "the copy cancelled"
            )
        assert events(logs, "copy.found_after_unknown_outcome", cancel=True)
        assert world.orders("ann")[copy.cl_ord_id].status is OrderStatus.CANCELLED
        assert world.exchange.state()["counters"]["by_method"]["AddOrder"] == 1
        assert sweep.sweep() == 0  # recorded now: not looked up again


def test_a_copy_with_an_unknown_outcome_that_never_landed_stays_failed(tmp_path: Path) -> None:
    with copy_world(tmp_path, ["ann"], max_attempts=3) as world:
        world.exchange.arm_fault({"endpoint": "AddOrder", "kind": "hang", "count": 1})
        for method in ("OpenOrders", "ClosedOrders", "QueryOrders"):
            world.exchange.arm_fault({"endpoint": method, "kind": "unavailable", "count": -1})
        lost = world.add_master()
        [copy] = world.wait_done(lost)
        assert copy.state is CopyState.FAILED
        world.exchange.clear_faults()
        sweep = UnknownOutcomes(
            world.ledger,
            {"ann": UserAccount("ann", "Ann", world.brokers["ann"], UserSizing())},
            time.time,
        )
        assert sweep.sweep() == 0
        assert world.copy(lost, "ann").state is CopyState.FAILED
        assert copy.cl_ord_id not in world.orders("ann")
