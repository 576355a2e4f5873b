"""AddOrder and CancelOrder that survive lost replies without ever doubling an order.

The rule: after a failed write, nothing is sent again before the order has been looked up.

    attempt 1: send
      ok                                   -> done
      definitive refusal (funds, minimums, bad key, ...)       -> raise, nothing was done
      anything else (timeout, dropped connection, HTTP 5xx, EService:*, EGeneral:Internal
      error, rate limits)                                      -> remember it and go on
    attempt n > 1: look the order up by cl_ord_id (OpenOrders, then ClosedOrders)
      found                                -> done (`resolved_by_lookup=True`), no resend
      not found                            -> send again (a new nonce)
      lookup failed                        -> OutcomeUnknownError; the next attempt looks again

Why "not found" is safe to act on: the lookup is signed with a higher nonce than the lost
request, so once Kraken has accepted the lookup it will refuse the lost request if that ever
arrives late (`EAPI:Invalid nonce`). This needs the key's nonce window to be 0 (Kraken's
default); with a window, a delayed request could still land after the lookup. Before the first
lookup after an uncertain failure we also let the exchange settle for OUTCOME_SETTLE_S.

A lost reply is uncertain even when the error sounds definitive at the HTTP level: a 502/520
from the gateway may come after Kraken applied the order. `EService:Unavailable`/`Busy` mean "not
applied", but looking up costs one read and removes the need to trust it. `EAPI:Invalid nonce`
on any attempt means that attempt was not executed; it is handled one layer down (nonce jump)
and is safe because every earlier uncertain attempt was already ruled out by a lookup.
`EOrder:Duplicate cl_ord_id` means the order is already there: we look it up and return it.
A write answered with something we cannot read (not Kraken's envelope, no result, an error
string we do not know) may have been applied too: it is OutcomeUnknownError, so the order is
looked up before anything is sent again.

Every order gets a cl_ord_id (a fresh one if the caller gave neither cl_ord_id nor userref).
With only a userref an order cannot be identified, so it is sent once and any uncertain failure
is raised as OutcomeUnknownError for the caller to reconcile.

A stop (SIGTERM, the broker's stop event) only cuts waits short: the backoff between attempts,
the settle before a lookup, a pair's rate-limit wait. It never leads to a send or to a lookup made
before the exchange settled (whose "not found" could be false). The write ends with what giving
up would raise, except that an uncertain failure is not looked up any more: it stays
OutcomeUnknownError, for the caller to look up later (the daemon's next start).
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NoReturn, Protocol, TypeVar

from structlog.typing import FilteringBoundLogger
from tenacity import RetryCallState

from copytrader.domain import OrderStatus
from copytrader.errors import (
    BadReplyError,
    KrakenError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryLaterError,
)
from copytrader.kraken.errors import DUPLICATE_CL_ORD_ID, has_error
from copytrader.kraken.models import MAX_COUNT, AddOrderResult, Order, OrderRequest, to_int
from copytrader.kraken.ratelimit import KeyRateState
from copytrader.kraken.retry import (
    OUTCOME_SETTLE_S,
    WRITE_ATTEMPTS,
    WRITE_TOTAL_S,
    StopRequested,
    failure_text,
    transient_retrying,
)


class WritingBroker(Protocol):
    """What a write needs from the account's broker (`broker.KrakenBroker` is the one)."""

    @property
    def account_id(self) -> str: ...
    @property
    def retry_waits(self) -> bool: ...
    @property
    def stop_event(self) -> threading.Event | None: ...
    @property
    def rate(self) -> KeyRateState | None: ...
    @property
    def log(self) -> FilteringBoundLogger: ...

    def log_retry(self, method: str) -> Callable[[RetryCallState], None]: ...
    def pause(self, seconds: float, *, limit: bool = False) -> bool: ...
    def stopped_error(self, method: str, stopped: StopRequested) -> RetryLaterError: ...
    def private_write(self, method: str, params: Mapping[str, str], *, pair: str = "") -> Any: ...
    def find_order_by_cl_ord_id(self, cl_ord_id: str) -> Order | None: ...
    def query_orders(self, txids: Sequence[str]) -> dict[str, Order]: ...


_Result = TypeVar("_Result")
_RETRYABLE = (RetryLaterError, RateLimitedError, OutcomeUnknownError)
# Kraken answered, but whether it did the write is not clear from the answer.
_UNCLEAR_ANSWERS = ("EGeneral:Internal error", "EService:Deadline elapsed", "EDatabase")


def new_cl_ord_id() -> str:
    """A fresh client order id: a 32-hex "short UUID", one of the forms Kraken accepts."""
    return uuid.uuid4().hex


def is_uncertain(error: KrakenError) -> bool:
    """Whether this failure of a write leaves open that the write happened."""
    if isinstance(error, OutcomeUnknownError):
        return True
    return isinstance(error, RetryLaterError) and any(
        has_error(error, text) for text in _UNCLEAR_ANSWERS
    )


def _private_write(
    broker: WritingBroker, method: str, params: Mapping[str, str], *, pair: str = ""
) -> Any:
    """One write; an answer the error tree cannot classify (an unreadable reply, an unknown
    error string) says nothing about whether the write happened, so it is an unknown outcome."""
    try:
        return broker.private_write(method, params, pair=pair)
    except KrakenError as exc:
        if type(exc) is KrakenError or isinstance(exc, BadReplyError):
            raise _unknown(broker, method, exc) from exc
        raise


def _unknown(broker: WritingBroker, method: str, exc: Exception) -> OutcomeUnknownError:
    errors = exc.errors if isinstance(exc, KrakenError) else ()
    return OutcomeUnknownError(
        f"{method}: outcome unknown ({exc})", account=broker.account_id, errors=errors
    )


def _write_with_lookups(
    broker: WritingBroker,
    method: str,
    send: Callable[[], _Result],
    settled: Callable[[KrakenError], _Result | None] | None,
) -> _Result:
    """The write policy (bounded tries and time): each try after a failure, and a final uncertain
    failure, first looks the write up with `settled`; what it finds is returned, never resent.
    `settled=None`: nothing can be looked up (a validate-only order)."""
    failure: KrakenError | None = None
    retrying = transient_retrying(
        attempts=WRITE_ATTEMPTS,
        total_s=WRITE_TOTAL_S,
        waits=broker.retry_waits,
        before_sleep=broker.log_retry(method),
        retry_on=_RETRYABLE,
        stop=broker.stop_event,
    )
    try:
        try:
            for attempt in retrying:
                with attempt:
                    if failure is not None and settled is not None:
                        found = settled(failure)
                        if found is not None:
                            return found
                    try:
                        return send()
                    except _RETRYABLE as exc:
                        failure = exc
                        raise
        except _RETRYABLE as exc:
            if is_uncertain(exc) and settled is not None:
                found = settled(exc)
                if found is not None:
                    return found
            raise
    except StopRequested as stopped:
        _raise_stopped(broker, method, stopped, lookups=settled is not None)
    raise AssertionError("unreachable")  # tenacity re-raises once the policy gives up


def _raise_stopped(
    broker: WritingBroker, method: str, stopped: StopRequested, *, lookups: bool
) -> NoReturn:
    """What a write cut short by the stop raises: what giving up would, except that an uncertain
    failure is not looked up any more, so it stays an unknown outcome (never "not placed")."""
    last = stopped.last
    if last is None:
        raise broker.stopped_error(method, stopped) from None
    if lookups and is_uncertain(last):
        raise OutcomeUnknownError(
            f"{method}: stopping before the outcome was looked up; outcome unknown after:"
            f" {failure_text(last)}",
            account=broker.account_id,
            errors=last.errors,
        ) from last
    raise last


def add_order(broker: WritingBroker, request: OrderRequest) -> AddOrderResult:
    if request.cl_ord_id is None and request.userref is None:
        request = replace(request, cl_ord_id=new_cl_ord_id())
    cl_ord_id = request.cl_ord_id
    if cl_ord_id is None:
        return _send_add(broker, request)
    # A validate-only order is never placed: there is nothing to look up.
    settled = None if request.validate else functools.partial(_look_up_added, broker, cl_ord_id)
    return _write_with_lookups(broker, "AddOrder", lambda: _send_add(broker, request), settled)


def _send_add(broker: WritingBroker, request: OrderRequest) -> AddOrderResult:
    pair = request.pair.upper()
    if broker.rate is not None:
        wait = broker.rate.pairs.wait_s(pair)
        if wait > 0:
            broker.log.info("broker.pair_wait", pair=pair, wait_s=round(wait, 3))
            # The exchange's limit, not a retry delay: kept even in tests. Stopped: not sent.
            if not broker.pause(wait, limit=True):
                raise broker.stopped_error("AddOrder", StopRequested(None))
    try:
        raw = _private_write(broker, "AddOrder", request.to_params(), pair=pair)
    except OrderRejectedError as exc:
        if request.cl_ord_id is not None and has_error(exc, DUPLICATE_CL_ORD_ID):
            found = _look_up_added(broker, request.cl_ord_id, exc)
            if found is not None:
                return found
        raise
    if broker.rate is not None:
        broker.rate.pairs.clear(pair)
    return _parse_added(broker, raw, request.cl_ord_id)


def _parse_added(broker: WritingBroker, raw: Any, cl_ord_id: str | None) -> AddOrderResult:
    try:
        txids = tuple(str(t) for t in raw.get("txid") or ())
        description = str((raw.get("descr") or {}).get("order", ""))
    except AttributeError as exc:
        raise _unknown(broker, "AddOrder", ValueError("unexpected reply")) from exc
    return AddOrderResult(txids=txids, description=description, cl_ord_id=cl_ord_id)


def _look_up_added(
    broker: WritingBroker, cl_ord_id: str, failure: KrakenError
) -> AddOrderResult | None:
    order = _look_up(broker, "AddOrder", failure, lambda: broker.find_order_by_cl_ord_id(cl_ord_id))
    if order is None:
        return None
    price = f" {order.price}" if order.price is not None else ""
    description = (
        f"{order.side.value} {order.volume} {order.pair_altname} @ {order.order_type_raw}{price}"
    )
    return AddOrderResult(
        txids=(order.txid,),
        description=description,
        cl_ord_id=cl_ord_id,
        resolved_by_lookup=True,
    )


def _look_up(
    broker: WritingBroker,
    method: str,
    failure: KrakenError,
    find: Any,
) -> Order | None:
    # Stopped while the exchange settles: looking up now could miss an order still landing (a
    # false "not found", then a resend), so the failure ends the write, still uncertain.
    if is_uncertain(failure) and not broker.pause(OUTCOME_SETTLE_S):
        raise StopRequested(failure)
    try:
        order: Order | None = find()
    except KrakenError as exc:
        raise OutcomeUnknownError(
            f"{method}: outcome unknown after ({failure}), and looking it up failed ({exc})",
            account=broker.account_id,
            errors=exc.errors,
        ) from exc
    broker.log.info(
        "broker.outcome_resolved",
        message=f"{method} after ({failure}): {'found ' + order.txid if order else 'not placed'}",
        method=method,
        found=order is not None,
        txid=order.txid if order else None,
        status=order.status.value if order else None,
        cl_ord_id=order.cl_ord_id if order else None,
        after=type(failure).__name__,
    )
    return order


def cancel_order(broker: WritingBroker, *, txid: str | None, cl_ord_id: str | None) -> int:
    if (txid is None) == (cl_ord_id is None):
        raise ValueError("cancel_order needs exactly one of txid and cl_ord_id")
    params = {"txid": txid} if txid is not None else {"cl_ord_id": str(cl_ord_id)}

    def find() -> Order | None:
        if txid is not None:
            return broker.query_orders([txid]).get(txid)
        return broker.find_order_by_cl_ord_id(str(cl_ord_id))

    def settled(failure: KrakenError) -> int | None:
        order = _look_up(broker, "CancelOrder", failure, find)
        if order is None:
            raise OrderRejectedError(
                f"CancelOrder: no order {txid or cl_ord_id}",
                account=broker.account_id,
                errors=("EOrder:Unknown order",),
            )
        if order.is_open:
            return None
        return 1 if order.status is OrderStatus.CANCELLED else 0

    def send() -> int:
        raw = _private_write(broker, "CancelOrder", params)
        try:
            return to_int(raw.get("count"), "count", low=0, high=MAX_COUNT, default=0)
        except (AttributeError, TypeError, ValueError) as exc:
            raise _unknown(broker, "CancelOrder", ValueError("unexpected reply")) from exc

    return _write_with_lookups(broker, "CancelOrder", send, settled)
