"""Connecting one account: what its key can do, its equity and balances, or why it cannot.

Used by the daemon's startup and by `copytrader check`, so both tell the operator the same thing,
at two depths (`ProbeDepth`):

- STARTUP (`copytrader run`, on every start and restart): only what starting needs. TradeBalance
  gives the equity and proves the key, the signature, the nonce and Query Funds; MASTER adds one
  OpenOrders (the first thing its feed reads). One or two REST calls, so a restart loop does not
  run the MASTER key into Kraken's REST limit, and nothing order-shaped is sent.
- FULL (`copytrader check`): every permission. Reads, a validate-only AddOrder (Kraken checks it
  and places nothing) and a CancelOrder of a client order id that cannot exist (Kraken answers
  "Unknown order" when the key may cancel, "Permission denied" when it may not).

Both depths also ask GetApiKeyInfo (one REST point, no permission needed) for what the key may
do, so that a key that cannot do its job is named before the first copy, not at it: a USER key
that cannot create or cancel orders, or a MASTER key that cannot read orders, fails its account
(`missing_permission`). A USER key that may withdraw funds is refused (`withdraw_permission`):
copying never needs it, and with it a leaked key can empty the account; the message says how to
fix the key. A MASTER key that may withdraw is a warning (it only reads).

A permission that answers "Permission denied", or that GetApiKeyInfo does not list, fails the
account with the permissions a copy-trading key needs (and the warning against granting
withdrawal).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from copytrader.config.types import AccountSpec, Settings
from copytrader.domain import OrderType, Side
from copytrader.errors import (
    AccountUnusableError,
    ConfigError,
    KrakenError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryLaterError,
)
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.errors import INVALID_NONCE, TEMPORARY_LOCKOUT, has_error
from copytrader.kraken.models import OrderRequest, PairInfo

PERMISSION_DENIED = "EGeneral:Permission denied"
# The names Kraken's key settings page uses, in its order.
KEY_PERMISSIONS = (
    "Query Funds",
    "Query Open Orders & Trades",
    "Query Closed Orders & Trades",
    "Create & Modify Orders",
    "Cancel/Close Orders",
    "WebSocket interface",
)
NEEDED_BY_COPYING = (
    "a copy-trading key needs: Query Funds, Query Open Orders & Trades, Query Closed Orders & "
    "Trades, Create & Modify Orders, Cancel/Close Orders (and the WebSocket interface). Never "
    "grant Withdraw Funds: copying does not need it and it is what makes a leaked key costly"
)
_PREFERRED_PROBE_PAIRS = ("XXBTZUSD", "XBTUSD", "XETHZUSD")
T = TypeVar("T")


class AccountState(StrEnum):
    CONNECTED = "connected"
    SKIPPED = "skipped"
    FAILED = "failed"


class ProbeDepth(StrEnum):
    """How much an account's connection tries (see the module docstring)."""

    STARTUP = "startup"
    FULL = "full"


class Reason(StrEnum):
    """Why an account is not connected (or `OK`)."""

    OK = "ok"
    DISABLED = "disabled"
    NOT_CONFIGURED = "not_configured"
    BAD_CREDENTIALS = "bad_credentials"
    INVALID_KEY = "invalid_key"
    INVALID_SIGNATURE = "invalid_signature"
    MISSING_PERMISSION = "missing_permission"
    WITHDRAW_PERMISSION = "withdraw_permission"
    LOCKED_OUT = "locked_out"
    NONCE = "nonce"
    UNREACHABLE = "unreachable"
    DATA_DIR = "data_dir"
    ERROR = "error"
    STOPPED = "stopped"


# STOPPED: the connection was cut short by a stop request, not refused; the next start retries.
_RETRYABLE_REASONS = frozenset({Reason.UNREACHABLE, Reason.LOCKED_OUT, Reason.STOPPED})


@dataclass(frozen=True)
class Permissions:
    """Each permission: True (works), False (Permission denied), None (not probed or unknown)."""

    query_funds: bool | None = None
    query_open_orders: bool | None = None
    query_closed_orders: bool | None = None
    create_orders: bool | None = None
    cancel_orders: bool | None = None
    websocket: bool | None = None
    withdraw: bool | None = None  # Withdraw Funds: never needed (not in `as_dict`)

    def as_dict(self) -> dict[str, bool | None]:
        return dict(zip(KEY_PERMISSIONS, self._values(), strict=True))

    def _values(self) -> tuple[bool | None, ...]:
        return (
            self.query_funds,
            self.query_open_orders,
            self.query_closed_orders,
            self.create_orders,
            self.cancel_orders,
            self.websocket,
        )

    def missing(self) -> tuple[str, ...]:
        """Kraken's names of the permissions that answered Permission denied."""
        return tuple(name for name, ok in self.as_dict().items() if ok is False)


def required_permissions(spec: AccountSpec) -> tuple[str, ...]:
    """MASTER only reads (its orders are the source); a USER also creates and cancels."""
    reads = KEY_PERMISSIONS[:3]
    return reads if spec.is_master else (*reads, KEY_PERMISSIONS[3], KEY_PERMISSIONS[4])


@dataclass(frozen=True)
class AccountOutcome:
    """How one account ended: exactly one state, with the reason and what was learned."""

    account_id: str
    display_name: str
    state: AccountState
    reason: Reason
    message: str
    equity: Decimal | None = None
    equity_asset: str = ""
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    permissions: Permissions = field(default_factory=Permissions)
    missing_permissions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    broker: KrakenBroker | None = field(default=None, compare=False, repr=False)

    @property
    def connected(self) -> bool:
        return self.state is AccountState.CONNECTED

    @property
    def retryable(self) -> bool:
        """Not connected for a reason that may pass by itself (network, lockout, a stop that
        cut the connection short): worth retrying."""
        return self.reason in _RETRYABLE_REASONS


BrokerFactory = Callable[[AccountSpec, Settings], KrakenBroker]


def make_broker(
    spec: AccountSpec,
    settings: Settings,
    *,
    timeout_s: float = 10.0,
    retry_waits: bool = True,
    client_rate_limit: bool = True,
    stop: threading.Event | None = None,
) -> KrakenBroker:
    """The account's KrakenBroker at its configured tier (MASTER: `[copy] master_tier`). `stop`
    (the daemon's SIGTERM event) cuts the broker's retry and settle waits short."""
    assert spec.credentials is not None
    tier = settings.copy.master_tier if spec.user is None else spec.user.tier
    return KrakenBroker(
        spec.account_id,
        spec.credentials,
        api_url=settings.api_url,
        data_dir=settings.data_dir,
        tier=tier,
        timeout_s=timeout_s,
        retry_waits=retry_waits,
        client_rate_limit=client_rate_limit,
        stop=stop,
    )


def not_connectable(spec: AccountSpec) -> AccountOutcome | None:
    """The outcome of an account that must not even be tried: disabled or no usable credentials."""

    def outcome(state: AccountState, reason: Reason, message: str) -> AccountOutcome:
        return AccountOutcome(spec.account_id, spec.display_name, state, reason, message)

    if not spec.enabled:
        return outcome(
            AccountState.SKIPPED, Reason.DISABLED, f"{_label(spec)}: disabled in the config"
        )
    if spec.credentials_error is not None:
        return outcome(AccountState.FAILED, Reason.BAD_CREDENTIALS, str(spec.credentials_error))
    if spec.credentials is None:
        return outcome(AccountState.SKIPPED, Reason.NOT_CONFIGURED, missing_vars_message(spec))
    return None


def missing_vars_message(spec: AccountSpec) -> str:
    both = f"{spec.key_var} and {spec.secret_var}"
    if len(spec.missing_vars) == 1:
        other = spec.key_var if spec.missing_vars[0] == spec.secret_var else spec.secret_var
        return (
            f"{_label(spec)}: credentials not set: {spec.missing_vars[0]} is missing ({other} is "
            f"set). Set both {both} to connect this account"
        )
    return f"{_label(spec)}: credentials not set. Set {both} to connect this account"


def connect_account(
    spec: AccountSpec,
    settings: Settings,
    *,
    broker_factory: BrokerFactory = make_broker,
    depth: ProbeDepth = ProbeDepth.STARTUP,
) -> AccountOutcome:
    """Connect one account and find out what it can do. Never raises for a Kraken problem."""
    started = time.monotonic()
    early = not_connectable(spec)
    if early is not None:
        return early
    try:
        broker = broker_factory(spec, settings)
    except ConfigError as exc:
        reason = Reason.BAD_CREDENTIALS if "secret" in str(exc).lower() else Reason.DATA_DIR
        return _failed(spec, reason, f"{_label(spec)}: {exc}", started)
    except OSError as exc:
        return _failed(
            spec,
            Reason.DATA_DIR,
            f"{_label(spec)}: cannot use the data folder {settings.data_dir} for its nonce file"
            f" ({type(exc).__name__}: {exc.strerror or exc})",
            started,
        )
    try:
        probe = _probe_full if depth is ProbeDepth.FULL else _probe_for_startup
        outcome = _checked(spec, settings, started, *probe(broker, spec, settings))
    except KrakenError as exc:
        outcome = _failed(spec, *_classify(exc, spec, broker.api_url), started)
    except (OSError, ConfigError) as exc:  # the data folder or nonce file is not writable
        outcome = _failed(spec, Reason.DATA_DIR, f"{_label(spec)}: nonce file: {exc}", started)
    if outcome.connected or outcome.retryable:
        return _with_broker(outcome, broker)
    broker.close()
    return outcome


_Probed = tuple[Permissions, Decimal | None, Mapping[str, Decimal], list[str]]

# GetApiKeyInfo's names for each permission a copy trader cares about.
_KEY_INFO_NAMES = {
    "query_funds": "query-funds",
    "query_open_orders": "query-open-trades",
    "query_closed_orders": "query-closed-trades",
    "create_orders": "modify-trades",
    "cancel_orders": "cancel-close-trades",
    "websocket": "access-websockets",
    "withdraw": "withdraw-funds",
}


def _with_key_info(broker: KrakenBroker, probed: Permissions, warnings: list[str]) -> Permissions:
    """`probed`, completed with what GetApiKeyInfo lists: a permission a call proved (True or
    False) keeps that value; one not probed takes the key's word. When the key's permissions
    cannot be read, `probed` as it is, with a warning."""
    try:
        names = set(broker.api_key_info())
    except AccountUnusableError as exc:
        if not has_error(exc, PERMISSION_DENIED):
            raise  # a lockout or a bad key: the account's own failure
        names = None
    except KrakenError as exc:
        warnings.append(f"could not read the key's permissions (GetApiKeyInfo): {exc}")
        return probed
    if names is None:
        warnings.append("could not read the key's permissions (GetApiKeyInfo refused)")
        return probed
    known = {field: name in names for field, name in _KEY_INFO_NAMES.items()}
    current = {field: getattr(probed, field) for field in _KEY_INFO_NAMES}
    return Permissions(
        **{field: known[field] if value is None else value for field, value in current.items()}
    )


def _probe_for_startup(broker: KrakenBroker, spec: AccountSpec, settings: Settings) -> _Probed:
    """What `copytrader run` needs to start: the equity, and for MASTER that its orders read."""
    asset = settings.copy.equity_asset
    warnings: list[str] = []
    funds, equity = _equity(broker, asset, warnings)
    open_ok = _may(broker.open_orders)[0] if spec.is_master else None
    probed = Permissions(query_funds=funds, query_open_orders=open_ok)
    return _with_key_info(broker, probed, warnings), equity, {}, warnings


def _probe_full(broker: KrakenBroker, spec: AccountSpec, settings: Settings) -> _Probed:
    """Every permission, the balances and the equity (`copytrader check`)."""
    asset = settings.copy.equity_asset
    warnings: list[str] = []
    funds, balances = _may(broker.balances)
    equity: Decimal | None = None
    if funds:
        equity = _equity(broker, asset, warnings)[1]
    open_ok, _ = _may(broker.open_orders)
    closed_ok, _ = _may(broker.closed_orders)
    websocket_ok, _ = _may(broker.websocket_token)
    create_ok = cancel_ok = None
    if not spec.is_master:
        create_ok, note = _probe_create(broker, settings)
        if note:
            warnings.append(note)
        cancel_ok, _ = _may(lambda: broker.cancel_order(cl_ord_id=uuid.uuid4().hex))
    if websocket_ok is False:
        warnings.append(
            "the key lacks the WebSocket interface permission: not needed while orders are"
            " polled over REST, but tick it for the push feed"
        )
    permissions = Permissions(funds, open_ok, closed_ok, create_ok, cancel_ok, websocket_ok)
    return _with_key_info(broker, permissions, warnings), equity, balances or {}, warnings


def _equity(broker: KrakenBroker, asset: str, warnings: list[str]) -> tuple[bool, Decimal | None]:
    """(allowed, equity) from TradeBalance; a refusal of the asset is a warning, not a failure."""
    try:
        return True, broker.trade_balance(asset).equity
    except OrderRejectedError as exc:
        warnings.append(f"no equity in {asset} ([copy] equity_asset): {_strip_account(exc)}")
        return True, None
    except AccountUnusableError as exc:
        if has_error(exc, PERMISSION_DENIED):
            return False, None
        raise


def _checked(
    spec: AccountSpec,
    settings: Settings,
    started: float,
    permissions: Permissions,
    equity: Decimal | None,
    balances: Mapping[str, Decimal],
    warnings: list[str],
) -> AccountOutcome:
    """Connected, or failed naming the needed permissions the key was refused."""
    asset = settings.copy.equity_asset
    missing = permissions.missing()
    equity_text = f"equity {equity} {asset}" if equity is not None else "equity unknown"
    outcome = AccountOutcome(
        spec.account_id,
        spec.display_name,
        AccountState.CONNECTED,
        Reason.OK,
        f"{_label(spec)} connected: {equity_text}",
        equity=equity,
        equity_asset=asset,
        balances=dict(balances),
        permissions=permissions,
        missing_permissions=missing,
        warnings=tuple(warnings),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    if permissions.withdraw and not spec.is_master:
        return replace(
            outcome,
            state=AccountState.FAILED,
            reason=Reason.WITHDRAW_PERMISSION,
            message=(
                f"{_label(spec)}: refused: the API key in {spec.key_var} may withdraw funds"
                " (Withdraw Funds is ticked). Copying never needs it, and a key that has it can"
                " empty the account if it leaks, so this account gets no copies. Fix: on"
                " kraken.com (Settings > API) edit the key and untick Withdraw Funds, or create"
                f" a new key without it and set {spec.key_var} and {spec.secret_var} to it;"
                f" then restart. {NEEDED_BY_COPYING}"
            ),
        )
    if permissions.withdraw:
        outcome = replace(
            outcome,
            warnings=(
                *outcome.warnings,
                f"the MASTER key in {spec.key_var} may withdraw funds: the daemon only reads"
                " with it; untick Withdraw Funds on kraken.com (Settings > API)",
            ),
        )
    missing_needed = [name for name in missing if name in required_permissions(spec)]
    if not missing_needed:
        return outcome
    return replace(
        outcome,
        state=AccountState.FAILED,
        reason=Reason.MISSING_PERMISSION,
        message=(
            f"{_label(spec)}: the API key in {spec.key_var} lacks {', '.join(missing_needed)}."
            f" Edit the key on kraken.com (Settings > API): {NEEDED_BY_COPYING}"
        ),
    )


def _may(call: Callable[[], T]) -> tuple[bool, T | None]:
    """(True, result) when allowed; (False, None) on Permission denied; other errors propagate.

    An order refusal (unknown order, funds, minimums) means the key *was* allowed to ask.
    """
    try:
        return True, call()
    except OrderRejectedError:
        return True, None
    except AccountUnusableError as exc:
        if has_error(exc, PERMISSION_DENIED):
            return False, None
        raise


def _probe_create(broker: KrakenBroker, settings: Settings) -> tuple[bool | None, str]:
    """A validate-only AddOrder: Kraken checks it and places nothing."""
    try:
        pair = _probe_pair(broker.asset_pairs(), settings.copy.equity_asset)
    except KrakenError as exc:
        return None, f"could not load the asset pairs to probe order permission: {exc}"
    if pair is None:
        return None, "no asset pair to probe order permission with"
    request = OrderRequest(
        pair=pair.pair_id,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        volume=max(pair.ordermin, Decimal(1).scaleb(-pair.lot_decimals)),
        validate=True,
    )
    allowed, _ = _may(lambda: broker.add_order(request))
    return allowed, ""


def _probe_pair(pairs: Mapping[str, PairInfo], quote: str) -> PairInfo | None:
    for name in _PREFERRED_PROBE_PAIRS:
        if name in pairs:
            return pairs[name]
    online = [info for info in pairs.values() if info.status in ("online", "")]
    same_quote = [info for info in online if info.quote == quote]
    candidates = same_quote or online
    return candidates[0] if candidates else None


def _classify(exc: KrakenError, spec: AccountSpec, api_url: str) -> tuple[Reason, str]:
    """What a failed connection means for the operator, naming the variable to fix."""
    label = _label(spec)
    if has_error(exc, "EAPI:Invalid key"):
        return Reason.INVALID_KEY, (
            f"{label}: Kraken does not know the API key in {spec.key_var} (EAPI:Invalid key):"
            " check the value, or whether the key was deleted on kraken.com"
        )
    if has_error(exc, "EAPI:Invalid signature"):
        return Reason.INVALID_SIGNATURE, (
            f"{label}: Kraken rejected the signature (EAPI:Invalid signature): the secret in"
            f" {spec.secret_var} does not belong to the key in {spec.key_var}. Paste the"
            " private key shown when this same API key was created"
        )
    if has_error(exc, TEMPORARY_LOCKOUT):
        return Reason.LOCKED_OUT, (
            f"{label}: Kraken locked this key out for a few minutes after repeated failed"
            " calls (EGeneral:Temporary lockout); wait, then try again"
        )
    if has_error(exc, INVALID_NONCE):
        return Reason.NONCE, f"{label}: {_strip_account(exc)}"
    if isinstance(exc, AccountUnusableError):
        return Reason.ERROR, f"{label}: {_strip_account(exc)}"
    if not exc.errors or isinstance(exc, RetryLaterError | RateLimitedError | OutcomeUnknownError):
        return Reason.UNREACHABLE, (
            f"{label}: could not reach Kraken at {api_url}: {_strip_account(exc)}"
        )
    return Reason.ERROR, f"{label}: {_strip_account(exc)}"


def _strip_account(exc: KrakenError) -> str:
    text = str(exc)
    prefix = f"[{exc.account}] " if exc.account else ""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def _failed(spec: AccountSpec, reason: Reason, message: str, started: float) -> AccountOutcome:
    return AccountOutcome(
        spec.account_id,
        spec.display_name,
        AccountState.FAILED,
        reason,
        message,
        elapsed_s=round(time.monotonic() - started, 3),
    )


def _with_broker(outcome: AccountOutcome, broker: KrakenBroker) -> AccountOutcome:
    return replace(outcome, broker=broker)


def _label(spec: AccountSpec) -> str:
    if spec.is_master:
        return "MASTER"
    return f"{spec.account_id} ({spec.display_name})"
