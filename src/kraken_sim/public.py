"""Kraken's public endpoints: Time, SystemStatus, Assets, AssetPairs, Ticker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kraken_sim import params as p
from kraken_sim.errors import UNKNOWN_ASSET, UNKNOWN_ASSET_PAIR, SimError, invalid_arguments
from kraken_sim.markets import ASSETS, PAIRS, Pair, asset_info, find_asset, find_pair, pair_info
from kraken_sim.prices import PriceBoard

PAIR_INFO_KINDS = ("info", "leverage", "fees", "margin")


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


def ticker(params: Mapping[str, Any], board: PriceBoard, now: float) -> dict[str, Any]:
    return {pair.id: board.ticker(pair, now) for pair in pairs_named(params)}
