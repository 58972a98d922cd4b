"""Serves the dashboard page and its assets, and ``GET /api/v1/prices``: the consensus of every
listed coin in one request (the page would otherwise ask ``/coins/{id}/prices`` once a coin)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import duckdb
from litestar import get
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from store import consensus
from web.controllers.coins import source_prices
from web.dashboard.schemas import CoinConsensus, ConsensusPage
from web.dependencies import MAX_LIMIT

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/dashboard"


# no-cache: after an upgrade the browser asks again and gets the new page and modules at once.
@get(
    "/",
    include_in_schema=False,
    cache_control=CacheControlHeader(no_cache=True),
    sync_to_thread=False,
)
def dashboard_page() -> File:
    return File(
        STATIC_DIR / "index.html",
        filename="index.html",
        content_disposition_type="inline",
        media_type="text/html",
    )


@get(
    "/api/v1/prices",
    operation_id="listConsensusPrices",
    summary="Every listed coin's latest prices by source and their consensus, largest first",
    description="As GET /api/v1/coins/{coin_id}/prices, for a page of coins at once, ordered by "
    "market cap (the largest a source states at its latest snapshot). Coins that no source "
    "lists now (history rows only) are left out.",
    tags=["coins"],
    sync_to_thread=True,
)
def list_consensus_prices(
    db: NamedDependency[duckdb.DuckDBPyConnection],
    *,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
    offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
) -> ConsensusPage:
    coins, total = consensus.listed_coins(db, limit=limit, offset=offset)
    items = [
        CoinConsensus(
            coin_id=coin.coin_id,
            symbol=coin.symbol,
            name=coin.name,
            market_cap_usd=coin.market_cap_usd,
            sources=len(coin.prices),
            consensus_price_usd=coin.prices[0].consensus_price_usd,
            spread=coin.prices[0].spread,
            newest_observed_at=coin.prices[0].newest_observed_at,
            deviation_threshold=consensus.DEVIATION_THRESHOLD,
            stale_after_seconds=int(consensus.STALE_AFTER.total_seconds()),
            prices=source_prices(coin.prices),
        )
        for coin in coins
    ]
    return ConsensusPage(items=items, total=total, limit=limit, offset=offset)


DASHBOARD_HANDLERS: list[ControllerRouterHandler] = [
    dashboard_page,
    list_consensus_prices,
    create_static_files_router(
        STATIC_PATH,
        [STATIC_DIR],
        name="dashboard",
        cache_control=CacheControlHeader(no_cache=True),
    ),
]
