"""Copies sized together (copying/batch.py): exactly once when the daemon dies between writing
them `submitting` and sending them, and gated again when their lane starts late. (Their volumes
are checked in-process: tests/copy_fast.)"""

from __future__ import annotations

import socket
import time
from decimal import Decimal
from pathlib import Path

from copytrader.config.credentials import ApiCredentials
from copytrader.copying.accounts import CopierSettings, CopyTimings, UserAccount, UserSizing
from copytrader.copying.exchange_index import EarlierRunOrders
from copytrader.copying.gates import CopyGates
from copytrader.copying.kill_switch import KILL_SWITCH_FILE_NAME, KillSwitch
from copytrader.copying.outcomes import CopyOutcomes
from copytrader.copying.placing import CopyPlacer
from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import OrderRequest
from copytrader.ledger import CopyRecord, CopyState, Decision, Ledger, MasterOrderRecord
from tests.copy.harness import CopyWorld, DaemonProcess, SimUser, copy_world, new_key, wait_until
from tests.copy.test_crash_and_faults import all_copied_once, assert_exactly_once
from tests.simproc import new_secret

MASTER = {"ZUSD": "200000", "XXBT": "5"}
USERS = [
    SimUser("ann", {"ZUSD": "60000", "XXBT": "1.5"}),
    SimUser("ben", {"ZUSD": "20000", "XXBT": "0.5"}),
    SimUser("cat", {"ZUSD": "40000", "XXBT": "1"}, max_order_fraction="0.05"),
    SimUser("dan", {"ZUSD": "7000", "XXBT": "0.25"}),
]
LOT = Decimal("0.00000001")


def past_the_start_window(daemon: DaemonProcess) -> None:
    """Master orders opened within the start-up window (`start_window_s`) of the daemon's start
    are first looked up on the exchange (an earlier run may have sent their copies), one lane
    at a time; only later ones are batched. The daemon subprocess runs with the default
    window (its configuration has no setting for it), so the test lets that time pass."""
    assert daemon.named("daemon.running")
    time.sleep(CopyTimings().start_window_s + 0.5)


def batched(daemon: DaemonProcess, txid: str) -> int:
    return sum(e["copies"] for e in daemon.named("copy.batched") if txid in e["master_txids"])


def placed_volumes(world: CopyWorld, daemon: DaemonProcess, txid: str) -> dict[str, Decimal]:
    events = [e for e in daemon.named("copy.placed") if e["master_txid"] == txid]
    volumes = {}
    for event in events:
        order = world.reader(event["user"]).private("QueryOrders", {"txid": event["txid"]})
        volumes[event["user"]] = Decimal(order[event["txid"]]["vol"])
    return volumes


def test_killed_after_the_batch_wrote_submitting_each_copy_is_placed_once() -> None:
    """The daemon is SIGKILLed as soon as it logs the batch (every copy `submitting`, their
    AddOrders held up by the exchange), then restarted: each user ends with exactly one copy,
    found by its cl_ord_id or sent after the lookup, never twice."""
    with copy_world(USERS, master_balances=MASTER) as world:
        daemon = world.start_daemon()
        past_the_start_window(daemon)
        params = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.2"}
        first = world.place_master(**params, price="50000")  # fills the equity caches
        world.summary(daemon, first)
        world.sim.control("fault", {"endpoint": "AddOrder", "kind": "latency",
                                    "latency_ms": 1500, "count": len(USERS)})  # fmt: skip
        second = world.place_master(**params, price="50002")
        wait_until(lambda: batched(daemon, second), 30, "the batch of the second order")
        daemon.kill9()
        acked = {e["user"] for e in daemon.named("copy.placed") if e["master_txid"] == second}
        assert len(acked) < len(USERS)  # the AddOrders are held up: the restart has work left
        restarted = world.start_daemon()
        wait_until(lambda: all_copied_once(world, [first, second]), 40, "every copy", 0.5)
        restarted.wait_running()
        wait_until(
            lambda: acked | {e["user"] for e in restarted.named("copy.placed")
                             if e["master_txid"] == second} == {u.user_id for u in USERS},
            30,
            "the restarted daemon settling every copy of the second order",
        )  # fmt: skip
        assert restarted.stop() == 0
        assert_exactly_once(world, [first, second])


def _placer_with_one_batched_copy(
    data_dir: Path,
) -> tuple[CopyPlacer, Ledger, UserAccount, MasterOrderRecord, CopyRecord, OrderRequest]:
    """The real ledger, gates, kill switch and outcomes, and one copy the batch wrote
    `submitting`. The user's broker points at a port nobody listens on: a copy that got past
    the gates would be sent, fail to connect and stay `submitting` for a retry."""
    ledger = Ledger.in_data_dir(data_dir)
    now = time.time()
    record = MasterOrderRecord(
        txid="OBATCH-00000-000001", pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.5"), price=Decimal("50000"), price2=None, oflags=frozenset(),
        timeinforce=TimeInForce.GTC, expiretm=None, opentm=now, status=OrderStatus.OPEN,
        vol_exec=Decimal(0), avg_price=None, decision=Decision.COPY, skip_reason=None,
        master_equity=Decimal("100000"), master_base_before=Decimal(1),
    )  # fmt: skip
    ledger.record_master_order(record, ["ann"])
    [copy] = ledger.mark_submitting_many(
        [(record.txid, "ann", Decimal("0.1"), Decimal("50000"), None)]
    )
    assert copy is not None
    settings = CopierSettings()
    outcomes = CopyOutcomes(ledger, {}, settings, observer=None, clock=time.time)
    gates = CopyGates(KillSwitch(data_dir), settings, time.time)
    earlier_run = EarlierRunOrders(ledger, margin_s=settings.timings.index_margin_s)
    placer = CopyPlacer(
        ledger, settings, {}, gates, earlier_run, outcomes,
        run_started_at=now - 60, monotonic=time.monotonic,
    )  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    broker = KrakenBroker(
        "USER:ann", ApiCredentials(new_key(), new_secret()),
        api_url=f"http://127.0.0.1:{closed_port}", data_dir=data_dir, timeout_s=1.0,
        retry_waits=False, client_rate_limit=False,
    )  # fmt: skip
    account = UserAccount("ann", "Ann", broker, UserSizing())
    request = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT, volume=Decimal("0.1"),
        price=Decimal("50000"), cl_ord_id=copy.cl_ord_id,
    )  # fmt: skip
    return placer, ledger, account, record, copy, request


def test_a_batched_copy_is_skipped_if_the_master_was_cancelled_before_its_lane_sent_it(
    tmp_path: Path,
) -> None:
    """A master order cancelled after the batch (a late lane re-checks): nothing is sent, the
    copy ends skipped with the reason."""
    placer, ledger, account, record, copy, request = _placer_with_one_batched_copy(tmp_path)
    ledger.record_master_update(record.txid, OrderStatus.CANCELLED, Decimal(0))
    placer.send_presized(account, record, copy, request, (), recheck=True)
    after = ledger.copy(record.txid, "ann")
    assert after.state is CopyState.SKIPPED
    assert after.reason is not None
    assert "canceled" in after.reason
    ledger.close()


def test_a_batched_copy_is_skipped_if_the_kill_switch_came_on_before_its_lane_sent_it(
    tmp_path: Path,
) -> None:
    """The kill switch file appearing between the batch and the send stops the copy even on
    the fresh path (no re-read of the master order)."""
    placer, ledger, account, record, copy, request = _placer_with_one_batched_copy(tmp_path)
    (tmp_path / KILL_SWITCH_FILE_NAME).write_text("")
    placer.send_presized(account, record, copy, request, (), recheck=False)
    after = ledger.copy(record.txid, "ann")
    assert after.state is CopyState.SKIPPED
    assert after.reason is not None
    assert "kill switch" in after.reason
    ledger.close()
