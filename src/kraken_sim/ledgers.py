"""Ledgers, QueryLedgers, QueryTrades and TradeVolume: one account's money history and fee tier.

The ledger is derived, never stored: an account's opening balances are `deposit` entries at the
moment the account was created, and every trade adds two `trade` entries (base and quote, with
the fee on the asset it was charged in), replayed in trade order to give each entry's resulting
`balance`. Trades are the only thing that changes a simulated balance, so the last entry of each
asset always equals the Balance answer. Ledger ids are derived from the entry's reference id
(a hash shaped like Kraken's `L4UESK-KG3EQ-UFO4T5`), so they are the same on every call and
asking for them changes no other id.

Entry shape (Kraken's spec `LedgerEntry`): refid, time, type, subtype, aclass, asset, amount,
fee, balance. A trade entry's `amount` excludes its fee: balance = previous + amount - fee.

TradeVolume: `volume` is the account's 30-day traded value in USD (each trade's cost valued in
USD at the prices of the moment it happened); the fee tier of each pair is the last row of its
fee table at or below that volume, and the fees the engine charges follow the same tier.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kraken_sim import params as p
from kraken_sim.errors import UNKNOWN_ASSET_PAIR, SimError, invalid_arguments
from kraken_sim.formatting import asset_amount, trade_json
from kraken_sim.ids import derived_id
from kraken_sim.markets import Asset, FeeTable, Pair, find_asset, find_pair
from kraken_sim.orders import Side, Trade
from kraken_sim.wallet import Wallet

PAGE = 50
MAX_QUERY_IDS = 20  # QueryLedgers and QueryTrades take up to 20 ids (Kraken's spec)
THIRTY_DAYS_S = 30 * 86400.0
_LEDGER_TYPES = (
    "all", "trade", "deposit", "withdrawal", "transfer", "margin", "adjustment", "rollover",
    "credit", "settled", "staking", "dividend", "sale", "nft",
)  # fmt: skip
USD = "ZUSD"


@dataclass(frozen=True)
class LedgerEntry:
    ledger_id: str
    refid: str
    time: float
    kind: str  # Kraken's `type`: deposit | trade
    asset: Asset
    amount: Decimal
    fee: Decimal
    balance: Decimal
    order: int  # position in the account's history: the tie-breaker for equal times

    def json(self) -> dict[str, Any]:
        return {
            "refid": self.refid,
            "time": self.time,
            "type": self.kind,
            "subtype": "",
            "aclass": "currency",
            "asset": self.asset.id,
            "amount": asset_amount(self.amount, self.asset),
            "fee": asset_amount(self.fee, self.asset),
            "balance": asset_amount(self.balance, self.asset),
        }


def _trade_legs(trade: Trade) -> Iterator[tuple[Asset, Decimal, Decimal]]:
    """(asset, amount, fee) of the two ledger entries a trade makes, base first."""
    pair = trade.pair
    base_sign = 1 if trade.side is Side.BUY else -1
    base_fee = trade.fee if trade.fee_in_base else Decimal(0)
    quote_fee = Decimal(0) if trade.fee_in_base else trade.fee
    yield pair.base, base_sign * trade.vol, base_fee
    yield pair.quote, -base_sign * trade.cost, quote_fee


class LedgerBook:
    """Each account's opening balances and the time it opened: the start of its ledger."""

    def __init__(self) -> None:
        self._opening: dict[str, tuple[float, dict[str, Decimal]]] = {}

    def open_account(self, wallet: Wallet, when: float) -> None:
        self._opening[wallet.account_id] = (when, dict(wallet.balances))

    def entries(self, wallet: Wallet) -> list[LedgerEntry]:
        """Every entry of the account, oldest first."""
        when, opening = self._opening.get(wallet.account_id, (0.0, {}))
        running: dict[str, Decimal] = {}
        found: list[LedgerEntry] = []

        def add(refid: str, time: float, kind: str, asset: Asset, amount: Decimal,
                fee: Decimal) -> None:  # fmt: skip
            running[asset.id] = running.get(asset.id, Decimal(0)) + amount - fee
            found.append(LedgerEntry(
                ledger_id=derived_id("L", f"{wallet.account_id}/{refid}/{asset.id}"),
                refid=refid, time=time, kind=kind, asset=asset, amount=amount, fee=fee,
                balance=running[asset.id], order=len(found),
            ))  # fmt: skip

        for asset_id, amount in opening.items():
            asset = find_asset(asset_id)
            if asset is None or amount == 0:
                continue
            refid = derived_id("Q", f"{wallet.account_id}/deposit/{asset_id}")
            add(refid, when, "deposit", asset, amount, Decimal(0))
        for trade in sorted(wallet.trades.values(), key=lambda t: t.trade_id):
            for asset, amount, fee in _trade_legs(trade):
                add(trade.txid, trade.time, "trade", asset, amount, fee)
        return found


def _cursor(params: Mapping[str, Any], name: str, time_of: Callable[[str], float | None]
            ) -> float | None:  # fmt: skip
    value = p.timestamp_or_id(params, name)
    if value is None or isinstance(value, float):
        return value
    moment = time_of(value)
    if moment is None:
        raise SimError(invalid_arguments(name))
    return moment


def ledgers(book: LedgerBook, wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
    """Ledgers: 50 a page, newest first; `asset` (comma list), `type`, `start`/`end`, `ofs`."""
    kind = p.text(params, "type") or "all"
    if kind not in _LEDGER_TYPES:
        raise SimError(invalid_arguments("type"))
    aclass = p.text(params, "aclass") or "currency"
    if aclass != "currency":
        raise SimError(invalid_arguments("aclass"))
    wanted: set[str] | None = None
    names = p.comma_list(params, "asset")
    if names and names != ["all"]:
        wanted = set()
        for name in names:
            asset = find_asset(name)
            if asset is None:
                raise SimError(invalid_arguments("asset"))
            wanted.add(asset.id)
    entries = book.entries(wallet)
    by_id = {entry.ledger_id: entry for entry in entries}

    def entry_time(ledger_id: str) -> float | None:
        entry = by_id.get(ledger_id)
        return None if entry is None else entry.time

    start = _cursor(params, "start", entry_time)
    end = _cursor(params, "end", entry_time)

    def keep(entry: LedgerEntry) -> bool:
        if kind != "all" and entry.kind != kind:
            return False
        if wanted is not None and entry.asset.id not in wanted:
            return False
        return (start is None or entry.time > start) and (end is None or entry.time <= end)

    matching = sorted((e for e in entries if keep(e)), key=lambda e: (e.time, e.order),
                      reverse=True)  # fmt: skip
    ofs = p.integer(params, "ofs") or 0
    if ofs < 0:
        raise SimError(invalid_arguments("ofs"))
    page = matching[ofs : ofs + PAGE]
    result: dict[str, Any] = {"ledger": {e.ledger_id: e.json() for e in page}}
    if not p.boolean(params, "without_count"):
        result["count"] = len(matching)
    return result


def query_ledgers(book: LedgerBook, wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
    """QueryLedgers: the known entries among `id` (up to 20); unknown ids are left out."""
    ids = p.comma_list(params, "id")
    if not ids or len(ids) > MAX_QUERY_IDS:
        raise SimError(invalid_arguments("id"))
    by_id = {entry.ledger_id: entry for entry in book.entries(wallet)}
    return {i: by_id[i].json() for i in ids if i in by_id}


def query_trades(wallet: Wallet, params: Mapping[str, Any]) -> dict[str, Any]:
    """QueryTrades: the known trades among `txid` (up to 20); unknown ids are left out."""
    ids = p.comma_list(params, "txid")
    if not ids or len(ids) > MAX_QUERY_IDS:
        raise SimError(invalid_arguments("txid"))
    p.boolean(params, "trades")  # position trades: spot trades have none
    return {t: trade_json(wallet.trades[t]) for t in ids if t in wallet.trades}


# -- fees and the 30-day volume -------------------------------------------------------------


class VolumeTracker:
    """Each account's traded value in USD over the last 30 days, valued when each trade happened.

    Fed by the engine's own order observer (every `trade` event); old trades drop out as the
    clock passes 30 days beyond them.
    """

    def __init__(self) -> None:
        self._trades: dict[str, deque[tuple[float, Decimal]]] = {}
        self._totals: dict[str, Decimal] = {}

    def record(self, account_id: str, when: float, usd: Decimal) -> None:
        self._trades.setdefault(account_id, deque()).append((when, usd))
        self._totals[account_id] = self._totals.get(account_id, Decimal(0)) + usd

    def volume(self, account_id: str, now: float, *, before_now: bool = False) -> Decimal:
        """The 30-day volume, to 4 places (half-up). `before_now`: without the trades made at
        `now` itself, so that every fill of one order (a walk across a book) pays one tier."""
        trades = self._trades.get(account_id)
        while trades and trades[0][0] <= now - THIRTY_DAYS_S:
            _, usd = trades.popleft()
            self._totals[account_id] -= usd
        total = self._totals.get(account_id, Decimal(0))
        for when, usd in reversed(trades or ()) if before_now else ():
            if when < now:
                break
            total -= usd
        return total.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def tier_index(table: FeeTable, volume: Decimal) -> int:
    """The row of `table` whose volume threshold `volume` has reached (the last such row)."""
    index = 0
    for i, (threshold, _) in enumerate(table):
        if volume >= threshold:
            index = i
    return index


def fee_rate(table: FeeTable, volume: Decimal) -> Decimal:
    """The fee of the tier `volume` reaches, as a fraction (0.35 % -> 0.0035)."""
    return table[tier_index(table, volume)][1] / 100


def _fee_info(table: FeeTable, volume: Decimal) -> dict[str, Any]:
    index = tier_index(table, volume)
    last = index == len(table) - 1

    def percent(value: Decimal) -> str:
        return f"{value:.4f}"

    return {
        "fee": percent(table[index][1]),
        "minfee": percent(min(rate for _, rate in table)),
        "maxfee": percent(max(rate for _, rate in table)),
        "nextfee": None if last else percent(table[index + 1][1]),
        "tiervolume": f"{Decimal(table[index][0]):.4f}",
        "nextvolume": None if last else f"{Decimal(table[index + 1][0]):.4f}",
    }


def trade_volume(volume: Decimal, params: Mapping[str, Any]) -> dict[str, Any]:
    """TradeVolume: the 30-day USD volume and, for each `pair` asked for, its taker and maker
    fee tier (`fees`, `fees_maker`, keyed by pair id, as ccxt's fetch_trading_fee reads them)."""
    pairs: list[Pair] = []
    for name in p.comma_list(params, "pair"):
        pair = find_pair(name)
        if pair is None:
            raise SimError(UNKNOWN_ASSET_PAIR)
        pairs.append(pair)
    result: dict[str, Any] = {"currency": USD, "volume": f"{volume:.4f}"}
    if pairs:
        result["fees"] = {pair.id: _fee_info(pair.fees, volume) for pair in pairs}
        result["fees_maker"] = {pair.id: _fee_info(pair.fees_maker, volume) for pair in pairs}
    return result
