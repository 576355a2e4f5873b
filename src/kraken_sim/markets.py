"""The simulator's assets and pairs, named and sized the way Kraken names and sizes them.

Where every number comes from (nothing here is made up; a field without a recorded value says
which rule filled it):
- The ten original pairs (XXBTZUSD ... ZEURZUSD) keep the values recorded for the simulator's
  first issue: `ordermin`, `costmin`, `tick_size`, `pair_decimals`, `lot_decimals` and
  `cost_decimals` of XXBTZUSD, SOLUSD and XETHXXBT as recorded live AssetPairs answers show them;
  the EUR pairs use Kraken's EUR `costmin` of 0.45; the stablecoin pairs Kraken's 5-unit minimum.
  The 2021 catalogue below agrees on the others' precision (XBT/EUR 0.1, ETH/EUR 0.01, USDT/USD
  and USDC/USD 0.0001, EUR/USD 0.00001). Later recordings (2026) agree on XXBTZUSD and XETHXXBT
  and add `execution_venue: "international"` (served for every pair); they show SOL's
  `ordermin` at 0.06 where the simulator keeps 0.02 (the daemon's tests and paper mode size SOL
  copies against 0.02) and Kraken's `collateral_value` of 0.99 for XBT and ETH and
  0.925 for SOL where the simulator keeps 1 (see `Asset.collateral_value`).
- The other pairs (`EXTRA_PAIRS`): ids, altnames, bases and quotes and `pair_decimals` (hence
  `tick_size` = 10^-pair_decimals) from a statically recorded Kraken Spot catalogue dated
  2021-02-07 (Weeeeeezy/alg `UHFTCore/Venues/KrakenSpot/SecDefs.cpp`); XDGUSD's precision and
  cost decimals from a live AssetPairs recording of 2026-09-25 (a trading adapter's
  test fixture `KrakenPayloads.cs`).
- `ordermin` is set per base asset on Kraken (the recorded XBT/USD and XBT/EUR, SOL/USD and
  SOL/EUR rows agree): the values are a live-verified table of 2026-07-03 (a Kraken trading
  bot's `config.py`: XRP 1.65, DOGE 50, LTC 0.1, ADA 20, AAVE 0.05, UNI 1.5, DOT 3.9, BCH 0.01,
  ALGO 41, TRX 16, ZEC 0.01; XBT 0.00005, ETH 0.001).
- `costmin` per quote currency, as recorded: USD 0.5, EUR 0.45, XBT 0.00002, USDT 0.5 (ccxt's
  recorded XBT/USDT and ETH/USDT markets).
- `lot_decimals` 8: recorded for every XBT, ETH, SOL and XDG pair; the 2021 catalogue carries no
  lot precision, so the other pairs use the same 8.
- `cost_decimals`: recorded rows where there are some (5 up to 5 price decimals, XDGUSD 9,
  ETHXBT 10); otherwise the same pattern: 5 when `pair_decimals` <= 5, else `pair_decimals` + 2;
  pairs quoted in XBT 10 (XBT's ledger decimals).
- Asset `decimals` / `display_decimals` as Kraken's Assets endpoint reports them: Kraken's support
  article on API symbols (LTC 10/5, TRX 8/6, UNI 10/5, USDT and USDC 8/4), recorded Assets
  answers in client libraries (XRP 8/5, XDG 8/2, ADA 8/6, AAVE 10/5, ALGO 8/5, BCH 10/5,
  ZEC 10/5) and, for DOT (10/8), a client library's test fixture only.
- Fee tables: Kraken Pro's spot schedule (0.40 % taker / 0.25 % maker below $10k of 30-day
  volume, down to 0.10 % / 0 % above $10M) and its flat stablecoin schedule (0.20 % down to 0 %)
  for stablecoin and FX pairs. The simulator has no 30-day volume, so every account pays the
  first tier.
- Starting prices of the other pairs are not market data: one round USD price per base asset
  (`REFERENCE_USD`), converted with the catalogue's own EUR/USD (1.08), XBT/USD (60000) and
  USDT/USD (1.0001) and rounded to the pair's tick, so that the catalogue's prices agree with
  each other (no triangle in them is off by more than a tick).

Names: a pair is found by its id (XXBTZUSD), altname (XBTUSD), wsname (XBT/USD) or a
`BASE/QUOTE` name using any of the assets' names, including the common ones Kraken's newer
APIs use (BTC for XBT, DOGE for XDG): `BTC/USD`, `ETH/BTC`, `DOGE/EUR`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

FeeTable = tuple[tuple[int, Decimal], ...]


@dataclass(frozen=True)
class Asset:
    id: str  # the Balance key: XXBT, ZUSD, SOL
    altname: str  # XBT, USD, SOL
    decimals: int  # ledger precision: balances are kept to this many places
    display_decimals: int
    # Kraken's Assets `collateral_value`: how much of the asset counts towards the trade balance
    # (TradeBalance `tb`, Kraken's "equity currencies"); 0 = not a collateral currency.
    collateral_value: Decimal = Decimal(1)

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
        # Recorded collateral_value 0.925 (2026-09-25). The other assets below have no recorded
        # collateral value, so the simulator counts them as no collateral: they are in
        # TradeBalance's `eb` but not in `tb`/`e`.
        Asset("XXDG", "XDG", 8, 2, Decimal("0.925")),
        Asset("XXRP", "XRP", 8, 5, Decimal(0)),
        Asset("XLTC", "LTC", 10, 5, Decimal(0)),
        Asset("ADA", "ADA", 8, 6, Decimal(0)),
        Asset("AAVE", "AAVE", 10, 5, Decimal(0)),
        Asset("ALGO", "ALGO", 8, 5, Decimal(0)),
        Asset("BCH", "BCH", 10, 5, Decimal(0)),
        Asset("XZEC", "ZEC", 10, 5, Decimal(0)),
        Asset("TRX", "TRX", 8, 6, Decimal(0)),
        Asset("UNI", "UNI", 10, 5, Decimal(0)),
        Asset("DOT", "DOT", 10, 8, Decimal(0)),
    )
}

# The names Kraken's newer APIs (WebSocket v2, `BTC/USD` pair names) use for two old codes.
COMMON_NAMES = {"XXBT": "BTC", "XXDG": "DOGE"}


def _pair(
    pair_id: str,
    altname: str,
    wsname: str,
    base: str,
    quote: str,
    *,
    decimals: tuple[int, int, int],
    ordermin: str | Decimal,
    costmin: str | Decimal,
    price: str | Decimal,
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

# Kraken's per-base-asset order minimums (module docstring) for the bases of EXTRA_PAIRS.
ORDERMIN = {
    "XXBT": "0.00005", "XETH": "0.001", "XXRP": "1.65", "XXDG": "50", "XLTC": "0.1", "ADA": "20",
    "AAVE": "0.05", "UNI": "1.5", "DOT": "3.9", "BCH": "0.01", "ALGO": "41", "TRX": "16",
    "XZEC": "0.01", "USDT": "5", "USDC": "5",
}  # fmt: skip
# Kraken's cost minimum per quote currency (module docstring).
COSTMIN = {"ZUSD": "0.5", "ZEUR": "0.45", "XXBT": "0.00002", "USDT": "0.5"}
# Starting prices: one round USD price per base asset (not market data; module docstring).
REFERENCE_USD = {
    "XXBT": Decimal(60000), "XETH": Decimal(3000), "XXRP": Decimal("2.5"), "XXDG": Decimal("0.2"),
    "XLTC": Decimal(90), "ADA": Decimal("0.7"), "AAVE": Decimal(250), "ALGO": Decimal("0.25"),
    "BCH": Decimal(450), "XZEC": Decimal(40), "TRX": Decimal("0.25"), "UNI": Decimal(9),
    "DOT": Decimal(5), "USDT": Decimal("1.0001"), "USDC": Decimal(1),
}  # fmt: skip
# What one unit of each quote currency is worth in USD, at the catalogue's own prices.
QUOTE_USD = {"ZUSD": Decimal(1), "ZEUR": Decimal("1.08"), "XXBT": Decimal(60000),
             "USDT": Decimal("1.0001")}  # fmt: skip
STABLE_BASES = frozenset({"USDT", "USDC"})

# (id, altname, wsname, base, quote, pair_decimals) as the 2021 catalogue lists them; XDGUSD's
# precision as recorded in 2026.
_EXTRA_ROWS = (
    ("XXRPZUSD", "XRPUSD", "XRP/USD", "XXRP", "ZUSD", 5),
    ("XXRPZEUR", "XRPEUR", "XRP/EUR", "XXRP", "ZEUR", 5),
    ("XXRPXXBT", "XRPXBT", "XRP/XBT", "XXRP", "XXBT", 8),
    ("XRPUSDT", "XRPUSDT", "XRP/USDT", "XXRP", "USDT", 5),
    ("XDGUSD", "XDGUSD", "XDG/USD", "XXDG", "ZUSD", 7),
    ("XDGEUR", "XDGEUR", "XDG/EUR", "XXDG", "ZEUR", 7),
    ("XXDGXXBT", "XDGXBT", "XDG/XBT", "XXDG", "XXBT", 8),
    ("XLTCZUSD", "LTCUSD", "LTC/USD", "XLTC", "ZUSD", 2),
    ("XLTCZEUR", "LTCEUR", "LTC/EUR", "XLTC", "ZEUR", 2),
    ("XLTCXXBT", "LTCXBT", "LTC/XBT", "XLTC", "XXBT", 6),
    ("LTCUSDT", "LTCUSDT", "LTC/USDT", "XLTC", "USDT", 5),
    ("ADAUSD", "ADAUSD", "ADA/USD", "ADA", "ZUSD", 6),
    ("ADAEUR", "ADAEUR", "ADA/EUR", "ADA", "ZEUR", 6),
    ("ADAXBT", "ADAXBT", "ADA/XBT", "ADA", "XXBT", 8),
    ("ADAUSDT", "ADAUSDT", "ADA/USDT", "ADA", "USDT", 6),
    ("AAVEUSD", "AAVEUSD", "AAVE/USD", "AAVE", "ZUSD", 2),
    ("AAVEEUR", "AAVEEUR", "AAVE/EUR", "AAVE", "ZEUR", 2),
    ("AAVEXBT", "AAVEXBT", "AAVE/XBT", "AAVE", "XXBT", 6),
    ("ALGOUSD", "ALGOUSD", "ALGO/USD", "ALGO", "ZUSD", 5),
    ("ALGOEUR", "ALGOEUR", "ALGO/EUR", "ALGO", "ZEUR", 5),
    ("ALGOXBT", "ALGOXBT", "ALGO/XBT", "ALGO", "XXBT", 8),
    ("BCHUSD", "BCHUSD", "BCH/USD", "BCH", "ZUSD", 2),
    ("BCHEUR", "BCHEUR", "BCH/EUR", "BCH", "ZEUR", 2),
    ("BCHXBT", "BCHXBT", "BCH/XBT", "BCH", "XXBT", 5),
    ("BCHUSDT", "BCHUSDT", "BCH/USDT", "BCH", "USDT", 2),
    ("XZECZUSD", "ZECUSD", "ZEC/USD", "XZEC", "ZUSD", 2),
    ("XZECZEUR", "ZECEUR", "ZEC/EUR", "XZEC", "ZEUR", 3),
    ("XZECXXBT", "ZECXBT", "ZEC/XBT", "XZEC", "XXBT", 5),
    ("TRXUSD", "TRXUSD", "TRX/USD", "TRX", "ZUSD", 6),
    ("TRXEUR", "TRXEUR", "TRX/EUR", "TRX", "ZEUR", 6),
    ("TRXXBT", "TRXXBT", "TRX/XBT", "TRX", "XXBT", 10),
    ("UNIUSD", "UNIUSD", "UNI/USD", "UNI", "ZUSD", 3),
    ("UNIEUR", "UNIEUR", "UNI/EUR", "UNI", "ZEUR", 3),
    ("UNIXBT", "UNIXBT", "UNI/XBT", "UNI", "XXBT", 7),
    ("DOTUSD", "DOTUSD", "DOT/USD", "DOT", "ZUSD", 4),
    ("DOTEUR", "DOTEUR", "DOT/EUR", "DOT", "ZEUR", 4),
    ("DOTXBT", "DOTXBT", "DOT/XBT", "DOT", "XXBT", 8),
    ("DOTUSDT", "DOTUSDT", "DOT/USDT", "DOT", "USDT", 4),
    ("XBTUSDT", "XBTUSDT", "XBT/USDT", "XXBT", "USDT", 1),
    ("ETHUSDT", "ETHUSDT", "ETH/USDT", "XETH", "USDT", 2),
    ("USDTEUR", "USDTEUR", "USDT/EUR", "USDT", "ZEUR", 4),
    ("USDCEUR", "USDCEUR", "USDC/EUR", "USDC", "ZEUR", 4),
    ("USDCUSDT", "USDCUSDT", "USDC/USDT", "USDC", "USDT", 4),
)
_RECORDED_COST_DECIMALS = {"XDGUSD": 9}


def _cost_decimals(pair_id: str, quote: str, pair_decimals: int) -> int:
    if pair_id in _RECORDED_COST_DECIMALS:
        return _RECORDED_COST_DECIMALS[pair_id]
    if quote == "XXBT":
        return ASSETS["XXBT"].decimals
    return 5 if pair_decimals <= 5 else pair_decimals + 2


def _starting_price(base: str, quote: str, pair_decimals: int) -> Decimal:
    tick = Decimal(1).scaleb(-pair_decimals)
    return (REFERENCE_USD[base] / QUOTE_USD[quote]).quantize(tick, rounding=ROUND_HALF_EVEN)


EXTRA_PAIRS: tuple[Pair, ...] = tuple(
    _pair(pair_id, altname, wsname, base, quote,
          decimals=(pd, 8, _cost_decimals(pair_id, quote, pd)),
          ordermin=ORDERMIN[base], costmin=COSTMIN[quote],
          price=_starting_price(base, quote, pd), stable=base in STABLE_BASES)
    for pair_id, altname, wsname, base, quote, pd in _EXTRA_ROWS
)  # fmt: skip
PAIRS.update((pair.id, pair) for pair in EXTRA_PAIRS)

# A fill moves whole lots, so a lot must be a whole number of the base asset's ledger units.
assert all(p.lot_decimals <= p.base.decimals for p in PAIRS.values())


def _asset_names(asset: Asset) -> tuple[str, ...]:
    common = COMMON_NAMES.get(asset.id)
    return (asset.id, asset.altname) if common is None else (asset.id, asset.altname, common)


_ASSET_NAMES: dict[str, Asset] = {}
for _a in ASSETS.values():
    for _name in _asset_names(_a):
        _ASSET_NAMES[_name.upper()] = _a

_PAIR_NAMES: dict[str, Pair] = {}
_PAIRS_BY_ASSETS: dict[tuple[str, str], Pair] = {}
for _p in PAIRS.values():
    for _name in (_p.id, _p.altname, _p.wsname):
        _PAIR_NAMES[_name.upper()] = _p
    _PAIRS_BY_ASSETS[(_p.base.id, _p.quote.id)] = _p


def find_pair(name: str) -> Pair | None:
    """The pair called `name` (case-insensitive): its id, altname or wsname, or `BASE/QUOTE`
    with any names of the two assets (`BTC/USD`, `XBT/USD`, `ETH/BTC`, `DOGE/EUR`); else None."""
    key = name.strip().upper()
    found = _PAIR_NAMES.get(key)
    if found is not None or key.count("/") != 1:
        return found
    base_name, quote_name = key.split("/")
    base, quote = _ASSET_NAMES.get(base_name), _ASSET_NAMES.get(quote_name)
    if base is None or quote is None:
        return None
    return _PAIRS_BY_ASSETS.get((base.id, quote.id))


def find_asset(name: str) -> Asset | None:
    """The asset called `name` by its id, altname or common name (BTC, DOGE), case-insensitive,
    or None."""
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
        "collateral_value": _number(asset.collateral_value),
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
        "ordermin": f"{pair.ordermin:f}",
        "costmin": f"{pair.costmin:f}",
        "tick_size": f"{pair.tick_size:f}",
        "status": "online",
        "execution_venue": "international",
    }


def default_prices() -> Mapping[str, Decimal]:
    return {pair_id: pair.default_price for pair_id, pair in PAIRS.items()}
