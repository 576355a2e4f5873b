"""Kraken's public endpoints: Time, SystemStatus, Assets, AssetPairs, Ticker, Depth, Spread,
Trades and OHLC (the last four for one pair, keyed by its id, as Kraken answers them).

Depth shows the pair's book (books.py): `[price, volume, timestamp]` rows, best first, `count`
(1-500, default 100) per side. Spread lists the recent changes of the top of the book as
`[time, bid, ask]` with `last`. Trades is the tape: `[price, volume, time, "b"|"s", "m"|"l",
misc, trade_id]`, `since` a nanosecond `last` from an earlier answer (or seconds), `count` up to
1000. OHLC: `[time, open, high, low, close, vwap, volume, count]` candles of `interval` minutes
(Kraken's nine), at most 720, including the one still forming; `last` is the newest closed one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kraken_sim import params as p
from kraken_sim.addorder import pair_of
from kraken_sim.books import Book
from kraken_sim.errors import UNKNOWN_ASSET, UNKNOWN_ASSET_PAIR, SimError, invalid_arguments
from kraken_sim.markets import ASSETS, PAIRS, Pair, asset_info, find_asset, find_pair, pair_info
from kraken_sim.prices import PriceBoard

PAIR_INFO_KINDS = ("info", "leverage", "fees", "margin")
OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)

BookOf = Callable[[Pair], Book]


def time_result(now: float) -> dict[str, Any]:
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    return {"unixtime": int(now), "rfc1123": moment.strftime("%a, %d %b %y %H:%M:%S +0000")}


def system_status(now: float) -> dict[str, Any]:
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    return {"status": "online", "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}


def assets(params: Mapping[str, Any]) -> dict[str, Any]:
    aclass = p.text(params, "aclass") or "currency"
    if aclass not in ("currency", "tokenized_asset"):
        raise SimError(invalid_arguments("aclass"))
    names = p.comma_list(params, "asset")
    if names:
        chosen = []
        for name in names:
            asset = find_asset(name)
            if asset is None:
                raise SimError(UNKNOWN_ASSET)
            chosen.append(asset)
    else:
        chosen = list(ASSETS.values())
    if aclass != "currency":  # the simulator lists no tokenized assets
        return {}
    return {asset.id: asset_info(asset) for asset in chosen}


def pairs_named(params: Mapping[str, Any]) -> list[Pair]:
    """The pairs of a `pair=` list (ids, altnames or wsnames), or every pair when absent."""
    names = p.comma_list(params, "pair")
    if not names:
        return list(PAIRS.values())
    chosen = []
    for name in names:
        pair = find_pair(name)
        if pair is None:
            raise SimError(UNKNOWN_ASSET_PAIR)
        if pair not in chosen:
            chosen.append(pair)
    return chosen


def asset_pairs(params: Mapping[str, Any]) -> dict[str, Any]:
    info = p.text(params, "info") or "info"
    if info not in PAIR_INFO_KINDS:
        raise SimError(invalid_arguments("info"))
    aclass_base = p.text(params, "aclass_base") or "currency"
    if aclass_base not in ("currency", "tokenized_asset"):
        raise SimError(invalid_arguments("aclass_base"))
    chosen = pairs_named(params)
    if aclass_base != "currency":
        return {}
    return {pair.id: pair_info(pair, info) for pair in chosen}


def ticker(params: Mapping[str, Any], board: PriceBoard, book_of: BookOf, now: float) -> Any:
    result = {}
    for pair in pairs_named(params):
        last = board.last[pair.id]
        ask = book_of(pair).best("ask", last)
        bid = book_of(pair).best("bid", last)
        result[pair.id] = board.ticker(
            pair,
            now,
            (ask.price, ask.volume) if ask else None,
            (bid.price, bid.volume) if bid else None,
        )
    return result


def _count(params: Mapping[str, Any], most: int, default: int) -> int:
    text = p.text(params, "count")
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise SimError(invalid_arguments("count"))
    return int(text)


def _since(params: Mapping[str, Any]) -> Decimal:
    text = p.text(params, "since")
    if not text:
        return Decimal(0)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise SimError(invalid_arguments("since")) from None
    if not value.is_finite() or value < 0:
        raise SimError(invalid_arguments("since"))
    return value


def depth(params: Mapping[str, Any], board: PriceBoard, book_of: BookOf, now: float) -> Any:
    pair = pair_of(params)
    count = _count(params, 500, 100)
    last = board.last[pair.id]
    book = book_of(pair)

    def rows(side: str) -> list[list[Any]]:
        return [
            [f"{level.price:.{pair.pair_decimals}f}", f"{level.volume:.{pair.lot_decimals}f}",
             int(now)]
            for level in book.levels(side, last)[:count]
        ]  # fmt: skip

    return {pair.id: {"asks": rows("ask"), "bids": rows("bid")}}


def spread(params: Mapping[str, Any], board: PriceBoard, book_of: BookOf, now: float) -> Any:
    pair = pair_of(params)
    since = _since(params)
    book = book_of(pair)
    book.note_spread(now, board.last[pair.id])
    rows = [
        [when, f"{bid:.{pair.pair_decimals}f}", f"{ask:.{pair.pair_decimals}f}"]
        for when, bid, ask in book.spreads
        if when > since
    ]
    return {pair.id: rows, "last": rows[-1][0] if rows else int(since)}


def trades(params: Mapping[str, Any], board: PriceBoard) -> Any:
    pair = pair_of(params)
    since = _since(params)
    since_ns = int(since) if since > 10**14 else int(since * 1_000_000_000)
    rows, last = board.trades(pair, since_ns, _count(params, 1000, 1000))
    return {pair.id: rows, "last": last}


def ohlc(params: Mapping[str, Any], board: PriceBoard, now: float) -> Any:
    pair = pair_of(params)
    text = p.text(params, "interval") or "1"
    if not text.isdigit() or int(text) not in OHLC_INTERVALS:
        raise SimError(invalid_arguments("interval"))
    rows, last = board.ohlc(pair, int(text), int(_since(params)), now)
    return {pair.id: rows, "last": last}
