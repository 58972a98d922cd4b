"""Small response bodies shaped like what CoinGecko, CoinPaprika and CoinCap really send.

Modelled on the captures in the shared reference payloads (not copied from them): CoinGecko
serves a bare array with integers sometimes written as floats, CoinPaprika a bare array with
nested USD quotes, CoinCap an object whose ``data`` array holds decimal strings next to an
epoch-millisecond ``timestamp``.
"""

from __future__ import annotations

import json
from typing import Any

API_KEY = "kasparro-test-key-7Qx2"
"""Distinctive so that a leak into a URL, message or log is easy to spot."""

COINCAP_TIMESTAMP = 1715904000000


def coingecko_market(n: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"coin-{n}",
        "symbol": f"c{n}",
        "name": f"Coin {n}",
        "current_price": 1000.5 / n,
        "market_cap": 443243318907 // n,
        "market_cap_rank": n,
        "fully_diluted_valuation": None,
        "total_volume": 44434195912,
        "price_change_percentage_24h": -1.00053,
        "circulating_supply": 19109818.0,
        "total_supply": None,
        "max_supply": None,
        "roi": None,
        "last_updated": "2026-11-24T11:58:26.342Z",
    }
    record.update(fields)
    return record


def coingecko_page(first: int, count: int) -> bytes:
    """A CoinGecko markets body with ``count`` coins ranked from ``first``."""
    return json.dumps([coingecko_market(n) for n in range(first, first + count)]).encode()


def coinpaprika_ticker(n: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"c{n}-coin-{n}",
        "name": f"Coin {n}",
        "symbol": f"C{n}",
        "rank": n,
        "circulating_supply": 17972662,
        "total_supply": 17972675,
        "max_supply": 0,
        "beta_value": 0.976905,
        "last_updated": "2026-11-24T11:50:42Z",
        "quotes": {
            "USD": {
                "price": 8196.65269127,
                "volume_24h": 12361157617.967,
                "market_cap": 147315668351,
                "percent_change_24h": -0.88,
            }
        },
    }
    record.update(fields)
    return record


def coinpaprika_tickers(count: int) -> bytes:
    return json.dumps([coinpaprika_ticker(n) for n in range(1, count + 1)]).encode()


def coincap_asset(n: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"coin-{n}",
        "rank": str(n),
        "symbol": f"C{n}",
        "name": f"Coin {n}",
        "supply": "19699693.0000000000000000",
        "maxSupply": None,
        "marketCapUsd": "1315269402102.4076428731440099",
        "volumeUsd24Hr": "7202208890.0214744350826841",
        "priceUsd": "66765.9847339959888143",
        "changePercent24Hr": "2.3460302309865676",
        "vwap24Hr": "66379.1256756531168231",
        "explorer": None,
    }
    record.update(fields)
    return record


def coincap_page(first: int, count: int, timestamp: int = COINCAP_TIMESTAMP) -> bytes:
    assets = [coincap_asset(n) for n in range(first, first + count)]
    return json.dumps({"data": assets, "timestamp": timestamp}).encode()
