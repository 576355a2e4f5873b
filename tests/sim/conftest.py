"""One simulator process for the whole tests/sim session, with accounts for every scenario."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kraken_sim.clock import SimClock
from kraken_sim.inprocess import InProcessExchange
from tests.sim.kraken_http import RawClient
from tests.simproc import SimProcess, new_secret, running_sim

# Kraken's documented signing example (kraken-api.md §1): public, so not a secret to guard.
VECTOR_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
NONCE_WINDOW = 1000


@dataclass(frozen=True)
class Key:
    account: str
    key: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SimAccounts:
    """The keys of the session's simulator, by role."""

    krakenex: Key  # krakenex end-to-end flows
    ccxt: Key  # ccxt end-to-end flows
    vector: Key  # uses Kraken's documented example secret
    window: Key  # nonce_window = NONCE_WINDOW
    starter: Key  # starter tier, for the REST counter
    poor: Key  # 100 USD and nothing else, for order rejections
    faults: Key  # fault-injection tests
    locky: Key  # lockout tests
    hasty: Key  # starter tier, for the matching engine's per-pair counter
    crowded: Key  # starter tier, for the open-orders-per-pair limit
    misc: Key  # everything else
    no_rights: Key  # a key of `misc`'s account without any permission
    funds_only: Key  # a key of `misc`'s account with query_funds only
    cancel_only: Key  # a key of `misc`'s account with cancel_orders only


def _account(key: Key, tier: str, balances: str, extra: str = "") -> str:
    return (
        f'[[accounts]]\nname = "{key.account}"\nkey = "{key.key}"\nsecret = "{key.secret}"\n'
        f'tier = "{tier}"\nbalances = {{ {balances} }}\n{extra}\n'
    )


def _extra_key(key: Key, permissions: str) -> str:
    return (
        f'[[accounts.keys]]\nkey = "{key.key}"\nsecret = "{key.secret}"\n'
        f"permissions = [{permissions}]\n\n"
    )


RICH = 'ZUSD = "100000", XXBT = "2", XETH = "20", ZEUR = "50000"'


def make_accounts() -> tuple[SimAccounts, str]:
    def key(account: str, name: str, secret: str | None = None) -> Key:
        return Key(account, name, secret or new_secret())

    accounts = SimAccounts(
        krakenex=key("kx", "kx-key"),
        ccxt=key("cx", "cx-key"),
        vector=key("vector", "vector-key", VECTOR_SECRET),
        window=key("window", "window-key"),
        starter=key("starter", "starter-key"),
        poor=key("poor", "poor-key"),
        faults=key("faulty", "faulty-key"),
        locky=key("locky", "locky-key"),
        hasty=key("hasty", "hasty-key"),
        crowded=key("crowded", "crowded-key"),
        misc=key("misc", "misc-key"),
        no_rights=key("misc", "misc-no-rights"),
        funds_only=key("misc", "misc-funds-only"),
        cancel_only=key("misc", "misc-cancel-only"),
    )
    toml = "".join(
        [
            _account(accounts.krakenex, "pro", RICH),
            _account(accounts.ccxt, "pro", RICH),
            _account(accounts.vector, "pro", 'ZUSD = "1000000"'),
            _account(accounts.window, "pro", RICH, f"nonce_window = {NONCE_WINDOW}"),
            _account(accounts.starter, "starter", RICH),
            _account(accounts.poor, "pro", 'ZUSD = "100"'),
            _account(accounts.faults, "pro", RICH),
            _account(accounts.locky, "pro", RICH),
            _account(accounts.hasty, "starter", RICH),
            _account(accounts.crowded, "starter", RICH),
            _account(accounts.misc, "pro", RICH),
            _extra_key(accounts.no_rights, ""),
            _extra_key(accounts.funds_only, '"query_funds"'),
            _extra_key(accounts.cancel_only, '"cancel_orders"'),
            '[prices]\nXXBTZUSD = "60000"\nXETHZUSD = "3000"\n',
        ]
    )
    return accounts, toml


_ACCOUNTS, ACCOUNTS_TOML = make_accounts()


@pytest.fixture(scope="session")
def keys() -> SimAccounts:
    return _ACCOUNTS


@pytest.fixture(scope="session")
def sim_process() -> Iterator[SimProcess]:
    with running_sim(ACCOUNTS_TOML, "--seed", "7") as process:
        yield process


@pytest.fixture
def sim(sim_process: SimProcess) -> Iterator[SimProcess]:
    """The session's simulator; faults and lockouts a test leaves behind are cleared after it."""
    yield sim_process
    sim_process.control("faults/clear", {})
    sim_process.control("lockouts/clear", {})


def client(sim: SimProcess, key: Key) -> RawClient:
    return RawClient(sim.url, key.key, key.secret)


BASE_URL = "http://kraken.test"


@dataclass
class Sleeps:
    """An injected sleep that only records how long it was asked to wait."""

    asked: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def exchange(sleeps: Sleeps) -> InProcessExchange:
    """A fresh in-process exchange with the session's accounts, on a frozen clock; latency is
    recorded by `sleeps`, never waited."""
    return InProcessExchange(ACCOUNTS_TOML, seed=7, clock=SimClock.frozen(), sleep=sleeps)


def inprocess_client(exchange: InProcessExchange, key: Key) -> RawClient:
    return RawClient(BASE_URL, key.key, key.secret, session=exchange.session(BASE_URL))
