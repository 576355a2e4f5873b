"""The copier in-process, with real KrakenBrokers on the simulator's exchange, and a real ledger.

    with copy_world(tmp_path, ["ann", "ben"]) as world:
        first = world.add_master(side=Side.BUY, price="50000")
        world.copier.kick()
        world.wait_done(first)
        world.copy(first, "ann").state                      # from the ledger
        world.orders("ann")                                 # what the exchange holds, by cl_ord_id

Master orders are written to the ledger as the feed would write them (the copier's input); the
users' orders are placed by the copier through each user's KrakenBroker, whose requests a
`requests` transport adapter answers from the in-process exchange (`kraken_sim.inprocess`):
no socket, no subprocess, and no wait the exchange asks for is really waited. The copier runs
with short time rules (`FAST`), so nothing here sleeps past a constant.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import krakenex

from copytrader.copying.accounts import (
    CopierSettings,
    CopyBroker,
    CopyTimings,
    UserAccount,
    UserSizing,
)
from copytrader.copying.kill_switch import KillSwitch
from copytrader.copying.lanes import Copier
from copytrader.domain import OrderStatus, OrderType, Side, SizingMode, TimeInForce
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import Order
from copytrader.kraken.retry import COOLDOWN_S
from copytrader.ledger import CopyRecord, CopyState, Decision, Ledger, MasterOrderRecord
from kraken_sim.inprocess import InProcessExchange
from tests.broker.conftest import ALL_PERMISSIONS, SimAccount
from tests.simproc import new_secret

# Each world's exchange has an address of its own: the brokers' pair cache is per address.
_worlds = itertools.count(1)
WAIT_S = 10.0  # a bound on how long a test waits for the copier, never a wait in itself
FAST = CopyTimings(
    ticker_ttl_s=2.0,
    planned_retry_s=0.01,
    first_retry_s=0.01,
    max_retry_s=0.02,
    start_window_s=0.0,
    refresh_after_idle_s=0.01,
    warm_ticker_wait_s=0.5,
    ready_fresh_s=0.5,
    disk_full_retry_s=0.01,
)
DEFAULT_BALANCES = '{ ZUSD = "10000", XXBT = "1" }'
_txids = itertools.count(1)


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll `predicate` (every 5 ms) until it returns something truthy; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.005)
    return value


@dataclass
class CopyWorld:
    exchange: InProcessExchange
    ledger: Ledger
    data_dir: Path
    accounts: dict[str, SimAccount]
    brokers: dict[str, KrakenBroker]
    copier: Copier
    stop: threading.Event
    kill_switch_dir: Path
    users: list[str] = field(default_factory=list)

    def add_master(
        self,
        *,
        side: Side = Side.BUY,
        order_type: OrderType = OrderType.LIMIT,
        volume: str = "0.1",
        price: str | None = "50000",
        avg_price: str | None = None,
        status: OrderStatus = OrderStatus.OPEN,
        opened_ago_s: float = 0.0,
        master_equity: str = "100000",
        master_base_before: str = "2",
        pair: str = "XBTUSD",
    ) -> MasterOrderRecord:
        """A master order as the feed records it (copies planned for every user); kicks the
        copier as the daemon does after recording."""
        now = time.time()
        record = MasterOrderRecord(
            txid=f"OMAST{next(_txids):02d}-AAAAA-BBBBBB", pair=pair, side=side,
            order_type=order_type, volume=Decimal(volume),
            price=None if price is None else Decimal(price), price2=None,
            oflags=frozenset(), timeinforce=TimeInForce.GTC, expiretm=None,
            opentm=now - opened_ago_s, status=status, vol_exec=Decimal(0),
            avg_price=None if avg_price is None else Decimal(avg_price),
            decision=Decision.COPY, first_seen_at=now,
            master_equity=Decimal(master_equity), master_base_before=Decimal(master_base_before),
        )  # fmt: skip
        self.ledger.record_master_order(record, self.users)
        self.copier.kick()
        return record

    def copy(self, master: MasterOrderRecord, user: str) -> CopyRecord:
        return self.ledger.copy(master.txid, user)

    def wait_done(self, *masters: MasterOrderRecord) -> list[CopyRecord]:
        """Until every copy of these master orders has no work left; their copies."""

        def done() -> list[CopyRecord] | None:
            copies = [c for m in masters for c in self.ledger.copies_of(m.txid)]
            busy = [
                c
                for c in copies
                if c.state in (CopyState.PLANNED, CopyState.SUBMITTING)
                or (c.cancel_requested and c.state is CopyState.PLACED)  # a cancel still to do
            ]
            return None if busy else copies

        found: list[CopyRecord] = wait_until(done, "the copies to finish")
        return found

    def states(self, master: MasterOrderRecord) -> dict[str, CopyState]:
        return {c.user_id: c.state for c in self.ledger.copies_of(master.txid)}

    def orders(self, user: str) -> dict[str, Order]:
        """The user's orders on the exchange (open and closed), by cl_ord_id; more than one
        order carrying the same cl_ord_id fails the test."""
        broker = self.brokers[user]
        found = list(broker.open_orders().values())
        found += list(broker.closed_orders().orders.values())
        by_id: dict[str, Order] = {}
        for order in found:
            assert order.cl_ord_id, order
            assert order.cl_ord_id not in by_id, f"{user}: {order.cl_ord_id} placed twice"
            by_id[order.cl_ord_id] = order
        return by_id

    def on_exchange(self, master: MasterOrderRecord) -> set[str]:
        """The users holding an order that carries their copy id of this master order."""
        return {
            user
            for user in self.users
            if self.ledger.copy(master.txid, user).cl_ord_id in self.orders(user)
        }

    def lock_out(self, user: str) -> None:
        """Have the exchange lock the user's key out, as Kraken does after repeated failed
        calls: requests signed with a wrong secret under that key until it answers
        `EGeneral:Temporary lockout` (the user's broker learns it at its next private call)."""
        impostor = krakenex.API(self.accounts[user].key, new_secret())
        impostor.uri = "http://lockout.test"
        impostor.session = self.exchange.session(impostor.uri)
        for _ in range(20):
            errors = impostor.query_private("Balance", timeout=5).get("error", [])
            if "EGeneral:Temporary lockout" in errors:
                impostor.close()
                return
        impostor.close()
        raise AssertionError(f"the exchange did not lock {user}'s key out")

    def cancel_master(self, master: MasterOrderRecord) -> None:
        """The master order is cancelled, as the feed records it; kicks the copier."""
        self.ledger.record_master_update(master.txid, OrderStatus.CANCELLED, Decimal(0))
        self.copier.kick()


def simulator_toml(accounts: Sequence[SimAccount]) -> str:
    lines: list[str] = []
    for account in accounts:
        lines.append(account.toml())
    lines.append('[prices]\nXXBTZUSD = "60000"\nXETHZUSD = "3000"\n')
    return "\n".join(lines)


def make_broker(
    exchange: InProcessExchange,
    account: SimAccount,
    data_dir: Path,
    url: str,
    *,
    cooldown_s: float = COOLDOWN_S,
) -> KrakenBroker:
    return KrakenBroker(
        account.account_id, account.credentials, api_url=url, data_dir=data_dir,
        timeout_s=5.0, retry_waits=False, client_rate_limit=False,
        transport=exchange.adapter(), cooldown_s=cooldown_s,
    )  # fmt: skip


@contextlib.contextmanager
def copy_world(
    tmp_path: Path,
    users: Sequence[str],
    *,
    balances: Mapping[str, str] | None = None,
    sizing_mode: SizingMode = SizingMode.EQUITY_RATIO,
    max_attempts: int = 3,
    max_signal_age_s: float = 60.0,
    wrap: Callable[[str, KrakenBroker], CopyBroker] | None = None,
    sizing: Mapping[str, UserSizing] | None = None,
    ledger: Ledger | None = None,
    cooldown_s: float = COOLDOWN_S,
    permissions: Mapping[str, tuple[str, ...]] | None = None,
) -> Iterator[CopyWorld]:
    """Users on one in-process exchange, each with its own key and broker, and a Copier for
    them; `wrap(user, broker)` may put something around a user's broker (a fault of one user).
    `cooldown_s`: how long a user's broker rests after a lockout or a bad key (Kraken's
    minutes by default; short for the tests of a resting account). `permissions`: a user's
    key permissions on the exchange (default: all).
    On exit the copier is stopped (its lanes must finish within 10 s) and the ledger closed."""
    accounts = {
        user: SimAccount(
            name=user,
            account_id=f"USER:{user}",
            balances=(balances or {}).get(user, DEFAULT_BALANCES),
            permissions=(permissions or {}).get(user, ALL_PERMISSIONS),
        )
        for user in users
    }
    exchange = InProcessExchange(simulator_toml(list(accounts.values())), seed=3)
    # The exchange's rate counters are Kraken's business, not the copier's: a test that makes
    # the copier retry many times must not run into them (the broker's own counter is off too).
    exchange.set_limits(rest=False, orders=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    url = f"http://copy-world-{next(_worlds)}.test"
    brokers = {
        user: make_broker(exchange, account, data_dir, url, cooldown_s=cooldown_s)
        for user, account in accounts.items()
    }
    ledger = ledger or Ledger.in_data_dir(data_dir)
    stop = threading.Event()
    settings = CopierSettings(
        sizing_mode=sizing_mode, max_attempts=max_attempts, max_signal_age_s=max_signal_age_s,
        timings=FAST,
    )  # fmt: skip
    user_accounts = {
        user: UserAccount(
            user,
            user.title(),
            wrap(user, broker) if wrap else broker,
            (sizing or {}).get(user, UserSizing()),
        )
        for user, broker in brokers.items()
    }
    copier = Copier(ledger, user_accounts, settings, KillSwitch(data_dir), stop=stop)
    world = CopyWorld(
        exchange, ledger, data_dir, accounts, brokers, copier, stop, data_dir, list(users)
    )
    try:
        yield world
    finally:
        stop.set()
        stopped = copier.shutdown(10.0)
        ledger.close()
        for broker in brokers.values():
            broker.close()
        assert stopped, "a copy lane did not finish within 10 s of the stop"
