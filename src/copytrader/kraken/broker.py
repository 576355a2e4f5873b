"""KrakenBroker: everything about talking to Kraken for one account.

One broker per account: its own krakenex.API (api.py: pointed at the configured base URL, its
nonce from the account's store, its requests session set up by http.py, or answered by the
`transport` given), its own nonce store and lock, a (connect, read) timeout on every call, typed
and checked results (models.py), Kraken's error strings turned into the exception tree, bounded
retries, and a client-side REST counter so it waits instead of being refused. See `orders.py`
for how AddOrder/CancelOrder survive lost replies without duplicates.

Layers of a private call (inner to outer):
    _send        rate wait -> account lock -> nonce (persisted) -> krakenex signs and sends
                 -> reply (the lock is held until the reply arrives or the timeout fires)
    _private     nonce-jump retries after EAPI:Invalid nonce (not executed, so resending is safe)
    _read        backoff retries for transient errors (reads only); the reply is parsed inside
                 each try, so one that cannot be read (BadReplyError) is asked for again

With a stop event (the daemon's SIGTERM), every wait here (retry backoff, rate limits, the
settle before a lookup) is on that event: a stop cuts the wait short and the call ends at once
with what its caller gets on giving up (reads: RetryLaterError "stopping: ..."; a write whose
outcome is unknown: OutcomeUnknownError, see orders.py). A call not yet sent when the stop came
is still sent if it has nothing to wait for: a stop shortens waits, it does not cancel calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import requests
import structlog
import tenacity
import urllib3.exceptions
from requests.adapters import BaseAdapter
from tenacity import RetryCallState

from copytrader.config.credentials import ApiCredentials
from copytrader.domain import RateTier
from copytrader.errors import (
    AccountUnusableError,
    BadReplyError,
    ConfigError,
    KrakenError,
    NonceRejectedError,
    OrderRejectedError,
    RateLimitedError,
    RetryLaterError,
)
from copytrader.kraken import orders
from copytrader.kraken.api import account_api, no_nonce_outside_the_lock, public_api
from copytrader.kraken.errors import (
    TEMPORARY_LOCKOUT,
    error_from_strings,
    error_from_transport,
    has_error,
    is_error,
)
from copytrader.kraken.http import transport_prefix
from copytrader.kraken.models import (
    MAX_COUNT,
    AddOrderResult,
    AssetBalance,
    BadNumberError,
    ClosedOrdersPage,
    Order,
    OrderRequest,
    PairInfo,
    Ticker,
    TradeBalance,
    to_decimal,
    to_int,
)
from copytrader.kraken.pairs import PairCache
from copytrader.kraken.ratelimit import KeyRateState, rate_state_for, rest_cost
from copytrader.kraken.retry import (
    COOLDOWN_S,
    NONCE_JUMPS_MS,
    READ_ATTEMPTS,
    READ_TOTAL_S,
    StopRequested,
    failure_text,
    transient_retrying,
    wait_unless_stopped,
)
from copytrader.nonce.store import NonceStore

log = structlog.get_logger(__name__)

QUERY_ORDERS_BATCH = 50
_Parsed = TypeVar("_Parsed")
# Errors after which the key will not start working by itself: stop sending for a while, since
# Kraken answers repeated failures like these with a lockout.
_COOLDOWN_ERRORS = (TEMPORARY_LOCKOUT, "EAPI:Invalid key", "EAPI:Invalid signature")
# The connect part of every call's timeout is at most this (the read part is `timeout_s`): a
# connection that is not made in time was never sent, so failing it early costs nothing.
CONNECT_TIMEOUT_S = 5.0
# What krakenex lets through when an HTTP exchange fails (ValueError: a body that is not JSON).
_TRANSPORT_FAILURES = (requests.RequestException, urllib3.exceptions.HTTPError, ValueError)


class KrakenBroker:
    """One Kraken account: typed calls, nonce isolation, retries and rate limits."""

    def __init__(
        self,
        account_id: str,
        credentials: ApiCredentials,
        *,
        api_url: str,
        data_dir: Path,
        tier: RateTier = RateTier.STARTER,
        timeout_s: float = 10.0,
        retry_waits: bool = True,
        client_rate_limit: bool = True,
        nonce_store: NonceStore | None = None,
        stop: threading.Event | None = None,
        transport: BaseAdapter | None = None,
        cooldown_s: float = COOLDOWN_S,
    ) -> None:
        """`transport`: a requests adapter that answers every call under `api_url` instead of
        the network (tests, the in-process simulator); it stays the caller's to close.
        `cooldown_s`: how long the account rests (no private call) after a lockout, a bad key or
        signature, or spent nonce jumps; Kraken's own lockout lasts minutes, so production
        keeps the default, and tests shorten it."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive: every call needs a timeout")
        try:
            credentials.decoded_secret()  # krakenex decodes it itself each time it signs
        except ValueError as exc:
            raise ConfigError(str(exc), entry=account_id, field="API secret") from None
        self.account_id = account_id
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self._timeout = (min(timeout_s, CONNECT_TIMEOUT_S), timeout_s)
        self.retry_waits = retry_waits
        # Set by SIGTERM in the daemon: every wait below ends early, and no retry follows.
        self.stop_event = stop
        self._key_hint = credentials.key_hint
        if nonce_store is not None and nonce_store.account_id != account_id:
            raise ValueError("the nonce store belongs to another account")
        self._store = nonce_store or NonceStore(account_id, data_dir)
        self._api = account_api(credentials, self.api_url, transport)
        self._public_api = public_api(self.api_url, transport)
        self._transport = transport
        self._public_lock = threading.Lock()
        # None: no client-side REST counter (only for a simulator without limits, and tests).
        self.rate: KeyRateState | None = (
            rate_state_for(credentials.key, tier) if client_rate_limit else None
        )
        self._pairs = PairCache.for_url(self.api_url)
        self._state_lock = threading.Lock()
        self._nonce_rejections = 0  # in a row, across threads; reset by any accepted call
        if cooldown_s <= 0:
            raise ValueError("cooldown_s must be positive: a locked-out key must rest")
        self.cooldown_s = cooldown_s
        self._cooldown_until = 0.0
        self._cooldown_reason = ""
        self.log = log.bind(account=account_id)

    def __repr__(self) -> str:
        return (
            f"KrakenBroker(account_id={self.account_id!r}, key={self._key_hint!r},"
            f" api_url={self.api_url!r})"
        )

    @property
    def nonce_store(self) -> NonceStore:
        return self._store

    def close(self) -> None:
        """Close the HTTP sessions (the broker must not be used afterwards). A transport given
        to the constructor is left open: it is the caller's, and may serve other brokers."""
        for api in (self._api, self._public_api):
            if self._transport is not None:
                api.session.adapters.pop(transport_prefix(self.api_url), None)
            api.close()

    # --- the private call layers ----------------------------------------------------------------

    def _send(self, method: str, params: Mapping[str, str], *, is_write: bool, pair: str) -> Any:
        """One signed request. The account lock is held from taking the nonce to the reply.

        An `EAPI:Invalid nonce` reply moves the store's nonce ahead while the lock is still
        held, so no other thread or process sends a nonce we already know is too low: every
        rejection is news ("Kraken's mark is above our latest nonce") and escalates the step.
        """
        if self.rate is not None:
            wait = self.rate.rest.reserve(rest_cost(method))
            if wait > 0:
                self.log.debug("broker.rate_wait", method=method, wait_s=round(wait, 3))
                # A real limit, not a retry delay: kept even in tests. Stopped: not sent.
                if not self.pause(wait, limit=True):
                    raise StopRequested(None)
        data = dict(params)  # krakenex adds the nonce to the dict it is given
        with self._store.locked() as next_nonce:
            self._raise_if_cooling_down()  # another thread may have started a rest meanwhile
            self._api.nonce_source = next_nonce
            try:
                reply = self._api.query_private(method, data, timeout=self._timeout)
            except _TRANSPORT_FAILURES as exc:
                raise self._transport_error(exc, method, is_write=is_write) from exc
            finally:
                self._api.nonce_source = no_nonce_outside_the_lock
            try:
                result = self._result(reply, method, pair=pair)
            except NonceRejectedError:
                self._jump_after_rejection(method)
                raise
            except KrakenError as exc:
                if not has_error(exc, TEMPORARY_LOCKOUT):
                    self._nonce_rejections = 0  # Kraken took the nonce, then said no
                raise
            self._nonce_rejections = 0
        return result

    def _transport_error(self, exc: Exception, method: str, *, is_write: bool) -> KrakenError:
        """A failed HTTP exchange as the exception tree says (a write's lost reply: unknown)."""
        return error_from_transport(
            exc, account=self.account_id, method=method, is_write=is_write, timeout_s=self.timeout_s
        )

    def _jump_after_rejection(self, method: str) -> None:
        """Count a rejection and jump by the next step (called with the account lock held)."""
        self._nonce_rejections += 1
        index = self._nonce_rejections - 1
        if index >= len(NONCE_JUMPS_MS):
            # Out of steps: rest now, before threads waiting for the lock send more rejections.
            self._start_cooldown("nonces rejected even after jumping ahead")
            return
        step = NONCE_JUMPS_MS[index]
        new_last = self._store.jump(step)
        self.log.warning(
            "broker.nonce_jump",
            message=f"{method}: Kraken remembers a higher nonce; moved ours {step // 1000} s ahead",
            method=method,
            step_ms=step,
            nonce=new_last + 1,
            rejections_in_row=self._nonce_rejections,
        )

    def _result(self, reply: Any, method: str, *, pair: str = "") -> Any:
        """The `result` of Kraken's envelope, or its `error` raised as the tree says. `error` is
        a list of strings; a single string is read as one error."""
        if not isinstance(reply, dict):
            raise BadReplyError(f"{method}: reply is not a JSON object", account=self.account_id)
        raw_errors = reply.get("error") or []
        if isinstance(raw_errors, str):
            raw_errors = [raw_errors]
        if not isinstance(raw_errors, list) or not all(isinstance(e, str) for e in raw_errors):
            raise BadReplyError(
                f"{method}: reply's error is not a list of strings", account=self.account_id
            )
        errors = [e for e in raw_errors if is_error(e)]
        if errors:
            error = error_from_strings(errors, account=self.account_id, method=method, pair=pair)
            self._after_error(error)
            raise error
        if "result" not in reply:
            raise BadReplyError(f"{method}: reply has no result", account=self.account_id)
        return reply["result"]

    def _after_error(self, error: KrakenError) -> None:
        if isinstance(error, RateLimitedError) and self.rate is not None:
            if error.pair:
                backoff = self.rate.pairs.penalize(error.pair)
                self.log.warning(
                    "broker.pair_backoff",
                    message=f"{error.pair} rate-limited by the matching engine",
                    pair=error.pair,
                    backoff_s=backoff,
                )
            elif has_error(error, "EAPI:Rate limit exceeded"):
                self.rate.rest.penalize()
        if isinstance(error, AccountUnusableError) and any(
            has_error(error, text) for text in _COOLDOWN_ERRORS
        ):
            self._start_cooldown(", ".join(error.errors))

    def _private(
        self, method: str, params: Mapping[str, str], *, is_write: bool = False, pair: str = ""
    ) -> Any:
        """A private call, sent again after `EAPI:Invalid nonce` (it was not executed)."""
        self._raise_if_cooling_down()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(NonceRejectedError),
            stop=self._nonce_jumps_spent,
            wait=tenacity.wait_none(),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    result = self._send(method, params, is_write=is_write, pair=pair)
        except NonceRejectedError as exc:
            raise AccountUnusableError(
                f"{method}: Kraken rejected {len(NONCE_JUMPS_MS) + 1} nonces in a row, the last"
                f" {sum(NONCE_JUMPS_MS) // 1000} s ahead of ours. The key has probably been used"
                " by a client with larger nonces (python-kraken-sdk, Kraken CLI): create a new"
                " API key for this account.",
                account=self.account_id,
                errors=exc.errors,
            ) from exc
        return result

    def _nonce_jumps_spent(self, state: RetryCallState) -> bool:
        # The shared count (read without the lock: stale means one try more or less) stops
        # every thread once the steps are spent; the attempt cap bounds each call regardless.
        return self._nonce_rejections > len(NONCE_JUMPS_MS) or state.attempt_number > len(
            NONCE_JUMPS_MS
        )

    def _start_cooldown(self, reason: str) -> None:
        with self._state_lock:
            self._cooldown_until = time.monotonic() + self.cooldown_s
            self._cooldown_reason = reason
        self.log.error(
            "broker.cooldown",
            message=f"no private calls for {self.cooldown_s:g} s after: {reason}",
            reason=reason,
            cooldown_s=self.cooldown_s,
        )

    def cooldown_remaining_s(self) -> float:
        """Seconds this account still rests after a lockout, bad key or spent nonce jumps."""
        with self._state_lock:
            return max(0.0, self._cooldown_until - time.monotonic())

    def cooldown_reason(self) -> str:
        """What started the account's current rest ("" when it is not resting)."""
        with self._state_lock:
            resting = self._cooldown_until > time.monotonic()
            return self._cooldown_reason if resting else ""

    def _raise_if_cooling_down(self) -> None:
        remaining = self.cooldown_remaining_s()
        if remaining > 0:
            raise AccountUnusableError(
                f"resting {remaining:.0f} s more after: {self._cooldown_reason}",
                account=self.account_id,
            )

    def log_retry(self, method: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning(
                "broker.retry",
                message=f"{method} failed ({exc}); trying again",
                method=method,
                attempt=state.attempt_number,
                error=str(exc),
                error_class=type(exc).__name__,
                wait_s=round(state.upcoming_sleep, 3),
            )

        return before_sleep

    def _read_retrying(self, method: str) -> tenacity.Retrying:
        """The read policy (private and public): jittered backoff, bounded in tries and time."""
        return transient_retrying(
            attempts=READ_ATTEMPTS,
            total_s=READ_TOTAL_S,
            waits=self.retry_waits,
            before_sleep=self.log_retry(method),
            stop=self.stop_event,
        )

    def _retried_read(self, method: str, call: Callable[[], Any]) -> Any:
        """`call` under the read policy; a stop ends it with RetryLaterError instead of a retry."""
        try:
            for attempt in self._read_retrying(method):
                with attempt:
                    return call()
        except StopRequested as stopped:
            raise self.stopped_error(method, stopped) from stopped.last
        raise AssertionError("unreachable")  # tenacity re-raises once the policy gives up

    def _read(
        self,
        method: str,
        params: Mapping[str, str] | None,
        parse: Callable[[Any], _Parsed],
    ) -> _Parsed:
        """A private read, parsed, with backoff retries on transient errors: a reply that cannot
        be read (BadReplyError) is asked for again like any other transient failure."""

        def call() -> _Parsed:
            raw = self._private(method, params or {})
            return self._parsed(method, raw, parse)

        result: _Parsed = self._retried_read(method, call)
        return result

    def _public(
        self,
        method: str,
        params: Mapping[str, str] | None,
        parse: Callable[[Any], _Parsed],
    ) -> _Parsed:
        """A public call, parsed and retried like a private read (separate API object and lock:
        it never waits for the nonce lock)."""

        def call() -> _Parsed:
            with self._public_lock:
                try:
                    reply = self._public_api.query_public(
                        method, dict(params or {}), timeout=self._timeout
                    )
                except _TRANSPORT_FAILURES as exc:
                    raise self._transport_error(exc, method, is_write=False) from exc
            return self._parsed(method, self._result(reply, method), parse)

        result: _Parsed = self._retried_read(method, call)
        return result

    def stopped_error(self, method: str, stopped: StopRequested) -> RetryLaterError:
        """What a call cut short by the stop raises: retry later (the next start, usually)."""
        last = stopped.last
        if last is None:
            return RetryLaterError(f"{method}: stopping: not sent", account=self.account_id)
        return RetryLaterError(
            f"{method}: stopping: not retried after: {failure_text(last)}",
            account=self.account_id,
            errors=last.errors,
        )

    def _parsed(self, method: str, raw: Any, parse: Callable[[Any], _Parsed]) -> _Parsed:
        """`parse(raw)`; a reply that does not fit (a bad number, a missing or mistyped field) is
        BadReplyError naming the account, the method and the field: never a default."""
        try:
            return parse(raw)
        except BadNumberError as exc:
            raise BadReplyError(
                f"{method}: unreadable reply: {exc}", account=self.account_id
            ) from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadReplyError(
                f"{method}: unexpected reply ({type(exc).__name__})", account=self.account_id
            ) from exc

    # --- reads ----------------------------------------------------------------------------------

    def balances(self) -> dict[str, Decimal]:
        """Balance: every asset's total, as Decimal."""
        return self._read("Balance", None, _balances)

    def balances_ex(self) -> dict[str, AssetBalance]:
        """BalanceEx: balance, hold_trade and what is available, per asset."""
        return self._read(
            "BalanceEx",
            None,
            lambda raw: {a: AssetBalance.from_kraken(v, a) for a, v in _entries(raw)},
        )

    def trade_balance(self, asset: str = "ZUSD") -> TradeBalance:
        """TradeBalance in `asset`; `.equity` is the account's equity."""
        return self._read(
            "TradeBalance", {"asset": asset}, lambda raw: TradeBalance.from_kraken(asset, raw)
        )

    def open_orders(self, *, cl_ord_id: str | None = None) -> dict[str, Order]:
        """OpenOrders, by txid (optionally only the one with this client order id)."""
        params = {"cl_ord_id": cl_ord_id} if cl_ord_id else {}
        return self._read("OpenOrders", params, lambda raw: _orders(raw.get("open", {})))

    def closed_orders(
        self, *, start: float | None = None, ofs: int = 0, cl_ord_id: str | None = None
    ) -> ClosedOrdersPage:
        """One page (50, newest first) of ClosedOrders after `start` (exclusive)."""
        params: dict[str, str] = {}
        if start is not None:
            params["start"] = f"{start:f}".rstrip("0").rstrip(".")
        if ofs:
            params["ofs"] = str(ofs)
        if cl_ord_id:
            params["cl_ord_id"] = cl_ord_id

        def parse(raw: Any) -> ClosedOrdersPage:
            found = _orders(raw.get("closed", {}))
            count = to_int(raw.get("count"), "count", low=0, high=MAX_COUNT, default=len(found))
            return ClosedOrdersPage(orders=found, count=count)

        return self._read("ClosedOrders", params, parse)

    def query_orders(self, txids: Sequence[str]) -> dict[str, Order]:
        """QueryOrders for these txids (batched by 50); unknown ones are simply absent."""
        found: dict[str, Order] = {}
        for start in range(0, len(txids), QUERY_ORDERS_BATCH):
            batch = txids[start : start + QUERY_ORDERS_BATCH]
            found.update(self._read("QueryOrders", {"txid": ",".join(batch)}, _orders))
        return found

    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> Order | None:
        """The order with this client order id: open ones first, then the recent closed ones."""
        for order in self.open_orders(cl_ord_id=cl_ord_id).values():
            if order.cl_ord_id == cl_ord_id:
                return order
        for order in self.closed_orders(cl_ord_id=cl_ord_id).orders.values():
            if order.cl_ord_id == cl_ord_id:
                return order
        return None

    def api_key_info(self) -> tuple[str, ...]:
        """GetApiKeyInfo: Kraken's names of what this key may do (`modify-trades`,
        `withdraw-funds`...); it needs no permission of its own."""
        return self._read("GetApiKeyInfo", None, _permissions)

    def cancel_all_orders_after(self, timeout_s: int) -> str:
        """CancelAllOrdersAfter (the dead-man switch): every open order of the account is
        cancelled `timeout_s` from now unless called again first; 0 disarms it. Setting the
        timer twice is harmless, so it is retried like a read. Returns Kraken's triggerTime."""
        return self._read(
            "CancelAllOrdersAfter", {"timeout": str(int(timeout_s))}, _trigger_time
        )

    def websocket_token(self) -> str:
        """A GetWebSocketsToken token for the private WebSocket (never logged)."""
        return self._read("GetWebSocketsToken", None, _token)

    # --- public data ----------------------------------------------------------------------------

    def asset_pairs(self, *, refresh: bool = False) -> dict[str, PairInfo]:
        """AssetPairs by pair id; cached per base URL (shared by all accounts) for an hour."""
        return self._pairs.get(lambda: self._load_pairs(), refresh=refresh)

    def _load_pairs(self) -> dict[str, PairInfo]:
        return self._public(
            "AssetPairs",
            None,
            lambda raw: {p: PairInfo.from_kraken(p, v) for p, v in _entries(raw)},
        )

    def cached_pair(self, name: str) -> PairInfo | None:
        """The pair if the cache holds it fresh, without any call (None: use `pair`)."""
        return self._pairs.cached(name)

    def pair(self, name: str) -> PairInfo:
        """A pair by id (`XXBTZUSD`), altname (`XBTUSD`) or wsname (`XBT/USD`)."""
        found = self._pairs.lookup(name, lambda: self._load_pairs())
        if found is None:
            raise OrderRejectedError(
                f"unknown pair {name!r}",
                account=self.account_id,
                errors=("EQuery:Unknown asset pair",),
            )
        return found

    def ticker(self, pair: str) -> Ticker:
        """Ticker of one pair (id, altname or wsname)."""
        info = self.pair(pair)

        def parse(raw: Any) -> Ticker:
            entry = raw.get(info.pair_id) or next(iter(raw.values()), None)
            if entry is None:
                raise KeyError(info.pair_id)
            return Ticker.from_kraken(info.pair_id, entry)

        return self._public("Ticker", {"pair": info.pair_id}, parse)

    # --- writes (see orders.py) -----------------------------------------------------------------

    def add_order(self, request: OrderRequest) -> AddOrderResult:
        """AddOrder. A lost reply is resolved by looking the order up, never by a blind resend."""
        return orders.add_order(self, request)

    def cancel_order(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> int:
        """CancelOrder by txid or client order id; returns how many orders were cancelled."""
        return orders.cancel_order(self, txid=txid, cl_ord_id=cl_ord_id)

    def private_write(self, method: str, params: Mapping[str, str], *, pair: str = "") -> Any:
        """One write attempt with nonce-jump retries only (used by orders.py). Stopped while
        waiting for the rate limit: RetryLaterError, and nothing was sent."""
        try:
            return self._private(method, params, is_write=True, pair=pair)
        except StopRequested as stopped:
            raise self.stopped_error(method, stopped) from None

    # --- waits ----------------------------------------------------------------------------------

    def pause(self, seconds: float, *, limit: bool = False) -> bool:
        """Wait `seconds` unless the stop is set: False if it is (before or during the wait).
        A retry delay (`limit=False`) is skipped with `retry_waits=False`; a rate limit is not."""
        return wait_unless_stopped(seconds if (limit or self.retry_waits) else 0.0, self.stop_event)

    def settle(self, seconds: float) -> None:
        """Let the exchange finish an uncertain write before it is looked up. If the stop is set
        (before or during the wait) this raises RetryLaterError instead: a lookup made early
        could miss an order still landing, and a resend after that "not found" double it."""
        if not self.pause(seconds):
            raise RetryLaterError(
                "stopping: the order was not looked up (the exchange was still settling)",
                account=self.account_id,
            )


def _entries(raw: Any) -> list[tuple[str, Any]]:
    """A reply's `{name: entry}` object as pairs (TypeError when it is not an object)."""
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    return list(raw.items())


def _balances(raw: Any) -> dict[str, Decimal]:
    return {asset: to_decimal(value, asset) for asset, value in _entries(raw)}


def _orders(raw: Any) -> dict[str, Order]:
    return {txid: Order.from_kraken(txid, entry) for txid, entry in _entries(raw)}


def _permissions(raw: Any) -> tuple[str, ...]:
    permissions = raw["permissions"]
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise TypeError("permissions is not a list of names")
    return tuple(permissions)


def _trigger_time(raw: Any) -> str:
    trigger = raw["triggerTime"]
    if not isinstance(trigger, str):
        raise TypeError("triggerTime is not a string")
    return trigger


def _token(raw: Any) -> str:
    token = raw["token"]
    if not isinstance(token, str) or not token:
        raise TypeError("token is not a non-empty string")
    return token
