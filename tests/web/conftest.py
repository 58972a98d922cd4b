from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from litestar.testing import TestClient

from flows.resolution import read_overrides
from tests.conftest import DEMO_DIR, REPO
from tests.helpers import ingest_without_prefect
from web.app import create_app
from web.settings import WebSettings

MOVED = {"coinpaprika": "eth-ethereum", "coingecko": "ethereum", "coincap": "ethereum"}
NEW_TICKER = {
    "id": "kpt-kasparro-test",
    "name": "Kasparro Test",
    "symbol": "KPT",
    "rank": 999,
    "circulating_supply": 1000,
    "total_supply": 1000,
    "max_supply": 0,
    "last_updated": "2026-11-24T13:00:00Z",
    "quotes": {"USD": {"price": 0.5, "volume_24h": 10.0, "market_cap": 500.0}},
}


@dataclass(frozen=True)
class Published:
    data_dir: Path
    base_run: str
    head_run: str


def _second_capture(tmp: Path) -> Path:
    """The demo recording an hour later: Ethereum up 80% on every API and a new asset on
    CoinPaprika. CoinGecko and CoinPaprika re-date only what changed; CoinCap's capture is a
    new moment, so all its records are new observations."""
    replay = tmp / "replay-2"
    shutil.copytree(DEMO_DIR, replay)
    tickers_path = replay / "coinpaprika" / "tickers.json"
    tickers = json.loads(tickers_path.read_text())
    for ticker in tickers:
        if ticker["id"] == MOVED["coinpaprika"]:
            ticker["last_updated"] = "2026-11-24T13:00:00Z"
            ticker["quotes"]["USD"]["price"] *= 1.8
    tickers_path.write_text(json.dumps([*tickers, NEW_TICKER]))
    markets_path = replay / "coingecko" / "coins_markets" / "page-0001.json"
    markets = json.loads(markets_path.read_text())
    for market in markets:
        if market["id"] == MOVED["coingecko"]:
            market["last_updated"] = "2026-11-24T13:00:00.000Z"
            market["current_price"] *= 1.8
    markets_path.write_text(json.dumps(markets))
    for assets_path in sorted((replay / "coincap" / "assets").glob("page-*.json")):
        assets = json.loads(assets_path.read_text())
        assets["timestamp"] += 3_600_000
        for asset in assets["data"]:
            if asset["id"] == MOVED["coincap"]:
                asset["priceUsd"] = str(Decimal(asset["priceUsd"]) * Decimal("1.8"))
        assets_path.write_text(json.dumps(assets))
    return replay


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A serving snapshot holding two runs over the demo recording (the second one later)."""
    tmp = tmp_path_factory.mktemp("published")
    data_dir = tmp / "data"
    overrides = read_overrides(REPO / "data" / "asset_overrides.csv")
    ingest_without_prefect(
        DEMO_DIR, data_dir, run_id="20261124T120000Z-base00", overrides=overrides
    )
    ingest_without_prefect(
        _second_capture(tmp),
        data_dir,
        run_id="20261124T130000Z-head00",
        overrides=overrides,
    )
    return Published(data_dir, "20261124T120000Z-base00", "20261124T130000Z-head00")


@pytest.fixture
def client(published: Published) -> Iterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(WebSettings(), snapshot_path=published.data_dir / "serving.duckdb")
    with TestClient(app=app) as test_client:
        yield test_client
