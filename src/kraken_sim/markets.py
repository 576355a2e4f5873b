"""The simulator's assets and pairs, named and sized the way Kraken names and sizes them.

Sources for the numbers (see also `shared/reference/kraken-api.md` §4.1 and §5):
- `ordermin`, `costmin`, `tick_size`, `pair_decimals`, `lot_decimals` and `cost_decimals` for
  XXBTZUSD, SOLUSD and XETHXXBT are those of recorded live AssetPairs answers; the EUR pairs use
  Kraken's EUR `costmin` of 0.45; the stablecoin pairs use Kraken's 5-unit minimum.
- Fee tables: Kraken Pro's spot schedule (0.40 % taker / 0.25 % maker below $10k of 30-day volume,
  down to 0.10 % / 0 % above $10M) and its flat stablecoin schedule (0.20 % down to 0 %). The
  simulator has no 30-day volume, so every account pays the first tier.
- Stablecoin and FX pairs (USDTZUSD, USDCUSD, ZEURZUSD) use the flat stablecoin/FX schedule.
- Asset `decimals` / `display_decimals` as Kraken's Assets endpoint reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FeeTable = tuple[tuple[int, Decimal], ...]


@dataclass(frozen=True)
class Asset:
    id: str  # the Balance key: XXBT, ZUSD, SOL
    altname: str  # XBT, USD, SOL
    decimals: int  # ledger precision: balances are kept to this many places
    display_decimals: int

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)


@dataclass(frozen=True)
class Pair:
    id: str  # XXBTZUSD: the key of AssetPairs/Ticker and TradesHistory's `pair`
    altname: str  # XBTUSD: what descr.pair and descr.order show
    wsname: str  # XBT/USD
    base: Asset
    quote: Asset
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int
    ordermin: Decimal
    costmin: Decimal
    tick_size: Decimal
    fees: FeeTable  # taker: (30-day USD volume, percent)
    fees_maker: FeeTable
    leverage: tuple[int, ...]
    default_price: Decimal

    @property
    def taker_rate(self) -> Decimal:
        """The first-tier taker fee as a fraction (0.40 % -> 0.004)."""
        return self.fees[0][1] / 100

    @property
    def maker_rate(self) -> Decimal:
        return self.fees_maker[0][1] / 100

    @property
    def lot_quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.lot_decimals)

    @property
    def price_quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.pair_decimals)

    @property
    def cost_quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.cost_decimals)


def _table(rows: Iterable[tuple[int, str]]) -> FeeTable:
    return tuple((volume, Decimal(percent)) for volume, percent in rows)


CRYPTO_TAKER = _table(
    [(0, "0.40"), (10000, "0.35"), (50000, "0.24"), (100000, "0.22"), (250000, "0.20"),
     (500000, "0.18"), (1000000, "0.16"), (2500000, "0.14"), (5000000, "0.12"),
     (10000000, "0.10")]
)  # fmt: skip
CRYPTO_MAKER = _table(
    [(0, "0.25"), (10000, "0.20"), (50000, "0.14"), (100000, "0.12"), (250000, "0.10"),
     (500000, "0.08"), (1000000, "0.06"), (2500000, "0.04"), (5000000, "0.02"),
     (10000000, "0.00")]
)  # fmt: skip
# Stablecoin and FX markets charge one flat rate whether maker or taker.
STABLE = _table(
    [(0, "0.20"), (50000, "0.16"), (100000, "0.12"), (250000, "0.08"), (500000, "0.04"),
     (1000000, "0.00")]
)  # fmt: skip

ASSETS: dict[str, Asset] = {
    a.id: a
    for a in (
        Asset("XXBT", "XBT", 10, 5),
        Asset("XETH", "ETH", 10, 5),
        Asset("SOL", "SOL", 10, 5),
        Asset("ZUSD", "USD", 4, 2),
        Asset("ZEUR", "EUR", 4, 2),
        Asset("USDT", "USDT", 8, 4),
        Asset("USDC", "USDC", 8, 4),
    )
}


def _pair(
    pair_id: str,
    altname: str,
    wsname: str,
    base: str,
    quote: str,
    *,
    decimals: tuple[int, int, int],
    ordermin: str,
    costmin: str,
    price: str,
    stable: bool = False,
    leverage: tuple[int, ...] = (),
) -> Pair:
    pair_decimals, lot_decimals, cost_decimals = decimals
    return Pair(
        id=pair_id,
        altname=altname,
        wsname=wsname,
        base=ASSETS[base],
        quote=ASSETS[quote],
        pair_decimals=pair_decimals,
        lot_decimals=lot_decimals,
        cost_decimals=cost_decimals,
        ordermin=Decimal(ordermin),
        costmin=Decimal(costmin),
        tick_size=Decimal(1).scaleb(-pair_decimals),
        fees=STABLE if stable else CRYPTO_TAKER,
        fees_maker=STABLE if stable else CRYPTO_MAKER,
        leverage=leverage,
        default_price=Decimal(price),
    )


PAIRS: dict[str, Pair] = {
    p.id: p
    for p in (
        _pair("XXBTZUSD", "XBTUSD", "XBT/USD", "XXBT", "ZUSD", decimals=(1, 8, 5),
              ordermin="0.00005", costmin="0.5", price="60000", leverage=(2, 3, 4, 5)),
        _pair("XXBTZEUR", "XBTEUR", "XBT/EUR", "XXBT", "ZEUR", decimals=(1, 8, 5),
              ordermin="0.00005", costmin="0.45", price="55000", leverage=(2, 3, 4, 5)),
        _pair("XETHZUSD", "ETHUSD", "ETH/USD", "XETH", "ZUSD", decimals=(2, 8, 5),
              ordermin="0.001", costmin="0.5", price="3000", leverage=(2, 3, 4, 5)),
        _pair("XETHZEUR", "ETHEUR", "ETH/EUR", "XETH", "ZEUR", decimals=(2, 8, 5),
              ordermin="0.001", costmin="0.45", price="2750", leverage=(2, 3, 4, 5)),
        _pair("SOLUSD", "SOLUSD", "SOL/USD", "SOL", "ZUSD", decimals=(2, 8, 5),
              ordermin="0.02", costmin="0.5", price="150", leverage=(2, 3)),
        _pair("SOLEUR", "SOLEUR", "SOL/EUR", "SOL", "ZEUR", decimals=(2, 8, 5),
              ordermin="0.02", costmin="0.45", price="138"),
        _pair("XETHXXBT", "ETHXBT", "ETH/XBT", "XETH", "XXBT", decimals=(6, 8, 10),
              ordermin="0.001", costmin="0.00002", price="0.05", leverage=(2, 3, 4, 5)),
        _pair("USDTZUSD", "USDTUSD", "USDT/USD", "USDT", "ZUSD", decimals=(4, 8, 5),
              ordermin="5", costmin="0.5", price="1.0001", stable=True),
        _pair("USDCUSD", "USDCUSD", "USDC/USD", "USDC", "ZUSD", decimals=(4, 8, 5),
              ordermin="5", costmin="0.5", price="1.0000", stable=True),
        # FX: also what TradeBalance values euros with when asked for dollars, and vice versa.
        _pair("ZEURZUSD", "EURUSD", "EUR/USD", "ZEUR", "ZUSD", decimals=(5, 4, 5),
              ordermin="5", costmin="0.5", price="1.08000", stable=True),
    )
}  # fmt: skip

# A fill moves whole lots, so a lot must be a whole number of the base asset's ledger units.
assert all(p.lot_decimals <= p.base.decimals for p in PAIRS.values())

_PAIR_NAMES: dict[str, Pair] = {}
for _p in PAIRS.values():
    for _name in (_p.id, _p.altname, _p.wsname):
        _PAIR_NAMES[_name.upper()] = _p

_ASSET_NAMES: dict[str, Asset] = {}
for _a in ASSETS.values():
    _ASSET_NAMES[_a.id.upper()] = _a
    _ASSET_NAMES[_a.altname.upper()] = _a


def find_pair(name: str) -> Pair | None:
    """The pair called `name` by its id, altname or wsname (case-insensitive), or None."""
    return _PAIR_NAMES.get(name.strip().upper())


def find_asset(name: str) -> Asset | None:
    """The asset called `name` by its id or altname (case-insensitive), or None."""
    return _ASSET_NAMES.get(name.strip().upper())


def _number(value: Decimal) -> float | int:
    """Kraken writes fee percentages as JSON numbers (0.4, 0); this is the one float we emit."""
    return int(value) if value == value.to_integral_value() else float(value)


def _fee_json(table: FeeTable) -> list[list[float | int]]:
    return [[volume, _number(percent)] for volume, percent in table]


def asset_info(asset: Asset) -> dict[str, Any]:
    return {
        "aclass": "currency",
        "altname": asset.altname,
        "decimals": asset.decimals,
        "display_decimals": asset.display_decimals,
        "collateral_value": 1,
        "status": "enabled",
    }


def pair_info(pair: Pair, info: str = "info") -> dict[str, Any]:
    """One AssetPairs entry; `info` selects Kraken's subsets (info, leverage, fees, margin)."""
    leverage = list(pair.leverage)
    if info == "leverage":
        return {"leverage_buy": leverage, "leverage_sell": leverage}
    if info == "fees":
        return {
            "fees": _fee_json(pair.fees),
            "fees_maker": _fee_json(pair.fees_maker),
            "fee_volume_currency": "ZUSD",
        }
    if info == "margin":
        return {"margin_call": 80, "margin_stop": 40}
    return {
        "altname": pair.altname,
        "wsname": pair.wsname,
        "aclass_base": "currency",
        "base": pair.base.id,
        "aclass_quote": "currency",
        "quote": pair.quote.id,
        "lot": "unit",
        "cost_decimals": pair.cost_decimals,
        "pair_decimals": pair.pair_decimals,
        "lot_decimals": pair.lot_decimals,
        "lot_multiplier": 1,
        "leverage_buy": leverage,
        "leverage_sell": leverage,
        "fees": _fee_json(pair.fees),
        "fees_maker": _fee_json(pair.fees_maker),
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": str(pair.ordermin),
        "costmin": str(pair.costmin),
        "tick_size": str(pair.tick_size),
        "status": "online",
    }


def default_prices() -> Mapping[str, Decimal]:
    return {pair_id: pair.default_price for pair_id, pair in PAIRS.items()}
