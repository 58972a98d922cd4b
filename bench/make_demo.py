"""Write the bundled offline demo recording and the curated overrides it needs.

    python -m bench.make_demo [--out data/demo] [--overrides data/asset_overrides.csv]

Deterministic (seed 20261124): every run writes the same bytes. One capture moment,
2026-11-24T12:00:00Z: CoinGecko ``last_updated`` up to 3 minutes before it, CoinPaprika up to 4
(whole minutes), CoinCap's envelope ``timestamp`` exactly it (1795521600000). Layout, one file per
request with the body exactly as served (see ``flows.sources.replay``)::

    coingecko/coins_markets/page-0001.json   250 records (per_page=250)
    coingecko/coins_markets/page-0002.json   50 records, the first repeating page 1's last
    coingecko/coins_list.json                every CoinGecko coin with its contract addresses
                                             (include_platform=true), two not in the markets
    coinpaprika/tickers.json                 293 records, unpaged
    coinpaprika/contracts/<platform>.json    token contract addresses per platform of the
                                             crosswalk (flows/sources/platforms.csv)
    coincap/assets/page-0001.json            100 records (limit=100)
    coincap/assets/page-0002.json            100 records
    coincap/assets/page-0003.json            81 records
    csv/legacy_daily_history.csv             12 assets x 60 days, 2026-09-25 .. 2026-11-23
    csv/kasparro_canonical.csv               4 assets x 5 days, 2026-11-16 .. 2026-11-20
    coingecko/coins_market_chart_range/<id>.json   bitcoin, ethereum: 30 days to 2026-11-23,
                                                   00:00 UTC points, hourly for the last 2 days
    coinpaprika/tickers_historical/<id>.json       btc-bitcoin, eth-ethereum: 30 daily ticks

Traps, with the ids tests may rely on (coin ids are what resolution should give):

Identity
  * The top 45 by market cap are real coins with their real ids (CoinGecko / CoinPaprika /
    CoinCap): bitcoin / btc-bitcoin / bitcoin, ethereum / eth-ethereum / ethereum,
    tether / usdt-tether / tether, binancecoin / bnb-binance-coin / binance-coin,
    solana / sol-solana / solana, usd-coin / usdc-usd-coin / usd-coin,
    dogecoin / doge-dogecoin / dogecoin, cardano / ada-cardano / cardano, ... (the table in
    ``bench.payloads``); all other ids are synthetic and unique.
  * BNB: coingecko binancecoin "BNB", coinpaprika bnb-binance-coin "Binance Coin", coincap
    binance-coin "BNB". Override coinpaprika/bnb-binance-coin -> coin bnb-bnb.
  * Synthetix: coingecko havven "Synthetix Network" (SNX), coinpaprika hav-havven "Synthetix",
    coincap synthetix-network-token "Synthetix". Overrides coinpaprika/hav-havven and
    coincap/synthetix-network-token -> coin snx-synthetix-network.
  * XRP: ids ripple / xrp-xrp / xrp, named "XRP" everywhere: exact matching merges them (xrp-xrp).
  * Symbol collisions (distinct assets, distinct names and prices, same symbol in one source):
    UNI = Uniswap (uniswap / uni-uniswap / uniswap, ~6.93 USD) and Universe Token
    (universe-token / uni-universe-token / universe-token, ~0.0184 USD); WETH = Wrapped Ether
    (weth / weth-weth / weth, ~3050 USD) and Arbitrum Bridged WETH (coingecko
    arbitrum-bridged-weth, coinpaprika weth-arbitrum-bridged-weth, not on CoinCap, ~3045 USD).

Contracts (identity evidence)
  * Ethereum tokens carry their real ERC-20 address in all three sources: CoinCap through its
    explorer URL (BNB's mixed-case, 0xB8c77482...), CoinGecko and CoinPaprika through their
    contract listings. USDC also has Arbitrum and Solana addresses on CoinGecko; Arbitrum
    Bridged WETH has its own Arbitrum address (0x82af4944...) on CoinGecko and CoinPaprika, and
    CoinGecko lists that address under WETH as well (two CoinGecko coins, one address).

Unicode names
  * coincap cardano is named "Cardano\\u200b" (zero-width space; the other sources: "Cardano").
  * coinpaprika doge-dogecoin is named "Dogecoin\\u00a0" (trailing NBSP; the others: "Dogecoin").
  * emoji: "Froggy 🐸" (FROG; froggy / frog-froggy / froggy).
  * "₿ Satoshi Vault" (SATV; satoshi-vault / satv-satoshi-vault / satoshi-vault).
  * "Dot • Matrix" (DOTM; dot-matrix / dotm-dot-matrix / dot-matrix).
  Each appears under the same name in every source that lists it.

Numbers
  * coingecko quadrillion-pepe (QPEPE): current_price exactly 1.258e-09 (written so in the JSON)
    and total_supply 4.2069e+17 (above 1e17).
  * dust-inu (DUSTI): priced about 1.07e-10 in every source.
  * integers as floats: every CoinGecko supply (bitcoin circulating_supply 19960312.0).
  * nulls: ethereum has no max supply (CoinGecko max_supply and fully_diluted_valuation null,
    CoinCap maxSupply null, CoinPaprika max_supply 0); froggy has no total supply either
    (CoinGecko total_supply null); roi is null for bitcoin and an object for ethereum.
  * CoinCap explorer null: froggy.

Bad records (quarantined, expected reason in brackets; every other record loads)
  * coingecko halted-network: current_price null [missing_price].
  * coingecko negative-yield: current_price -0.0421 [price_not_positive].
  * coinpaprika tmrw-tomorrow-chain: last_updated 2027-01-01T00:00:00Z [observed_at_in_future].
  * coincap paused-protocol: priceUsd "n/a" [not_a_number].
  * legacy_daily_history.csv SNo 278 (DOGE, 2026-11-01): Marketcap 14.748.800.659.179.600
    [not_a_number].
  * legacy_daily_history.csv SNo 81 (ETH, 2026-10-15): Date 16-12-13 23:59:59 (read as year 16)
    [observed_at_implausible].
  The assets of the four API records are listed, with good records, by the other sources.

Duplicates
  * coingecko trino-protocol: the last record of page 1 is served again, identical, as
    the first of page 2 (a coin slipped one rank between the two requests).

CSV
  * Daily history: BTC Bitcoin, ETH Ethereum, USDT Tether, XRP XRP, DOGE Dogecoin, ADA Cardano,
    LTC Litecoin, BCH Bitcoin Cash, XLM Stellar, SHIB Shiba Inu (prices like 8.4e-06), LINK
    Chainlink, which resolve to the API coins, and FTC Feathercoin, which no API lists (coin
    ftc-feathercoin). CSV asset ids are SYMBOL:Name (BTC:Bitcoin).
  * Canonical: solana, tron, avalanche-2, polkadot (SOL, TRX, AVAX, DOT), none of them in the
    daily history: two CSV assets with one (symbol, name) would be two coins.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from bench.payloads import (
    CANONICAL_HEADER,
    DAILY_HISTORY_HEADER,
    SOURCES,
    Asset,
    Record,
    Source,
    Universe,
    build_universe,
    canonical_rows,
    coincap_pages,
    coincap_records,
    coingecko_records,
    coinpaprika_records,
    csv_body,
    daily_history_rows,
    historical_ticks_body,
    json_body,
    json_pages,
    listings,
    market_chart_body,
    new_asset,
    slug,
)
from flows.sources.platforms import platforms

SEED = 20261124
CAPTURE = datetime(2026, 11, 24, 12, tzinfo=UTC)
HISTORY_END = date(2026, 11, 23)
HISTORY_DAYS = 60
API_HISTORY_DAYS = 30
HISTORY_KEYS = ("bitcoin", "ethereum")
"""Coins with recorded daily history from the APIs (``kasparro ingest --history``)."""
CANONICAL_DAYS = [datetime(2026, 11, day, tzinfo=UTC) for day in range(16, 21)]
SYNTHETIC = 285
COVERAGE: dict[Source, float] = {"coingecko": 0.87, "coinpaprika": 0.82, "coincap": 0.79}
PER_PAGE = 250
LIMIT = 100

NULL_PRICE_ID = "halted-network"
NEGATIVE_PRICE_ID = "negative-yield"
TINY_PRICE_ID = "quadrillion-pepe"
FUTURE_TICKER_ID = "tmrw-tomorrow-chain"
NA_PRICE_ID = "paused-protocol"
PAGINATION_DUPLICATE_ID = "trino-protocol"
MANGLED_MARKET_CAP = ("DOGE", date(2026, 11, 1), "14.748.800.659.179.600")
TWO_DIGIT_YEAR = ("ETH", date(2026, 10, 15), "16-12-13 23:59:59")

DAILY_HISTORY_KEYS = ("bitcoin", "ethereum", "tether", "ripple", "dogecoin", "cardano",
                      "litecoin", "bitcoin-cash", "stellar", "shiba-inu", "chainlink",
                      "feathercoin")  # fmt: skip
CANONICAL_KEYS = ("solana", "tron", "avalanche-2", "polkadot")

OVERRIDES = (
    ("coinpaprika", "bnb-binance-coin", "bnb-bnb",
     "Binance Coin was renamed BNB; CoinPaprika kept the old name"),
    ("coinpaprika", "hav-havven", "snx-synthetix-network",
     "Synthetix (formerly Havven) is named Synthetix Network on CoinGecko"),
    ("coincap", "synthetix-network-token", "snx-synthetix-network",
     "Synthetix is named Synthetix Network on CoinGecko"),
)  # fmt: skip


def trap_assets() -> list[Asset]:
    """The synthetic assets the traps above are planted on, with fixed ids."""
    rng = random.Random(f"{SEED}:traps")
    # Supplies are (circulating, total, max); market caps stay below the well-known coins'.
    return [
        _trap(rng, "UNI", "Universe Token", "0.0184", ("2100000000", "5000000000", "5000000000")),
        _trap(rng, "WETH", "Arbitrum Bridged WETH", "3045.2", ("61200.413", "61200.413", None),
              sources=("coingecko", "coinpaprika")),
        _trap(rng, "FROG", "Froggy 🐸", "0.00312", ("42000000000", None, None), explorer=False),
        _trap(rng, "SATV", "₿ Satoshi Vault", "0.8412", ("21000000", "21000000", "21000000")),
        _trap(rng, "DOTM", "Dot • Matrix", "0.0571", ("330000000", "1000000000", None)),
        _trap(rng, "QPEPE", "Quadrillion Pepe", "1.258e-09",
              ("150000000000000000", "420690000000000000", None)),
        _trap(rng, "DUSTI", "Dust Inu", "1.07e-10",
              ("91000000000000000", "100000000000000000", None)),
        _trap(rng, "HLT", "Halted Network", "0.0913", ("880000000", "1000000000", "1000000000")),
        _trap(rng, "NYLD", "Negative Yield", "0.0421", ("1200000000", "2000000000", None)),
        _trap(rng, "TMRW", "Tomorrow Chain", "1.204", ("45000000", "100000000", "100000000")),
        _trap(rng, "PAUSE", "Paused Protocol", "0.318", ("220000000", "500000000", None)),
        _trap(rng, "FTC", "Feathercoin", "0.0041", ("236000000", "336000000", "336000000"),
              sources=()),
    ]  # fmt: skip


def _trap(
    rng: random.Random,
    symbol: str,
    name: str,
    price: str,
    supplies: tuple[str, str | None, str | None],
    *,
    sources: Sequence[Source] = SOURCES,
    explorer: bool = True,
) -> Asset:
    circulating, total, maximum = supplies
    return new_asset(
        rng,
        key=slug(name),
        symbol=symbol,
        name=name,
        price=Decimal(price),
        circulating_supply=Decimal(circulating),
        total_supply=None if total is None else Decimal(total),
        max_supply=None if maximum is None else Decimal(maximum),
        listed=listings(symbol, name, sources),
        as_of=CAPTURE,
        explorer=f"https://explorer.{slug(name)}.org/" if explorer else None,
    )


def demo_universe() -> Universe:
    return build_universe(
        synthetic=SYNTHETIC, seed=SEED, as_of=CAPTURE, extra=trap_assets(), coverage=COVERAGE
    )


def _patch(records: list[Record], source_id: str, **fields: object) -> None:
    matches = [record for record in records if record["id"] == source_id]
    if len(matches) != 1:
        raise ValueError(f"expected one record with id {source_id!r}, found {len(matches)}")
    matches[0].update(fields)


def coingecko_bodies(universe: Universe) -> list[bytes]:
    records = list(coingecko_records(universe, moment=CAPTURE, seed=SEED))
    _patch(records, NULL_PRICE_ID, current_price=None)
    _patch(records, NEGATIVE_PRICE_ID, current_price=-0.0421)
    _patch(records, TINY_PRICE_ID, current_price=1.258e-09)
    last = records[PER_PAGE - 1]["id"]
    _expect(last == PAGINATION_DUPLICATE_ID, f"rank {PER_PAGE} is {last}, not the documented one")
    # A coin slipping one rank between the page requests is served again at the top of page 2.
    shifted = records[:PER_PAGE] + records[PER_PAGE - 1 :]
    _expect(PER_PAGE < len(shifted) < 2 * PER_PAGE, f"{len(shifted)} CoinGecko records")
    return list(json_pages(shifted, PER_PAGE))


def coinpaprika_body(universe: Universe) -> bytes:
    records = list(coinpaprika_records(universe, moment=CAPTURE, seed=SEED))
    _patch(records, "doge-dogecoin", name="Dogecoin\u00a0")
    _patch(records, FUTURE_TICKER_ID, last_updated="2027-01-01T00:00:00Z")
    return json_body(records)


def coincap_bodies(universe: Universe) -> list[bytes]:
    records = list(coincap_records(universe, moment=CAPTURE, seed=SEED))
    _patch(records, "cardano", name="Cardano\u200b")
    _patch(records, NA_PRICE_ID, priceUsd="n/a")
    _expect(2 * LIMIT < len(records) < 3 * LIMIT, f"{len(records)} CoinCap records")
    return list(coincap_pages(records, LIMIT, CAPTURE))


EXTRA_CONTRACTS: dict[str, dict[str, str]] = {
    "usd-coin": {
        "arbitrum": "0xaf88d065e77c8cc2239327c5edb3a432268e5831",
        "solana": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
    },
    "arbitrum-bridged-weth": {"arbitrum": "0x82af49447d8a07e3bd95bd0d56f35241523fbab1"},
    "universe-token": {"ethereum": "0x" + hashlib.sha256(b"universe-token").hexdigest()[:40]},
}
"""Contract addresses beyond the ERC-20 one a token's explorer URL names (chain -> address)."""
COINGECKO_ONLY_CONTRACTS: dict[str, dict[str, str]] = {
    # CoinGecko lists the bridged address under WETH too: an address alone proves nothing.
    "weth": {"arbitrum": "0x82af49447d8a07e3bd95bd0d56f35241523fbab1"},
}
UNLISTED_COINS = (
    {"id": "usd-coin-ethereum-bridged", "symbol": "usdc.e", "name": "Bridged USDC (Arbitrum)",
     "platforms": {"arbitrum-one": "0xff970a61a04b1ca14834a43f5de4533ebddb5cc8"}},
    {"id": "staked-ether", "symbol": "steth", "name": "Lido Staked Ether",
     "platforms": {"ethereum": "0xae7ab96520de3a18e5e111b5eaab095312d7fe84"}},
)  # fmt: skip
"""Coins CoinGecko's list holds but its markets pages (the top 300) do not reach."""


def contracts_of(asset: Asset) -> dict[str, str]:
    """Chain -> contract address of an asset: its explorer's token page (Ethereum), and extras."""
    found = {}
    if asset.explorer and "etherscan.io/token/" in asset.explorer:
        found["ethereum"] = asset.explorer.rsplit("/", 1)[1].lower()
    return found | EXTRA_CONTRACTS.get(asset.key, {})


def coins_list_body(universe: Universe) -> bytes:
    """CoinGecko ``coins/list?include_platform=true``: every listed coin, platforms by
    CoinGecko platform id (``{}`` for a native coin)."""
    by_chain = {p.chain: p.coingecko for p in platforms()}
    records: list[Record] = [
        {
            "id": listing.id,
            "symbol": listing.symbol.lower(),
            "name": listing.name,
            "platforms": {
                by_chain[c]: a
                for c, a in (
                    contracts_of(asset) | COINGECKO_ONLY_CONTRACTS.get(asset.key, {})
                ).items()
            },
        }
        for asset, listing in universe.listed_on("coingecko")
    ]
    records.extend(dict(coin) for coin in UNLISTED_COINS)
    return json_body(sorted(records, key=lambda r: str(r["id"])))


def coinpaprika_contracts_bodies(universe: Universe) -> dict[str, bytes]:
    """CoinPaprika ``contracts/{platform}`` for every platform of the crosswalk."""
    bodies: dict[str, list[Record]] = {p.coinpaprika: [] for p in platforms()}
    paprika_of = {p.chain: p.coinpaprika for p in platforms()}
    for asset, listing in universe.listed_on("coinpaprika"):
        for chain, address in contracts_of(asset).items():
            kind = "ERC20" if paprika_of[chain] == "eth-ethereum" else "token"
            bodies[paprika_of[chain]].append({"address": address, "id": listing.id, "type": kind})
    return {platform: json_body(records) for platform, records in bodies.items()}


def daily_history_body(universe: Universe) -> bytes:
    assets = [universe.asset(key) for key in DAILY_HISTORY_KEYS]
    rows = list(daily_history_rows(assets, end=HISTORY_END, days=HISTORY_DAYS, seed=SEED))
    _replace_field(rows, MANGLED_MARKET_CAP, "Marketcap")
    _replace_field(rows, TWO_DIGIT_YEAR, "Date")
    return csv_body(DAILY_HISTORY_HEADER, rows)


def _replace_field(rows: list[list[str]], trap: tuple[str, date, str], column: str) -> None:
    """Overwrite ``column`` of the row of (symbol, day) in ``trap`` with its bad value."""
    symbol, day, value = trap
    at_symbol, at_date = DAILY_HISTORY_HEADER.index("Symbol"), DAILY_HISTORY_HEADER.index("Date")
    stamp = f"{day.isoformat()} 23:59:59"
    (row,) = [r for r in rows if r[at_symbol] == symbol and r[at_date] == stamp]
    row[DAILY_HISTORY_HEADER.index(column)] = value


def canonical_body(universe: Universe) -> bytes:
    assets = [universe.asset(key) for key in CANONICAL_KEYS]
    return csv_body(CANONICAL_HEADER, canonical_rows(assets, moments=CANONICAL_DAYS, seed=SEED))


def overrides_body() -> bytes:
    return csv_body(("source", "source_asset_id", "coin_id", "note"), OVERRIDES)


def recording(universe: Universe) -> dict[str, bytes]:
    """Replay-relative path -> body."""
    files = {
        f"coingecko/coins_markets/page-{n:04d}.json": body
        for n, body in enumerate(coingecko_bodies(universe), start=1)
    }
    files["coingecko/coins_list.json"] = coins_list_body(universe)
    files["coinpaprika/tickers.json"] = coinpaprika_body(universe)
    files |= {
        f"coinpaprika/contracts/{platform}.json": body
        for platform, body in coinpaprika_contracts_bodies(universe).items()
    }
    files |= {
        f"coincap/assets/page-{n:04d}.json": body
        for n, body in enumerate(coincap_bodies(universe), start=1)
    }
    for key in HISTORY_KEYS:
        asset = universe.asset(key)
        assert asset.coingecko is not None
        assert asset.coinpaprika is not None
        files[f"coingecko/coins_market_chart_range/{asset.coingecko.id}.json"] = market_chart_body(
            asset, end=HISTORY_END, days=API_HISTORY_DAYS, seed=SEED, hourly_days=2
        )
        files[f"coinpaprika/tickers_historical/{asset.coinpaprika.id}.json"] = (
            historical_ticks_body(asset, end=HISTORY_END, days=API_HISTORY_DAYS, seed=SEED)
        )
    files["csv/legacy_daily_history.csv"] = daily_history_body(universe)
    files["csv/kasparro_canonical.csv"] = canonical_body(universe)
    return files


def _expect(condition: bool, message: str) -> None:
    # Retuning the universe silently moves the page sizes and ids documented above: fail instead.
    if not condition:
        raise RuntimeError(f"demo recording drifted: {message}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.make_demo",
        description="Write the bundled offline demo recording and data/asset_overrides.csv.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/demo"))
    parser.add_argument("--overrides", type=Path, default=Path("data/asset_overrides.csv"))
    args = parser.parse_args(argv)
    files = {args.out / path: body for path, body in recording(demo_universe()).items()}
    files[args.overrides] = overrides_body()
    for path, body in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        print(f"{len(body):>9,} bytes  {path}")
    print(f"{sum(map(len, files.values())):>9,} bytes  in total")


if __name__ == "__main__":
    main()
