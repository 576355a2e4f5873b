"""A broker with a stop event (the daemon's SIGTERM): every wait ends soon after the stop is set,
and a stop never sends anything nor turns an unknown outcome into "not placed"."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from copytrader.domain import OrderStatus, RateTier
from copytrader.errors import OutcomeUnknownError, RetryLaterError
from copytrader.kraken.broker import KrakenBroker
from tests.broker.conftest import SimAccount, make_broker, sim_counters
from tests.broker.test_outcomes import arm, limit_buy, orders_with
from tests.simproc import SimProcess

# From the stop to the call's end: one wait cut short, plus loopback calls and thread switches.
STOPPED_WITHIN_S = 1.0
# Bounds for waiting on something the call under test does (not how long the call may take).
EVENT_TIMEOUT_S = 10.0


class StopLater:
    """Sets the stop event when `ready()` holds (checked from a thread), and notes when."""

    def __init__(self, stop: threading.Event, ready: Callable[[], bool]) -> None:
        self._stop = stop
        self._ready = ready
        self.set_at: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while not self._ready() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the simulator's output or counters: no event to wait on
        self.set_at = time.monotonic()
        self._stop.set()

    def __enter__(self) -> StopLater:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(EVENT_TIMEOUT_S + 1)

    def elapsed(self) -> float:
        """Seconds from the stop to now."""
        assert self.set_at is not None, "the stop was never set"
        return time.monotonic() - self.set_at


def fault_fired(sim: SimProcess, method: str, times: int = 1) -> Callable[[], bool]:
    """True once the simulator has logged this many fired faults for `method`."""

    def fired() -> bool:
        lines = list(sim.output)
        return sum(1 for line in lines if "sim.fault_fired" in line and method in line) >= times

    return fired


@pytest.fixture(name="stop")
def _stop() -> threading.Event:
    return threading.Event()


@pytest.fixture(name="waiting_broker")
def _waiting_broker(
    master: SimAccount, sim: SimProcess, tmp_path: Path, stop: threading.Event
) -> Iterator[KrakenBroker]:
    """A broker with the real retry waits (0.5 s, 1 s, 2 s ... plus jitter) and a stop event."""
    broker = make_broker(master, sim, tmp_path / "data", retry_waits=True, stop=stop)
    yield broker
    broker.close()


def test_read_against_a_persistent_fault_ends_soon_after_the_stop(
    waiting_broker: KrakenBroker, sim: SimProcess, stop: threading.Event
) -> None:
    """Balance keeps answering EService:Unavailable; the retries would wait ~7.5 s in all. Once
    the stop is set (during the second wait), the read ends at once with RetryLaterError."""
    arm(sim, "Balance", "unavailable", count=-1)
    with StopLater(stop, fault_fired(sim, "Balance", times=2)) as stopper:
        with pytest.raises(RetryLaterError, match=r"Balance: stopping: not retried after"):
            waiting_broker.balances()
        took = stopper.elapsed()
    assert took < STOPPED_WITHIN_S, f"the read ended {took:.2f} s after the stop"
    assert sim_counters(sim)["by_method"]["Balance"] == 2  # no attempt after the stop


def test_a_stop_does_not_cancel_a_call_that_has_nothing_to_wait_for(
    waiting_broker: KrakenBroker, stop: threading.Event
) -> None:
    """A stop shortens waits only: a read asked for after it is still sent and answered."""
    stop.set()
    assert waiting_broker.balances()["ZUSD"] > 0


def test_add_order_with_lost_reply_stays_unknown_when_stopped_before_the_lookup(
    waiting_broker: KrakenBroker,
    master: SimAccount,
    sim: SimProcess,
    tmp_path: Path,
    stop: threading.Event,
) -> None:
    """AddOrder is applied but its reply is lost; the stop comes while the broker waits to
    look it up. The outcome stays unknown (not "not placed", not failed): nothing is resent,
    no lookup is made early, and the order exists exactly once, for a later lookup to find."""
    arm(sim, "AddOrder", "drop_reply")
    with StopLater(stop, fault_fired(sim, "AddOrder")) as stopper:
        with pytest.raises(OutcomeUnknownError, match="stopping before the outcome was looked up"):
            waiting_broker.add_order(limit_buy("stopped-1"))
        took = stopper.elapsed()
    assert took < STOPPED_WITHIN_S, f"AddOrder ended {took:.2f} s after the stop"
    counters = sim_counters(sim)["by_method"]
    assert counters["AddOrder"] == 1
    # The lookup is never cut short into a false "not found": it is not made at all.
    assert counters.get("OpenOrders", 0) == 0
    assert counters.get("ClosedOrders", 0) == 0
    assert len(orders_with(sim, "stopped-1")) == 1
    # The next start looks it up (a new broker, no stop) and finds the one order.
    next_start = make_broker(master, sim, tmp_path / "data")
    try:
        found = next_start.find_order_by_cl_ord_id("stopped-1")
    finally:
        next_start.close()
    assert found is not None
    assert found.status is OrderStatus.OPEN


def test_cancel_with_lost_reply_is_not_reported_as_unknown_order_when_stopped(
    waiting_broker: KrakenBroker, sim: SimProcess, stop: threading.Event
) -> None:
    """A CancelOrder whose reply is lost, stopped before its lookup: OutcomeUnknownError, never
    "EOrder:Unknown order" (which the copier would take as nothing to cancel)."""
    placed = waiting_broker.add_order(limit_buy("stopped-cancel"))
    arm(sim, "CancelOrder", "drop_reply")
    with StopLater(stop, fault_fired(sim, "CancelOrder")) as stopper:
        with pytest.raises(OutcomeUnknownError):
            waiting_broker.cancel_order(txid=placed.txids[0])
        took = stopper.elapsed()
    assert took < STOPPED_WITHIN_S, f"CancelOrder ended {took:.2f} s after the stop"
    assert sim_counters(sim)["by_method"]["CancelOrder"] == 1
    order = waiting_broker.query_orders(placed.txids)[placed.txids[0]]
    assert order.status is OrderStatus.CANCELLED


def test_settle_raises_instead_of_returning_early(
    waiting_broker: KrakenBroker, stop: threading.Event
) -> None:
    """`settle` (the copier waits with it before a lookup) ends on the stop by raising, so no
    caller looks an order up before the exchange settled."""
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(RetryLaterError, match="stopping: the order was not looked up"):
            waiting_broker.settle(30.0)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 0.2 + STOPPED_WITHIN_S


def test_rest_rate_limit_wait_ends_on_the_stop_and_sends_nothing(
    master: SimAccount, sim: SimProcess, tmp_path: Path, stop: threading.Event
) -> None:
    """A read waiting for the client-side REST counter (a full starter counter: ~6 s) ends on
    the stop with RetryLaterError, and the call is never sent."""
    broker = make_broker(
        master, sim, tmp_path / "data", tier=RateTier.STARTER, client_rate_limit=True, stop=stop
    )
    try:
        assert broker.rate is not None
        broker.rate.rest.penalize()  # as after EAPI:Rate limit exceeded
        with StopLater(stop, lambda: True) as stopper:
            with pytest.raises(RetryLaterError, match=r"Balance: stopping: not sent"):
                broker.balances()
            took = stopper.elapsed()
    finally:
        broker.close()
    assert took < STOPPED_WITHIN_S
    assert sim_counters(sim)["by_method"].get("Balance", 0) == 0


def test_pair_backoff_wait_ends_on_the_stop_and_sends_nothing(
    master: SimAccount, sim: SimProcess, tmp_path: Path, stop: threading.Event
) -> None:
    """An AddOrder waiting out its pair's matching-engine backoff (8 s here) ends on the stop
    with RetryLaterError, not sent: nothing to look up, nothing placed."""
    broker = make_broker(master, sim, tmp_path / "data", client_rate_limit=True, stop=stop)
    try:
        assert broker.rate is not None
        for _ in range(4):  # as after four EOrder:Rate limit exceeded: 1, 2, 4, 8 s
            broker.rate.pairs.penalize("XBTUSD")
        with StopLater(stop, lambda: True) as stopper:
            with pytest.raises(RetryLaterError, match=r"AddOrder: stopping: not sent"):
                broker.add_order(limit_buy("stopped-pair"))
            took = stopper.elapsed()
    finally:
        broker.close()
    assert took < STOPPED_WITHIN_S
    assert sim_counters(sim)["by_method"].get("AddOrder", 0) == 0
    assert orders_with(sim, "stopped-pair") == []
