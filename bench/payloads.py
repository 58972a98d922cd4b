"""Deterministic, realistic source payloads: a seeded market universe rendered as the response
bodies CoinGecko, CoinPaprika, CoinCap and legacy CSV files really serve.

Everything derives from a seed and an explicit capture moment (no global random state, no wall
clock), so a call gives the same bytes on every machine. Records are plain dicts, so a caller can
plant defects before serialising; records and pages are produced lazily, so benchmarks can stream
millions of quotes without holding them.

The shapes are modelled on real captures, deliberately not on Kasparro's own parser declarations
(a generator built from the parser's constants could not catch the parser being wrong):

* CoinGecko ``/coins/markets`` and CoinPaprika ``/tickers``: JSON numbers, supplies as floats
  (``19960312.0``), tiny prices in exponent notation (``1.258e-09``), ``null`` where unknown
  (CoinPaprika writes ``max_supply: 0`` instead);
* CoinCap ``/assets``: ``{"data": [...], "timestamp": <epoch ms>}``, every number a decimal string
  with 16 fractional digits, computed with exact decimal arithmetic;
* legacy daily-history CSV: Python float text, exponents included (``8.41e-06``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from itertools import count, islice
from typing import Any, Literal, TypeVar

Source = Literal["coingecko", "coinpaprika", "coincap"]
Record = dict[str, Any]
T = TypeVar("T")

SOURCES: tuple[Source, ...] = ("coingecko", "coinpaprika", "coincap")
DAILY_HISTORY_HEADER = ("SNo", "Name", "Symbol", "Date", "High", "Low", "Open", "Close", "Volume",
                        "Marketcap")  # fmt: skip
CANONICAL_HEADER = ("asset_id", "symbol", "name", "observed_at", "price_usd", "market_cap_usd",
                    "volume_24h_usd")  # fmt: skip
DEFAULT_COVERAGE: Mapping[Source, float] = {"coingecko": 0.85, "coinpaprika": 0.85, "coincap": 0.85}

# A 22-digit price times a 34-digit supply must stay exact before quantizing to 16 places; the
# default context (28 digits) would round, or refuse the quantize.
_EXACT = Context(prec=80)
_Q16 = Decimal("1E-16")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- the universe ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """How one source names an asset: ids follow no shared pattern, names mostly agree."""

    id: str
    symbol: str
    name: str


@dataclass(frozen=True, slots=True)
class Asset:
    """One real-world asset: its true market data and how each source lists it (``None``: not
    listed there)."""

    key: str
    """Unique in the universe; the CoinGecko id for well-known coins."""
    symbol: str
    name: str
    price: Decimal
    circulating_supply: Decimal
    total_supply: Decimal | None
    max_supply: Decimal | None
    coingecko: Listing | None
    coinpaprika: Listing | None
    coincap: Listing | None
    stable: bool
    explorer: str | None
    ico_price: Decimal | None
    image_id: int
    launched: date
    ath: Decimal
    ath_at: datetime
    atl: Decimal
    atl_at: datetime
    beta: float

    @property
    def market_cap(self) -> Decimal:
        return _EXACT.multiply(self.price, self.circulating_supply)

    def listing(self, source: Source) -> Listing | None:
        return {"coingecko": self.coingecko, "coinpaprika": self.coinpaprika,
                "coincap": self.coincap}[source]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Universe:
    assets: tuple[Asset, ...]
    """Largest market cap first."""

    def listed_on(self, source: Source) -> list[tuple[Asset, Listing]]:
        """The assets ``source`` lists, in its rank order."""
        return [(a, listing) for a in self.assets if (listing := a.listing(source)) is not None]

    def asset(self, key: str) -> Asset:
        for asset in self.assets:
            if asset.key == key:
                return asset
        raise KeyError(key)


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")


def listings(symbol: str, name: str, sources: Iterable[Source] = SOURCES) -> dict[Source, Listing]:
    """Listings following the usual id patterns: CoinGecko and CoinCap slug the name, CoinPaprika
    prefixes it with the symbol (``uni-universe-token``)."""
    ids: dict[Source, str] = {
        "coingecko": slug(name),
        "coinpaprika": f"{slug(symbol)}-{slug(name)}",
        "coincap": slug(name),
    }
    return {source: Listing(ids[source], symbol, name) for source in sources}


def new_asset(
    rng: random.Random,
    *,
    key: str,
    symbol: str,
    name: str,
    price: Decimal,
    circulating_supply: Decimal,
    total_supply: Decimal | None,
    max_supply: Decimal | None,
    listed: Mapping[Source, Listing],
    as_of: datetime,
    stable: bool = False,
    explorer: str | None = None,
    ico_price: Decimal | None = None,
) -> Asset:
    """An asset with the given market data; its history (launch, all-time high and low, beta) is
    drawn from ``rng`` and ends before ``as_of``."""
    launched = as_of.date() - timedelta(days=rng.randint(400, 4500))
    span = int((as_of - datetime.combine(launched, datetime.min.time(), UTC)).total_seconds())

    def moment() -> datetime:
        # Whole days for about half of them, as CoinGecko's older ATH/ATL dates are.
        at = as_of - timedelta(seconds=rng.randint(86_400, span))
        if rng.random() < 0.5:
            return at.replace(hour=0, minute=0, second=0, microsecond=0)
        return at.replace(microsecond=rng.randint(0, 999) * 1000)

    ath_factor = rng.uniform(1.01, 1.1) if stable else rng.uniform(1.2, 25)
    atl_factor = rng.uniform(0.85, 0.99) if stable else 10 ** rng.uniform(-3, -0.1)
    return Asset(
        key=key,
        symbol=symbol,
        name=name,
        price=price,
        circulating_supply=circulating_supply,
        total_supply=total_supply,
        max_supply=max_supply,
        coingecko=listed.get("coingecko"),
        coinpaprika=listed.get("coinpaprika"),
        coincap=listed.get("coincap"),
        stable=stable,
        explorer=explorer,
        ico_price=ico_price,
        image_id=rng.randint(1, 40_000),
        launched=launched,
        ath=_round_sig(float(price) * ath_factor, 6),
        ath_at=moment(),
        atl=_round_sig(float(price) * atl_factor, 6),
        atl_at=moment(),
        beta=round(rng.uniform(0.01, 0.05) if stable else rng.uniform(0.4, 1.9), 6),
    )


def build_universe(
    *,
    synthetic: int,
    seed: int,
    as_of: datetime,
    extra: Sequence[Asset] = (),
    coverage: Mapping[Source, float] = DEFAULT_COVERAGE,
) -> Universe:
    """The well-known coins, then ``extra`` and ``synthetic`` plausible made-up assets, all below
    the smallest well-known market cap.

    A synthetic asset is listed by each source with probability ``coverage[source]`` (and by at
    least one), so sources overlap without agreeing on the set.
    """
    rng = random.Random(f"{seed}:universe")
    known = _known_assets(rng, as_of)
    fixed = [*known, *extra]
    keys = [a.key for a in fixed]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate asset keys: {sorted(k for k in keys if keys.count(k) > 1)}")
    taken = {*keys, *(slug(a.name) for a in fixed)}
    taken |= {listing.id for a in fixed for s in SOURCES if (listing := a.listing(s))}
    ceiling = float(min(a.market_cap for a in known)) * 0.9
    generated = [
        _synthetic_asset(
            rng, rank=rank, ceiling=ceiling, taken=taken, coverage=coverage, as_of=as_of
        )
        for rank in range(synthetic)
    ]
    assets = sorted([*fixed, *generated], key=lambda a: (-a.market_cap, a.key))
    return Universe(tuple(assets))


# Real ids per source; names differ where the sources really differ (see _SOURCE_NAMES).
# symbol|name|coingecko|coinpaprika|coincap|price|circulating|total|max|ico price|explorer
_KNOWN = """
BTC|Bitcoin|bitcoin|btc-bitcoin|bitcoin|91250.42|19960312|19960312|21000000||https://blockchain.info/
ETH|Ethereum|ethereum|eth-ethereum|ethereum|3051.87|120698412.3712|120698412.3712||0.311|https://etherscan.io/
USDT|Tether|tether|usdt-tether|tether|1.0003|184227561093.51|187011442871.22|||https://www.omniexplorer.info/asset/31
XRP|XRP|ripple|xrp-xrp|xrp|2.2107|60142771393|99985811224|100000000000||https://xrpcharts.ripple.com/#/graph/
BNB|BNB|binancecoin|bnb-binance-coin|binance-coin|905.31|139198221.81|139198221.81|200000000|0.15|https://etherscan.io/token/0xB8c77482e45F1F44dE1745F52C74426C631bDD52
SOL|Solana|solana|sol-solana|solana|142.58|558120447.2071|612338109.5514|||https://explorer.solana.com/
USDC|USD Coin|usd-coin|usdc-usd-coin|usd-coin|0.99985|75412008711.83|75412008711.83|||https://etherscan.io/token/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48
DOGE|Dogecoin|dogecoin|doge-dogecoin|dogecoin|0.15871|151284113383.71|151284113383.71|||http://dogechain.info/chain/Dogecoin
ADA|Cardano|cardano|ada-cardano|cardano|0.47122|36412009155.4|45000000000|45000000000|0.0024|https://cardanoexplorer.com/
TRX|TRON|tron|trx-tron|tron|0.28351|94712441072.9|94712441072.9||0.0019|https://tronscan.org/#/
WETH|Wrapped Ether|weth|weth-weth|weth|3050.11|2621044.118|2621044.118|||https://etherscan.io/token/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2
AVAX|Avalanche|avalanche-2|avax-avalanche|avalanche|15.124|429301847.5|458011882.3|720000000|0.5|https://avascan.info/
SHIB|Shiba Inu|shiba-inu|shib-shiba-inu|shiba-inu|0.000008412|589247212415077|589534551331224|||https://etherscan.io/token/0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce
LINK|Chainlink|chainlink|link-chainlink|chainlink|13.642|696849970.45|1000000000|1000000000|0.11|https://etherscan.io/token/0x514910771af9ca656af840dff83e8264ecf986ca
DOT|Polkadot|polkadot|dot-polkadot|polkadot|2.5813|1632401119.3|1632401119.3|||https://polkascan.io/polkadot
BCH|Bitcoin Cash|bitcoin-cash|bch-bitcoin-cash|bitcoin-cash|548.31|19951203.125|19951203.125|21000000||https://blockchair.com/bitcoin-cash
NEAR|NEAR Protocol|near|near-near-protocol|near-protocol|2.0741|1283012200.1|1283012200.1||0.4|https://explorer.near.org/
LTC|Litecoin|litecoin|ltc-litecoin|litecoin|86.412|76512448.23|84000000|84000000||http://explorer.litecoin.net/chain/Litecoin
UNI|Uniswap|uniswap|uni-uniswap|uniswap|6.9318|629889512.4|1000000000|1000000000||https://etherscan.io/token/0x1f9840a85d5af5bf1d1762f925bdaddc4201f984
MATIC|Polygon|matic-network|matic-polygon|polygon|0.17103|10511212344.8|10511212344.8||0.00263|https://polygonscan.com/
ICP|Internet Computer|internet-computer|icp-internet-computer|internet-computer|4.8211|540212877.4|540212877.4|||https://www.icpexplorer.org/#/
ETC|Ethereum Classic|ethereum-classic|etc-ethereum-classic|ethereum-classic|13.914|153812447.6|153812447.6|210700000||http://gastracker.io/
XLM|Stellar|stellar|xlm-stellar|stellar|0.25314|32108511923.3|50001806812|50001806812||https://dashboard.stellar.org/
XMR|Monero|monero|xmr-monero|monero|385.02|18451209.88|18451209.88|||http://moneroblocks.info/
ATOM|Cosmos|cosmos|atom-cosmos|cosmos|2.7109|480118233.1|480118233.1|||https://www.mintscan.io/cosmos
FIL|Filecoin|filecoin|fil-filecoin|filecoin|1.7402|700123446.2|1958212311.9|1960000000||https://filfox.info/en
HBAR|Hedera|hedera-hashgraph|hbar-hedera-hashgraph|hedera-hashgraph|0.14241|42401882615|50000000000|50000000000||https://hashscan.io/mainnet
AAVE|Aave|aave|aave-new|aave|172.61|15301228.4|16000000|16000000||https://etherscan.io/token/0x7fc66500c84a76ad7e9c93437bfc5ac33e2ddae9
DAI|Dai|dai|dai-dai|multi-collateral-dai|0.99992|4401228731.4|4401228731.4|||https://etherscan.io/token/0x6b175474e89094c44da98b954eedeac495271d0f
WBTC|Wrapped Bitcoin|wrapped-bitcoin|wbtc-wrapped-bitcoin|wrapped-bitcoin|91180.3|128412.0121|128412.0121|||https://etherscan.io/token/0x2260fac5e5542a773aa44fbcfedf7c193bc2c599
LEO|LEO Token|leo-token|leo-leo-token|unus-sed-leo|9.3112|922411388.5|985239504|||https://etherscan.io/token/0x2af5d2ad76741191d15dfe7bf6ac92d4bd912ca3
CRO|Cronos|crypto-com-chain|cro-cryptocom-chain|crypto-com-coin|0.11052|37212441872|100000000000|100000000000||https://cronoscan.com/
VET|VeChain|vechain|vet-vechain|vechain|0.014302|85985041177|85985041177|86712634466||https://explore.vechain.org/
ALGO|Algorand|algorand|algo-algorand|algorand|0.14121|8752211934.7|8752211934.7|10000000000||https://algoexplorer.io/
GRT|The Graph|the-graph|grt-the-graph|the-graph|0.05211|10512337801|10800262816||0.03|https://etherscan.io/token/0xc944e90c64b2c07662a292be6244bdf05cda44a7
ARB|Arbitrum|arbitrum|arb-arbitrum|arbitrum|0.22841|5401221877|10000000000|10000000000||https://arbiscan.io/
OP|Optimism|optimism|op-optimism|optimism|0.32107|1901234771|4294967296|4294967296||https://optimistic.etherscan.io/
APT|Aptos|aptos|apt-aptos|aptos|2.4311|715209133.2|1163224771.9|||https://explorer.aptoslabs.com/
RENDER|Render|render-token|rndr-render-token|render-token|1.7109|518443126.7|532341003.3|644168762||https://etherscan.io/token/0x6de037ef9ad2725eb40118bb1702ebb27e4aeb24
INJ|Injective|injective-protocol|inj-injective-protocol|injective-protocol|5.9213|97301225.4|100000000|100000000|0.4|https://explorer.injective.network/
TON|Toncoin|the-open-network|ton-toncoin|toncoin|1.6334|2521004177.2|5120112744.1|||https://tonscan.org/
SUI|Sui|sui|sui-sui|sui|1.7806|3681227914|10000000000|10000000000||https://suiscan.xyz/mainnet
KAS|Kaspa|kaspa|kas-kaspa|kaspa|0.053812|26701229845|26701229845|28704026601||https://explorer.kaspa.org/
PEPE|Pepe|pepe|pepe-pepe|pepe|0.0000052112|420689899653542|420690000000000|420690000000000||https://etherscan.io/token/0x6982508145454ce325ddbe47a25d4ec3d2311933
SNX|Synthetix Network|havven|hav-havven|synthetix-network-token|0.78112|343201877.5|343201877.5|||https://etherscan.io/token/0xc011a73ee8576fb46f5e1c5751ca3b9fe0af2a6f
"""
_STABLECOINS = frozenset({"tether", "usd-coin", "dai"})
# Real naming differences, keyed by CoinGecko id: BNB kept its old name on CoinPaprika; Synthetix
# dropped "Network" everywhere but CoinGecko.
_SOURCE_NAMES: Mapping[str, Mapping[Source, str]] = {
    "binancecoin": {"coinpaprika": "Binance Coin"},
    "havven": {"coinpaprika": "Synthetix", "coincap": "Synthetix"},
}


def _known_assets(rng: random.Random, as_of: datetime) -> list[Asset]:
    assets = []
    for line in _KNOWN.strip().splitlines():
        symbol, name, gecko, paprika, cap, price, circulating, total, maximum, ico, explorer = (
            line.split("|")
        )
        names = _SOURCE_NAMES.get(gecko, {})
        ids: dict[Source, str] = {"coingecko": gecko, "coinpaprika": paprika, "coincap": cap}
        assets.append(
            new_asset(
                rng,
                key=gecko,
                symbol=symbol,
                name=name,
                price=Decimal(price),
                circulating_supply=Decimal(circulating),
                total_supply=Decimal(total) if total else None,
                max_supply=Decimal(maximum) if maximum else None,
                listed={s: Listing(ids[s], symbol, names.get(s, name)) for s in SOURCES},
                as_of=as_of,
                stable=gecko in _STABLECOINS,
                explorer=explorer or None,
                ico_price=Decimal(ico) if ico else None,
            )
        )
    return assets


_SYLLABLES = ("ka", "lo", "ve", "ra", "zen", "tho", "mi", "qua", "nex", "lu", "sol", "ar", "ion",
              "da", "xi", "no", "ri", "ta", "mo", "fi", "gal", "pra", "ze", "on", "ly", "ca", "vo",
              "ne", "tri", "bel", "kor", "sy")  # fmt: skip
_SUFFIXES = ("", "", "", " Protocol", " Network", " Finance", " Chain", " DAO", " Swap", " AI",
             " Coin", " Token", " Labs", " Inu")  # fmt: skip


def _synthetic_name(rng: random.Random, taken: set[str]) -> str:
    # More syllables the longer it takes, so a big universe cannot run out of names.
    attempt = 0
    while True:
        syllables = rng.randint(2, 3) + attempt // 20
        name = "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()
        name += rng.choice(_SUFFIXES)
        if slug(name) not in taken:
            taken.add(slug(name))
            return name
        attempt += 1


def _synthetic_asset(
    rng: random.Random,
    *,
    rank: int,
    ceiling: float,
    taken: set[str],
    coverage: Mapping[Source, float],
    as_of: datetime,
) -> Asset:
    name = _synthetic_name(rng, taken)
    symbol = name.split()[0][: rng.randint(3, 5)].upper()
    # Market caps fall off like a power law of rank; prices spread over 13 orders of magnitude,
    # a sixth of them memecoin-cheap (down to 2e-10).
    market_cap = max(2_000.0, ceiling / (rank + 1) * rng.uniform(0.6, 1.0))
    exponent = rng.uniform(-9.7, -4) if rng.random() < 0.17 else rng.uniform(-3, 3.5)
    price = _round_sig(10**exponent, 4)
    raw_supply = market_cap / float(price)
    circulating = Decimal(round(raw_supply)) if raw_supply >= 1000 else _round_sig(raw_supply, 8)
    total = None
    if rng.random() >= 0.1:
        total = (
            circulating if rng.random() < 0.4 else Decimal(round(raw_supply * rng.uniform(1, 3)))
        )
    maximum = None
    if total is not None and rng.random() >= 0.45:
        maximum = total if rng.random() < 0.5 else Decimal(round(float(total) * rng.uniform(1, 2)))
    explorer = None
    if (pick := rng.random()) < 0.5:
        explorer = f"https://etherscan.io/token/0x{rng.getrandbits(160):040x}"
    elif pick < 0.75:
        explorer = f"https://explorer.{slug(name)}.org/"
    sources = [s for s in SOURCES if rng.random() < coverage[s]] or [rng.choice(SOURCES)]
    ico_price = None
    if rng.random() < 0.15:
        ico_price = _round_sig(float(price) / rng.uniform(0.5, 200), 4)
    return new_asset(
        rng,
        key=slug(name),
        symbol=symbol,
        name=name,
        price=price,
        circulating_supply=circulating,
        total_supply=total,
        max_supply=maximum,
        listed=listings(symbol, name, sources),
        as_of=as_of,
        explorer=explorer,
        ico_price=ico_price,
    )


# --- shared market movement ----------------------------------------------------------------------


def _stream(seed: int, source: str, moment: datetime) -> random.Random:
    """One generator per (source, capture): sources disagree, captures differ, runs repeat."""
    return random.Random(f"{seed}:{source}:{moment.isoformat()}")


def _quote_price(rng: random.Random, asset: Asset) -> Decimal:
    # Sources sample at slightly different moments: each within 0.4% of the true price (0.02% for
    # stablecoins), so under 1% apart. 18 random decimals make all of CoinCap's 16 places count.
    spread = 200_000_000_000_000 if asset.stable else 4_000_000_000_000_000
    factor = 1 + Decimal(rng.randint(-spread, spread)).scaleb(-18)
    return _EXACT.multiply(asset.price, factor)


def _change(rng: random.Random, asset: Asset, hours: float) -> float:
    """A percent change over ``hours``: a random walk with 3% daily volatility (0.05% pegged)."""
    daily = 0.05 if asset.stable else 3.0
    return max(-99.0, rng.gauss(0, daily * math.sqrt(hours / 24)))


def _turnover(rng: random.Random, asset: Asset) -> float:
    """24h volume as a fraction of market cap; stablecoins trade more of theirs."""
    return rng.uniform(0.05, 0.6) if asset.stable else rng.uniform(0.005, 0.25)


# --- CoinGecko ---------------------------------------------------------------------------------


def coingecko_records(universe: Universe, *, moment: datetime, seed: int) -> Iterator[Record]:
    """``/api/v3/coins/markets?vs_currency=usd&order=market_cap_desc`` records, all pages."""
    rng = _stream(seed, "coingecko", moment)
    for rank, (asset, listing) in enumerate(universe.listed_on("coingecko"), start=1):
        yield _coingecko_record(rng, asset, listing, rank, moment)


def _coingecko_record(
    rng: random.Random, asset: Asset, listing: Listing, rank: int, moment: datetime
) -> Record:
    price = float(_quote_price(rng, asset))
    circulating = float(asset.circulating_supply)
    market_cap = round(price * circulating)
    change = _change(rng, asset, 24)
    price_before = price / (1 + change / 100)
    cap_change = change + rng.uniform(-0.05, 0.05)
    swing = rng.uniform(0.0005, 0.005) if asset.stable else rng.uniform(0.002, 0.03)
    ath, atl = float(asset.ath), float(asset.atl)
    roi = None
    if asset.ico_price is not None:
        times = price / float(asset.ico_price) - 1
        roi = {"times": times, "currency": "usd", "percentage": times * 100}
    return {
        "id": listing.id,
        "symbol": listing.symbol.lower(),
        "name": listing.name,
        "image": f"https://coin-images.coingecko.com/coins/images/{asset.image_id}/large/"
        f"{listing.id}.png?{1_696_500_000 + asset.image_id}",
        "current_price": _sig(price, 6),
        "market_cap": market_cap,
        "market_cap_rank": rank,
        "fully_diluted_valuation": (
            round(price * float(asset.max_supply)) if asset.max_supply is not None else None
        ),
        "total_volume": round(market_cap * _turnover(rng, asset)),
        "high_24h": _sig(max(price, price_before) * (1 + swing * rng.random()), 6),
        "low_24h": _sig(min(price, price_before) * (1 - swing * rng.random()), 6),
        "price_change_24h": price - price_before,
        "price_change_percentage_24h": round(change, 5),
        "market_cap_change_24h": market_cap - market_cap / (1 + cap_change / 100),
        "market_cap_change_percentage_24h": round(cap_change, 5),
        # CoinGecko serves supplies as floats even when whole: 19960312.0.
        "circulating_supply": circulating,
        "total_supply": _float_or_none(asset.total_supply),
        "max_supply": _float_or_none(asset.max_supply),
        "ath": ath,
        "ath_change_percentage": round((price / ath - 1) * 100, 5),
        "ath_date": _iso_ms(asset.ath_at),
        "atl": atl,
        "atl_change_percentage": round((price / atl - 1) * 100, 5),
        "atl_date": _iso_ms(asset.atl_at),
        "roi": roi,
        "last_updated": _iso_ms(moment - timedelta(milliseconds=rng.randint(0, 180_000))),
    }


# --- CoinPaprika -------------------------------------------------------------------------------

_HORIZONS = {"15m": 0.25, "30m": 0.5, "1h": 1, "6h": 6, "12h": 12, "24h": 24, "7d": 168,
             "30d": 720, "1y": 8760}  # fmt: skip


def coinpaprika_records(universe: Universe, *, moment: datetime, seed: int) -> Iterator[Record]:
    """``/v1/tickers?quotes=USD`` records (one unpaged array)."""
    rng = _stream(seed, "coinpaprika", moment)
    for rank, (asset, listing) in enumerate(universe.listed_on("coinpaprika"), start=1):
        yield _coinpaprika_record(rng, asset, listing, rank, moment)


def _coinpaprika_record(
    rng: random.Random, asset: Asset, listing: Listing, rank: int, moment: datetime
) -> Record:
    price = float(_quote_price(rng, asset))
    circulating = asset.circulating_supply
    moves = {horizon: round(_change(rng, asset, hours), 2) for horizon, hours in _HORIZONS.items()}
    ath = float(asset.ath)
    # CoinPaprika stamps whole minutes, a little behind real time.
    updated = moment.replace(second=0, microsecond=0) - timedelta(minutes=rng.randint(0, 4))
    market_cap = round(price * float(circulating))
    return {
        "id": listing.id,
        "name": listing.name,
        "symbol": listing.symbol,
        "rank": rank,
        "circulating_supply": int(circulating),
        "total_supply": int(asset.total_supply or circulating),
        # 0 is CoinPaprika's "unknown", not a supply of zero.
        "max_supply": int(asset.max_supply or 0),
        "beta_value": asset.beta,
        "first_data_at": f"{asset.launched.isoformat()}T00:00:00Z",
        "last_updated": _iso_s(updated),
        "quotes": {
            "USD": {
                # 8 significant digits keep a 1e-10 price within 18 decimal places.
                "price": _sig(price, 8),
                "volume_24h": round(market_cap * _turnover(rng, asset), 3),
                "volume_24h_change_24h": round(rng.uniform(-40, 60), 2),
                "market_cap": market_cap,
                "market_cap_change_24h": round(moves["24h"] + rng.uniform(-0.05, 0.05), 2),
                **{f"percent_change_{horizon}": move for horizon, move in moves.items()},
                "ath_price": _sig(ath, 8),
                "ath_date": _iso_s(asset.ath_at),
                "percent_from_price_ath": round((price / ath - 1) * 100, 2),
            }
        },
    }


# --- CoinCap -----------------------------------------------------------------------------------


def coincap_records(universe: Universe, *, moment: datetime, seed: int) -> Iterator[Record]:
    """``/v3/assets`` records, all pages; the observation time is only in the envelope."""
    rng = _stream(seed, "coincap", moment)
    for rank, (asset, listing) in enumerate(universe.listed_on("coincap"), start=1):
        yield _coincap_record(rng, asset, listing, rank)


def _coincap_record(rng: random.Random, asset: Asset, listing: Listing, rank: int) -> Record:
    price = _quote_price(rng, asset)
    market_cap = _EXACT.multiply(price, asset.circulating_supply)
    turnover = _exact(_turnover(rng, asset))
    return {
        "id": listing.id,
        "rank": str(rank),
        "symbol": listing.symbol,
        "name": listing.name,
        "supply": _dec16(asset.circulating_supply),
        "maxSupply": None if asset.max_supply is None else _dec16(asset.max_supply),
        "marketCapUsd": _dec16(market_cap),
        "volumeUsd24Hr": _dec16(_EXACT.multiply(market_cap, turnover)),
        "priceUsd": _dec16(price),
        "changePercent24Hr": _dec16(_exact(_change(rng, asset, 24))),
        "vwap24Hr": _dec16(_EXACT.multiply(price, 1 + _exact(rng.uniform(-0.006, 0.006)))),
        "explorer": asset.explorer,
    }


# --- bodies ------------------------------------------------------------------------------------


def paginate(records: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(records)
    while page := list(islice(iterator, size)):
        yield page


def json_body(value: object) -> bytes:
    """Compact UTF-8 JSON as the APIs serve it (unicode raw, not ``\\u`` escaped)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def json_pages(records: Iterable[Record], per_page: int) -> Iterator[bytes]:
    """CoinGecko-style pages: each a bare JSON array."""
    return (json_body(page) for page in paginate(records, per_page))


def coincap_pages(records: Iterable[Record], limit: int, moment: datetime) -> Iterator[bytes]:
    """CoinCap pages: each ``{"data": [...], "timestamp": <moment in epoch ms>}``."""
    timestamp = epoch_ms(moment)
    return (json_body({"data": page, "timestamp": timestamp}) for page in paginate(records, limit))


# --- daily history (per-asset endpoints) -------------------------------------------------------


def _daily_walk(asset: Asset, *, end: date, days: int, rng: random.Random) -> list[float]:
    """``days + 1`` prices ending near the asset's price, oldest first."""
    daily = 0.003 if asset.stable else 0.035
    prices = [float(asset.price) * (1 + rng.uniform(-0.004, 0.004))]
    for _ in range(days):
        prices.append(prices[-1] / (1 + rng.gauss(0, daily)))
    prices.reverse()
    return prices


def market_chart_body(
    asset: Asset, *, end: date, days: int, seed: int, hourly_days: int = 0
) -> bytes:
    """CoinGecko ``/coins/{id}/market_chart/range``: ``prices``, ``market_caps`` and
    ``total_volumes``, each ``[[epoch_ms, value], ...]``: one point at 00:00 UTC a day, and for
    the last ``hourly_days`` days one an hour (as a shorter range gets)."""
    rng = random.Random(f"{seed}:coingecko:market_chart:{asset.key}:{end.isoformat()}")
    walk = _daily_walk(asset, end=end, days=days, rng=rng)
    supply = float(asset.circulating_supply)
    prices, caps, volumes = [], [], []
    for offset in range(days):
        day = end - timedelta(days=days - 1 - offset)
        start = datetime.combine(day, datetime.min.time(), UTC)
        hours = 24 if offset >= days - hourly_days else 1
        for hour in range(hours):
            moment = start + timedelta(hours=hour)
            price = _sig(walk[offset] + (walk[offset + 1] - walk[offset]) * hour / 24, 12)
            prices.append([epoch_ms(moment), price])
            caps.append([epoch_ms(moment), _sig(price * supply, 12)])
            volumes.append([epoch_ms(moment), _sig(price * supply * _turnover(rng, asset), 12)])
    return json_body({"prices": prices, "market_caps": caps, "total_volumes": volumes})


def historical_ticks_body(asset: Asset, *, end: date, days: int, seed: int) -> bytes:
    """CoinPaprika ``/tickers/{id}/historical?interval=1d``: one tick a day at 00:00 UTC."""
    rng = random.Random(f"{seed}:coinpaprika:historical:{asset.key}:{end.isoformat()}")
    walk = _daily_walk(asset, end=end, days=days, rng=rng)
    supply = float(asset.circulating_supply)
    ticks = []
    for offset in range(days):
        day = end - timedelta(days=days - 1 - offset)
        price = _sig(walk[offset], 10)
        ticks.append(
            {
                "timestamp": f"{day.isoformat()}T00:00:00Z",
                "price": price,
                "volume_24h": round(price * supply * _turnover(rng, asset)),
                "market_cap": round(price * supply),
            }
        )
    return json_body(ticks)


# --- legacy CSV --------------------------------------------------------------------------------


def daily_history_rows(
    assets: Sequence[Asset], *, end: date, days: int, seed: int
) -> Iterator[list[str]]:
    """Rows of the widespread daily-history layout (:data:`DAILY_HISTORY_HEADER`): per asset, one
    row a day ending on ``end``, closing near the asset's price; ``SNo`` counts across the file."""
    rng = random.Random(f"{seed}:csv:daily_history:{end.isoformat()}")
    number = count(1)
    for asset in assets:
        daily = 0.003 if asset.stable else 0.035
        closes = [float(asset.price) * (1 + rng.uniform(-0.004, 0.004))]
        for _ in range(days):
            closes.append(closes[-1] / (1 + rng.gauss(0, daily)))
        closes.reverse()
        circulating = float(asset.circulating_supply)
        for offset in range(days):
            open_, close = closes[offset], closes[offset + 1]
            high = max(open_, close) * (1 + rng.uniform(0, daily))
            low = min(open_, close) * (1 - rng.uniform(0, daily))
            day = end - timedelta(days=days - 1 - offset)
            # str(float) is what the dataset holds: 8.41e-06 style exponents for small prices.
            yield [
                str(next(number)),
                asset.name,
                asset.symbol,
                f"{day.isoformat()} 23:59:59",
                *(str(_sig(value, 12)) for value in (high, low, open_, close)),
                str(float(round(close * circulating * _turnover(rng, asset)))),
                str(round(close * circulating, 5)),
            ]


def canonical_rows(
    assets: Sequence[Asset], *, moments: Sequence[datetime], seed: int
) -> Iterator[list[str]]:
    """Rows of Kasparro's canonical CSV layout (:data:`CANONICAL_HEADER`), plain decimals."""
    rng = random.Random(f"{seed}:csv:canonical:{moments[0].isoformat()}")
    for asset in assets:
        for moment in moments:
            price = _EXACT.multiply(asset.price, 1 + _exact(rng.uniform(-0.05, 0.05)))
            market_cap = _EXACT.multiply(price, asset.circulating_supply)
            volume = _EXACT.multiply(market_cap, _exact(_turnover(rng, asset)))
            yield [
                asset.key,
                asset.symbol,
                asset.name,
                moment.isoformat(),
                f"{_round_sig(float(price), 8):f}",
                f"{market_cap.quantize(Decimal('0.01'), context=_EXACT):f}",
                f"{volume.quantize(Decimal('0.01'), context=_EXACT):f}",
            ]


def csv_body(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


# --- number and time text ----------------------------------------------------------------------


def epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _iso_ms(moment: datetime) -> str:
    """CoinGecko's time text: ``2026-11-24T11:59:58.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_s(moment: datetime) -> str:
    """CoinPaprika's time text: ``2026-11-24T11:59:00Z``."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sig(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _round_sig(value: float, digits: int) -> Decimal:
    return Decimal(f"{value:.{digits}g}")


def _exact(value: float) -> Decimal:
    """A float draw as an exact 18-place decimal, so CoinCap figures are decimal arithmetic."""
    return Decimal(round(value * 10**18)).scaleb(-18)


def _dec16(value: Decimal) -> str:
    return f"{value.quantize(_Q16, context=_EXACT):f}"


def _float_or_none(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
