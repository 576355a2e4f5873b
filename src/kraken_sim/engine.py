"""The simulator's in-memory exchange: what rest.py calls for every Kraken method.

`Engine.public(method, params)` and `Engine.private(account, method, params)` return Kraken's
`result` object or raise `SimError(<Kraken error string>)`. `set_price` moves a pair's price and
fills or triggers what it crosses. Time comes only from the injected clock; expiry and scheduled
starts are applied lazily at the start of every call. Ids come from a seeded random generator,
so a seed and a sequence of calls always give the same answers.

Market rules are in `matching.py`, AddOrder's checks in `addorder.py`, paging in `queries.py`;
AmendOrder/OrderAmends/EditOrder in `amend.py`, the batches in `batch.py`, CancelAllOrdersAfter
in `deadman.py`, QueryTrades/Ledgers/QueryLedgers/TradeVolume and the fee tiers in `ledgers.py`.

Choices where Kraken's documentation is silent or the simulator simplifies:
- each pair has a reference price `last` and, when the accounts file enables `[books]`, a book
  of house liquidity around it (books.py); takers walk the book, resting limits fill at their own
  limit price as maker (see matching.py). Without books: ask = bid = last, unlimited depth.
- `trade_through` (the `trade` control operation) partly fills resting orders; `last` stays.
- fees: the pair's fee tier for the account's 30-day USD volume (`fees` taker, `fees_maker`
  maker; TradeVolume shows it, ledgers.py), charged in the quote currency unless `fcib`;
  amounts are rounded half-up to the asset's ledger decimals; holds and market orders' funds
  checks use the first tier (the highest rate), rounded up, so a fill never spends more than
  its order held.
- QueryOrders leaves unknown txids out (an empty object when none is known), which ccxt's
  fetch_order turns into OrderNotFound.
- a cl_ord_id already used by an open order of the account: `EOrder:Duplicate cl_ord_id`
  (Kraken's exact wording unconfirmed); cl_ord_id with userref: `...Invalid arguments:cl_ord_id`.
- a post-only order that would take is accepted (gets a txid) and cancelled with reason
  "Post only order"; an IOC or FOK order that cannot fill is cancelled, "Insufficient
  liquidity".
- the matching-engine counter is charged on receipt of every AddOrder except `validate=true`;
  a single CancelOrder over the threshold is refused, a userref cancel or CancelAll is not.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kraken_sim import batch, ledgers, public, queries
from kraken_sim import params as p
from kraken_sim.addorder import pair_of, parse_add_order
from kraken_sim.amend import Amends
from kraken_sim.books import BookSettings
from kraken_sim.deadman import REASON_DEAD_MAN, DeadManSwitch
from kraken_sim.errors import (
    DUPLICATE_CL_ORD_ID,
    INSUFFICIENT_FUNDS,
    ORDER_RATE_LIMIT,
    ORDERS_LIMIT,
    TICK_SIZE,
    UNKNOWN_ASSET_PAIR,
    UNKNOWN_METHOD,
    UNKNOWN_ORDER,
    SimError,
    invalid_arguments,
)
from kraken_sim.formatting import ledger_json, order_json, order_text
from kraken_sim.ids import IdGenerator
from kraken_sim.markets import Pair, find_pair
from kraken_sim.matching import Exchange, OrderEvent, OrderObserver
from kraken_sim.orders import REASON_USER, OrderType, Side, SimOrder, Trade, order_hold
from kraken_sim.prices import PriceBoard
from kraken_sim.ratecounter import ADD_ORDER_COST, cancel_cost
from kraken_sim.wallet import Wallet

_USERREF = re.compile(r"^-?\d+$")


class Engine:
    def __init__(
        self,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        books: BookSettings | None = None,
    ) -> None:
        self._clock = clock
        # The matching engine's per-pair order counters; off only through /sim/limits.
        self.order_limits = True
        self._ids = IdGenerator(seed)
        self._prices = PriceBoard(clock())
        self._exchange = Exchange(
            ids=self._ids, clock=clock, prices=self._prices, books=books, seed=seed
        )
        self._public: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "Time": lambda _: public.time_result(self._clock()),
            "SystemStatus": lambda _: public.system_status(self._clock()),
            "Assets": public.assets,
            "AssetPairs": public.asset_pairs,
            "Ticker": lambda params: public.ticker(
                params, self._prices, self._exchange.book, self._clock()
            ),
            "Depth": lambda params: public.depth(
                params, self._prices, self._exchange.book, self._clock()
            ),
            "Spread": lambda params: public.spread(
                params, self._prices, self._exchange.book, self._clock()
            ),
            "Trades": lambda params: public.trades(params, self._prices),
            "OHLC": lambda params: public.ohlc(params, self._prices, self._clock()),
        }
        self._private: dict[str, Callable[[Wallet, Mapping[str, Any]], Any]] = {
            "Balance": lambda wallet, _: queries.balance(wallet),
            "BalanceEx": lambda wallet, _: queries.balance_ex(wallet),
            "TradeBalance": lambda wallet, params: queries.trade_balance(
                wallet, params, self._prices.last
            ),
            "OpenOrders": queries.open_orders,
            "ClosedOrders": queries.closed_orders,
            "QueryOrders": queries.query_orders,
            "TradesHistory": queries.trades_history,
            "AddOrder": self._add_order,
            "CancelOrder": self._cancel_order,
            "CancelAll": self._cancel_all,
        }
        self._register_account_methods()

    def _register_account_methods(self) -> None:
        """Amends, edits, batches, the dead-man switch, ledgers and fees (their own modules)."""
        self._ledgers = ledgers.LedgerBook()
        self._volumes = ledgers.VolumeTracker()
        self._exchange.observers.append(self._count_volume)
        self._exchange.fee_rates = self._fee_rate
        self._deadman = DeadManSwitch()
        self._amends = Amends(
            exchange=self._exchange,
            ids=self._ids,
            clock=self._clock,
            limits_on=lambda: self.order_limits,
            add_order=self._add_order,
        )
        self._private.update({
            "AmendOrder": self._amends.amend_order,
            "OrderAmends": self._amends.order_amends,
            "EditOrder": self._amends.edit_order,
            "AddOrderBatch": lambda wallet, params: batch.add_order_batch(
                self._exchange, wallet, params, now=self._clock(), limits_on=self.order_limits,
                add_order=lambda w, one: self._add_order(w, one, charge=False)),
            "CancelOrderBatch": lambda wallet, params: batch.cancel_order_batch(
                self._exchange, wallet, params,
                charge_cancels=lambda w, orders: self._charge_cancels(w, orders, may_refuse=False)),
            "CancelAllOrdersAfter": lambda wallet, params: self._deadman.arm(
                wallet.account_id, params, self._clock()),
            "QueryTrades": lambda wallet, params: ledgers.query_trades(wallet, params),
            "Ledgers": lambda wallet, params: ledgers.ledgers(self._ledgers, wallet, params),
            "QueryLedgers": lambda wallet, params: ledgers.query_ledgers(
                self._ledgers, wallet, params),
            "TradeVolume": lambda wallet, params: ledgers.trade_volume(
                self.volume_30d(wallet.account_id), params),
        })  # fmt: skip

    def served_private_methods(self) -> frozenset[str]:
        return frozenset(self._private)

    def volume_30d(self, account_id: str) -> Decimal:
        """The account's 30-day traded value in USD: what its fee tier follows."""
        return self._volumes.volume(account_id, self._clock())

    def _fee_rate(self, account_id: str, pair: Pair, maker: bool) -> Decimal:
        """The tier of the volume traded before this moment: every fill of one order pays the
        same rate, even when the order's own fills take the account into the next tier."""
        table = pair.fees_maker if maker else pair.fees
        volume = self._volumes.volume(account_id, self._clock(), before_now=True)
        return ledgers.fee_rate(table, volume)

    def _count_volume(self, event: OrderEvent) -> None:
        trade = event.trade
        if trade is not None:
            usd = queries.value_in(trade.pair.quote.id, trade.cost, "ZUSD", self._prices.last)
            self._volumes.record(event.account, trade.time, usd)

    def _tick(self) -> None:
        """Expiries and scheduled starts, then the dead-man switches that are due."""
        self._exchange.tick()
        for account_id, _when in self._deadman.due(self._clock()):
            wallet = self._exchange.wallets[account_id]
            for order in list(wallet.open.values()):
                self._exchange.cancel(wallet, order, REASON_DEAD_MAN)

    # -- the contract ---------------------------------------------------------------------------

    def add_account(self, account_id: str, *, balances: Mapping[str, Decimal], tier: str) -> None:
        if account_id in self._exchange.wallets:
            raise ValueError(f"account {account_id!r} already exists")
        self._exchange.wallets[account_id] = Wallet(account_id, balances, tier)
        self._ledgers.open_account(self._exchange.wallets[account_id], self._clock())

    def public(self, method: str, params: Mapping[str, Any]) -> Any:
        handler = self._public.get(method)
        if handler is None:
            raise SimError(UNKNOWN_METHOD)
        self._tick()
        return handler(params)

    def private(self, account_id: str, method: str, params: Mapping[str, Any]) -> Any:
        handler = self._private.get(method)
        if handler is None:
            raise SimError(UNKNOWN_METHOD)
        wallet = self._exchange.wallets.get(account_id)
        if wallet is None:
            raise KeyError(f"no simulated account {account_id!r}")
        self._tick()
        return handler(wallet, params)

    def set_price(self, pair: str, price: Decimal | str) -> None:
        """Move a pair (id, altname or wsname) to `price`; fills and triggers what it crosses."""
        found = find_pair(pair)
        if found is None:
            raise SimError(UNKNOWN_ASSET_PAIR)
        try:
            value = Decimal(str(price))
        except InvalidOperation as exc:
            raise SimError(invalid_arguments("price")) from exc
        if not value.is_finite() or value <= 0:
            raise SimError(invalid_arguments("price"))
        if value % found.tick_size != 0:
            raise SimError(TICK_SIZE)
        self._tick()
        self._prices.set(found, value, self._clock())
        self._exchange.price_moved(found)

    def trade(self, pair: str, side: str, price: Decimal | str, volume: Decimal | str) -> Decimal:
        """An outside taker on `side` trades up to `volume` through `price`, filling the
        accounts' resting limits in price-time priority (the last one partly); `last` stays.
        Returns the volume that traded."""
        found = find_pair(pair)
        if found is None:
            raise SimError(UNKNOWN_ASSET_PAIR)
        if side not in ("buy", "sell"):
            raise SimError(invalid_arguments("type"))
        try:
            value = Decimal(str(price))
            amount = Decimal(str(volume))
        except InvalidOperation as exc:
            raise SimError(invalid_arguments("price")) from exc
        if not value.is_finite() or value <= 0 or value % found.tick_size != 0:
            raise SimError(invalid_arguments("price"))
        if not amount.is_finite() or amount <= 0 or amount % found.lot_quantum != 0:
            raise SimError(invalid_arguments("volume"))
        self._exchange.tick()
        return self._exchange.trade_through(found, Side(side), value, amount)

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot for the `state` control operation (GET /sim/state)."""
        self._tick()
        accounts = {}
        for account_id, wallet in self._exchange.wallets.items():
            accounts[account_id] = {
                "balances": ledger_json(wallet.balances),
                "hold_trade": ledger_json(wallet.holds()),
                "open_orders": {
                    txid: order_json(order, with_trades=True) for txid, order in wallet.open.items()
                },
            }
        return {
            "accounts": accounts,
            "prices": {pair_id: f"{price:f}" for pair_id, price in self._prices.last.items()},
            "fees_collected": ledger_json(self._exchange.fees),
        }

    # -- the private WebSocket feed (websocket.py) --------------------------------------

    def add_order_observer(self, observer: OrderObserver) -> None:
        self._exchange.observers.append(observer)

    def remove_order_observer(self, observer: OrderObserver) -> None:
        if observer in self._exchange.observers:
            self._exchange.observers.remove(observer)

    def tick(self) -> None:
        """Apply expiries and scheduled starts now (observers hear of them)."""
        self._tick()

    def open_orders_of(self, account_id: str) -> list[SimOrder]:
        self._tick()
        return list(self._exchange.wallets[account_id].open.values())

    def recent_trades_of(self, account_id: str, limit: int) -> list[tuple[SimOrder, Trade]]:
        """The account's last `limit` fills, oldest first, each with its order."""
        wallet = self._exchange.wallets[account_id]
        trades = sorted(wallet.trades.values(), key=lambda trade: trade.trade_id)[-limit:]
        return [(wallet.orders[trade.ordertxid], trade) for trade in trades]

    def rate_count(self, account_id: str, pair: Pair) -> float:
        """The account's matching-engine counter on `pair` now (the WebSocket's `ratecount`)."""
        return self._exchange.wallets[account_id].counter(pair).value(self._clock())

    def max_rate_count(self, account_id: str) -> int:
        """The matching-engine counter's threshold for the account's tier."""
        return int(self._exchange.wallets[account_id].limits.threshold)

    # -- what tests and benchmarks may read besides the contract ------------------------------

    def fees_collected(self) -> dict[str, Decimal]:
        return dict(self._exchange.fees)

    def house_flows(self) -> dict[str, Decimal]:
        """The market counterparty's net flow per asset (what fills took from or gave to it)."""
        return dict(self._exchange.house)

    def balances(self, account_id: str) -> dict[str, Decimal]:
        return dict(self._exchange.wallets[account_id].balances)

    # -- trading --------------------------------------------------------------------------------

    def _add_order(
        self, wallet: Wallet, params: Mapping[str, Any], *, charge: bool = True
    ) -> dict[str, Any]:
        """`charge=False`: the caller charged the counter already (a batch)."""
        pair = pair_of(params)
        now = self._clock()
        # Kraken charges an AddOrder on receipt, even when it then fails validation.
        if charge and self.order_limits and not p.boolean(params, "validate"):
            counter = wallet.counter(pair)
            if counter.would_exceed(ADD_ORDER_COST, now):
                raise SimError(ORDER_RATE_LIMIT)
            counter.charge(ADD_ORDER_COST, now)
        last = self._exchange.last(pair)
        draft = parse_add_order(params, pair, now, last)
        if draft.cl_ord_id is not None and wallet.open_with_cl_ord_id(draft.cl_ord_id):
            raise SimError(DUPLICATE_CL_ORD_ID)
        if sum(1 for _ in wallet.open_on(pair)) >= wallet.limits.open_orders_per_pair:
            raise SimError(ORDERS_LIMIT)
        order = SimOrder(
            txid="",
            seq=0,
            pair=pair,
            side=draft.side,
            ordertype=draft.ordertype,
            volume=draft.volume,
            price=draft.price,
            price2=draft.price2,
            oflags=draft.oflags,
            timeinforce=draft.timeinforce,
            userref=draft.userref,
            cl_ord_id=draft.cl_ord_id,
            opentm=now,
            starttm=draft.starttm,
            expiretm=draft.expiretm,
        )
        if order.ordertype is OrderType.MARKET:
            asset, need = self._exchange.market_need(order)
            order.market_hold = need
        else:
            asset, need = order_hold(order)
        if wallet.available(asset) < need:
            raise SimError(INSUFFICIENT_FUNDS)
        descr = {"order": order_text(order)}
        if draft.validate:
            return {"descr": descr}
        order.txid = self._ids.order_id()
        order.seq = self._exchange.next_seq()
        self._exchange.place(wallet, order)
        return {"descr": descr, "txid": [order.txid]}

    def _cancel_order(self, wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
        txid = p.text(params, "txid") or None
        cl_ord_id = p.text(params, "cl_ord_id") or None
        if txid is None and cl_ord_id is None:
            raise SimError(invalid_arguments("txid"))
        if txid is not None and cl_ord_id is not None:
            raise SimError(invalid_arguments("cl_ord_id"))
        targets: list[SimOrder]
        if cl_ord_id is not None:
            found = wallet.open_with_cl_ord_id(cl_ord_id)
            targets = [found] if found else []
        elif txid is not None and _USERREF.match(txid):  # an integer is a userref: all of them
            targets = [o for o in wallet.open.values() if o.userref == int(txid)]
        else:
            targets = [wallet.open[txid]] if txid in wallet.open else []
        if not targets:
            raise SimError(UNKNOWN_ORDER)
        self._charge_cancels(wallet, targets, may_refuse=len(targets) == 1)
        for order in targets:
            self._exchange.cancel(wallet, order, REASON_USER)
        return {"count": len(targets)}

    def _cancel_all(self, wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
        targets = list(wallet.open.values())
        self._charge_cancels(wallet, targets, may_refuse=False)
        for order in targets:
            self._exchange.cancel(wallet, order, REASON_USER)
        return {"count": len(targets)}

    def _charge_cancels(self, wallet: Wallet, orders: list[SimOrder], *, may_refuse: bool) -> None:
        """Charge each pair's counter for cancelling young orders.

        A single cancel over the threshold is refused; cancelling several at once (a userref,
        CancelAll) is accepted even when it pushes the counter over, as Kraken does for batches.
        """
        if not self.order_limits:
            return
        now = self._clock()
        costs: dict[str, tuple[Pair, float]] = {}
        for order in orders:
            pair, cost = costs.get(order.pair.id, (order.pair, 0.0))
            costs[pair.id] = (pair, cost + cancel_cost(now - order.opentm))
        if may_refuse and any(
            wallet.counter(pair).would_exceed(cost, now) for pair, cost in costs.values()
        ):
            raise SimError(ORDER_RATE_LIMIT)
        for pair, cost in costs.values():
            wallet.counter(pair).charge(cost, now)
