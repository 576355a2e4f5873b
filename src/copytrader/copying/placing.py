"""Placing one planned copy: a lookup if an earlier run may have sent it, the gates, sizing,
`submitting` written, then AddOrder and its outcome.

Errors: a transient one (`TransientError`) is tried again, counted (see `outcomes`); while the
user's account rests (a lockout, a bad key: see `resting`) the copy waits, uncounted; Kraken's
refusal of the order or of an account that is not resting ends the copy `failed`; anything else
(a bug, a value that cannot be sized) is raised to the copy's lane, which ends that copy (see
`Copier._process`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from decimal import Decimal

from copytrader.copying.accounts import CopierSettings, UserAccount
from copytrader.copying.exchange_index import EarlierRunOrders
from copytrader.copying.gates import CopyGates
from copytrader.copying.order_request import build_request, copy_prices, limit_price_of, pair_rules
from copytrader.copying.outcomes import CopyOutcomes, error_text
from copytrader.copying.resting import rest_of
from copytrader.copying.sizing import SizingRequest, Skipped, size_copy
from copytrader.copying.snapshots import AccountSnapshots
from copytrader.domain import Side, SizingMode
from copytrader.errors import AccountUnusableError, OrderRejectedError, TransientError
from copytrader.kraken.models import OrderRequest, PairInfo
from copytrader.ledger import CopyRecord, CopyState, Ledger, LedgerError, MasterOrderRecord
from copytrader.logs import get_logger

log = get_logger(__name__)


class _NotCached(Exception):
    """Sizing without any call needs something that is not cached (a stale balance...)."""


class CopyPlacer:
    """Sizes and sends copies (each user's through that user's broker)."""

    def __init__(
        self,
        ledger: Ledger,
        settings: CopierSettings,
        snapshots: Mapping[str, AccountSnapshots],
        gates: CopyGates,
        earlier_run: EarlierRunOrders,
        outcomes: CopyOutcomes,
        *,
        run_started_at: float,
        monotonic: Callable[[], float],
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._timings = settings.timings
        self._snapshots = snapshots
        self._gates = gates
        self._earlier_run = earlier_run
        self._outcomes = outcomes
        self._run_started_at = run_started_at
        self._monotonic = monotonic
        self._lock = threading.Lock()  # guards the ticker cache, shared by all lanes
        # (pair id, side) -> (read at, price): a buy is sized at the ask, a sell at the bid.
        self._tickers: dict[tuple[str, Side], tuple[float, Decimal]] = {}

    def _earlier_run_may_have_sent(self, master: MasterOrderRecord) -> bool:
        return (
            master.first_seen_at < self._run_started_at
            or master.opentm < self._run_started_at + self._timings.start_window_s
        )

    def presize(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord
    ) -> tuple[OrderRequest, tuple[str, ...]] | None:
        """The copy's AddOrder, sized from cached balances, pair and ticker without any call,
        for the copier's batch (Copier.kick); None when anything needs a call, a lookup or an
        outcome the lane must report (a gate, a skip, an error): the lane then does it all."""
        if (
            self._earlier_run_may_have_sent(master)
            or self._gates.reason_not_to_send(master, account.user_id)
            or rest_of(account) is not None  # the lane makes the copy wait for the account
        ):
            return None
        try:
            sized = self._size(account, master, copy, offline=True)
        except Exception:  # noqa: BLE001 - not cached, or an error the lane will report
            return None
        return None if isinstance(sized, Skipped) else sized

    def send_presized(
        self,
        account: UserAccount,
        master: MasterOrderRecord,
        copy: CopyRecord,
        request: OrderRequest,
        notes: tuple[str, ...],
        *,
        recheck: bool,
    ) -> None:
        """Send a copy the batch sized and wrote `submitting` (nothing was sent yet). With
        `recheck` (the batch is no longer fresh: a master order changed since, or its lane
        started late), the master order is read again and all the gates passed again first:
        the master's cancel may have come meanwhile, and then the copy is skipped, as it would
        have been had its lane sized it now. The kill switch and the user's close-only are checked
        either way."""
        if recheck:
            master = self._ledger.master_order(copy.master_txid)
            gate = self._gates.reason_not_to_send(master, account.user_id)
        else:
            # Files: checked before every copy.
            gate = self._gates.kill_switch_reason(master, account.user_id)
        if gate:
            self._outcomes.skip(master, copy, gate)
            return
        self.send(account, master, copy, request, notes)

    def needs_ticker(self, account: UserAccount, master: MasterOrderRecord) -> bool:
        """Whether sizing this master order's copies needs a ticker read not cached yet."""
        if master.order_type is None or limit_price_of(master) is not None:
            return False
        info = account.broker.cached_pair(master.pair)
        return info is None or self._fresh_ticker(info.pair_id, master.side) is None

    def warm_ticker(self, account: UserAccount, master: MasterOrderRecord) -> None:
        """Read the ticker a market order's copies are sized by, once for all users (a failure
        only means the lanes read it themselves)."""
        try:
            self._ticker_price(account, account.broker.pair(master.pair), master.side)
        except Exception as error:  # noqa: BLE001 - the lanes read it, and report a failure
            log.debug("copy.ticker_failed", master_txid=master.txid, error=error_text(error))

    def plan_and_send(
        self, account: UserAccount, master: MasterOrderRecord, copy: CopyRecord
    ) -> None:
        user_id = account.user_id
        earlier_run = self._earlier_run_may_have_sent(master)
        # Nothing can be asked or sent while the account rests (the lane waits for it too).
        if self._outcomes.wait_if_resting(account, master, copy, state=CopyState.PLANNED):
            return
        if earlier_run:
            # An earlier run saw this master order, or could have (it is older than this run):
            # it may have sent this copy and lost the record of it (a crash right after
            # AddOrder; a power cut can undo the ledger's last writes).
            try:
                found = self._earlier_run.find(account, master, copy)
            except AccountUnusableError as error:
                self._fail_unless_resting(account, master, copy, error, CopyState.PLANNED)
                return
            except TransientError as error:
                self._outcomes.retry_or_give_up(master, copy, error, state=CopyState.PLANNED)
                return
            if found is not None:
                try:
                    sub = self._ledger.mark_submitting(
                        master.txid, user_id, volume=found.volume, price=found.price,
                        price2=found.price2,
                    )  # fmt: skip
                except LedgerError:
                    # The master's cancel skipped the row meanwhile: the order found is still
                    # recorded (and cancelled if open), never left live without a record.
                    skipped = self._ledger.copy(master.txid, user_id)
                    if skipped.state is not CopyState.SKIPPED:
                        raise
                    self._outcomes.found_after_skip(master, skipped, found)
                    return
                self._outcomes.placed(master, sub, found.txid, resolved=True)
                return
        gate = self._gates.reason_not_to_send(master, user_id)
        if gate:
            self._outcomes.skip(master, copy, gate)
            return
        try:
            request_or_skip = self._size(account, master, copy)
        except AccountUnusableError as error:  # a lockout (the account rests), a bad key
            self._fail_unless_resting(account, master, copy, error, CopyState.PLANNED)
            return
        except OrderRejectedError as error:  # e.g. unknown pair
            self._outcomes.fail(master, copy, error_text(error))
            return
        except TransientError as error:  # a balance or ticker read failed: try again later
            self._outcomes.retry_or_give_up(master, copy, error, state=CopyState.PLANNED)
            return
        if isinstance(request_or_skip, Skipped):
            self._outcomes.skip(master, copy, request_or_skip.reason)
            return
        request, notes = request_or_skip
        sub = self._ledger.mark_submitting(
            master.txid, user_id, volume=request.volume, price=request.price,
            price2=request.price2,
        )  # fmt: skip
        self.send(account, master, sub, request, notes)

    def _fail_unless_resting(
        self,
        account: UserAccount,
        master: MasterOrderRecord,
        copy: CopyRecord,
        error: AccountUnusableError,
        state: CopyState,
    ) -> None:
        """After Kraken refused the account: wait if it now rests (a lockout, a bad key or
        signature start a rest), else end the copy `failed` (a missing permission)."""
        if not self._outcomes.wait_if_resting(
            account, master, copy, state=state, fallback_why=error_text(error)
        ):
            self._outcomes.fail(master, copy, error_text(error))

    def _size(
        self,
        account: UserAccount,
        master: MasterOrderRecord,
        copy: CopyRecord,
        *,
        offline: bool = False,
    ) -> tuple[OrderRequest, tuple[str, ...]] | Skipped:
        """Sizing as the rules say; `offline`: only from what is cached (else _NotCached)."""
        if master.order_type is None:
            return Skipped("order type is not copied")
        info = (
            account.broker.cached_pair(master.pair) if offline else account.broker.pair(master.pair)
        )
        if info is None:
            raise _NotCached("pair")
        rules = pair_rules(info)
        snapshots = self._snapshots[account.user_id]
        mode = self._settings.sizing_mode
        sizing = account.sizing
        side = master.side
        reference = limit_price_of(master) or self._ticker_price(
            account, info, side, offline=offline
        )
        need_equity = (mode is SizingMode.EQUITY_RATIO and side is Side.BUY) or (
            sizing.max_order_fraction is not None
        )
        user_equity: Decimal | None = None
        if need_equity:
            user_equity = snapshots.fresh_equity() if offline else snapshots.equity()
            if user_equity is None:
                raise _NotCached("equity")
        holding: Decimal | None = None
        available: Decimal | None = None
        if side is Side.SELL:
            balances = snapshots.fresh_balances() if offline else snapshots.balances()
            if balances is None:
                raise _NotCached("balances")
            balance = balances.get(info.base)
            holding = balance.balance if balance else Decimal(0)
            available = balance.available if balance else Decimal(0)
        result = size_copy(
            SizingRequest(
                mode=mode,
                side=side,
                master_volume=master.volume,
                reference_price=reference,
                rules=rules,
                multiplier=sizing.multiplier,
                fixed_notional=sizing.fixed_notional,
                master_equity=master.master_equity,
                user_equity=user_equity,
                master_base_before=master.master_base_before,
                user_base_holding=holding,
                user_base_available=available,
                max_order_fraction=sizing.max_order_fraction,
                max_notional=sizing.max_notional,
                round_up_to_minimum=sizing.round_up_to_minimum,
            )
        )
        if isinstance(result, Skipped):
            return result
        price, price2 = copy_prices(master, info.tick_size)
        request = build_request(
            master, copy.cl_ord_id, result.volume, price, price2, validate=self._settings.dry_run
        )
        user_id = account.user_id
        request, capped = self._gates.cap(master, request, info.tick_size, reference, user_id)
        return request, (*result.notes, capped) if capped else result.notes

    def _ticker_price(
        self, account: UserAccount, info: PairInfo, side: Side, *, offline: bool = False
    ) -> Decimal | None:
        cached = self._fresh_ticker(info.pair_id, side)
        if cached is not None:
            return cached
        if offline:
            raise _NotCached("ticker")
        now = self._monotonic()
        ticker = account.broker.ticker(info.pair_id)
        price = ticker.ask if side is Side.BUY else ticker.bid
        price = price if price > 0 else ticker.last
        if price <= 0:
            return None
        with self._lock:
            self._tickers[(info.pair_id, side)] = (now, price)
        return price

    def _fresh_ticker(self, pair_id: str, side: Side) -> Decimal | None:
        """The cached price for this pair and side if younger than the ticker TTL."""
        with self._lock:
            cached = self._tickers.get((pair_id, side))
        if cached is not None and self._monotonic() - cached[0] < self._timings.ticker_ttl_s:
            return cached[1]
        return None

    def request_from_row(self, master: MasterOrderRecord, copy: CopyRecord) -> OrderRequest:
        """The same AddOrder again, from what was written before the first attempt."""
        assert copy.volume is not None  # written with `submitting`, before the first attempt
        return self._gates.as_sent(master, build_request(
            master, copy.cl_ord_id, copy.volume, copy.price, copy.price2,
            validate=self._settings.dry_run,
        ))  # fmt: skip

    def send(
        self,
        account: UserAccount,
        master: MasterOrderRecord,
        copy: CopyRecord,
        request: OrderRequest,
        notes: tuple[str, ...] = (),
    ) -> None:
        try:
            result = account.broker.add_order(request)
        except (OrderRejectedError, AccountUnusableError) as error:
            if isinstance(error, OrderRejectedError) and any(
                "Duplicate cl_ord_id" in text for text in error.errors
            ):
                # An open order already carries this copy's id (it landed earlier), though
                # add_order's lookup did not see it. Kraken's word proves it exists: record it
                # placed without a txid (a cancel goes by cl_ord_id) instead of resending until
                # the copy is wrongly given up as "not on Kraken".
                note = "Kraken reported the cl_ord_id as a duplicate: the order exists, no txid"
                self._outcomes.placed(master, copy, None, resolved=True, notes=(note,))
                return
            if isinstance(error, AccountUnusableError):
                # A lockout answer is not an order that was placed, but the copy stays
                # `submitting` while it waits: after the rest it is looked up before any resend.
                self._fail_unless_resting(account, master, copy, error, CopyState.SUBMITTING)
                return
            self._outcomes.fail(master, copy, error_text(error))
            return
        except TransientError as error:  # outcome unknown, or not sent: look it up first
            self._outcomes.retry_or_give_up(master, copy, error, counted=False)
            return
        if request.validate:
            why = f"dry run: validated by Kraken ({result.description})"
            self._outcomes.skip(master, copy, why, event="copy.validated")
            return
        txid = result.txids[0] if result.txids else None
        notes = (*notes, *self._gates.after_send(account.broker, master, copy, request))
        self._outcomes.placed(master, copy, txid, resolved=result.resolved_by_lookup, notes=notes)
