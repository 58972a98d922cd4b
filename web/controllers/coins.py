"""Canonical coins and the source ids resolved to them.

A coin merged into another (an alias, see store.resolution) answers ``301 Moved Permanently`` to
the same path under the surviving coin, for ``/api/v1/coins/{coin_id}`` and every path below it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

import duckdb
import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Redirect

from store import consensus, queries
from store.resolution import alias_target
from web.dependencies import MAX_LIMIT
from web.errors import NotFound
from web.schemas import (
    Coin,
    CoinDetail,
    CoinPage,
    ConsensusPrices,
    SourceId,
    SourceLatestPrice,
)
from web.snapshot import Snapshot
from web.versioned import answer_from_cache, facts_of, respond


def redirect_alias(request: Request[Any, Any, Any]) -> Redirect | None:
    """A merged coin's id redirects, permanently, to the surviving coin's (same sub-path)."""
    coin_id = request.path_params.get("coin_id")
    if not isinstance(coin_id, str):
        return None
    cursor = request.app.state.snapshot.cursor()
    try:
        survivor = alias_target(cursor, coin_id)
    finally:
        cursor.close()
    if survivor is None:
        return None
    # /api/v1/coins/{coin_id}[/rest]: keep the rest and the query string.
    rest = "".join(f"/{part}" for part in request.url.path.split("/")[5:])
    query = f"?{request.url.query}" if request.url.query else ""
    return Redirect(
        f"{CoinsController.path}/{quote(survivor, safe='')}{rest}{query}", status_code=301
    )


async def cached_or_moved(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """A kept answer (or 304) first: it was given for this snapshot after the alias check; then
    the alias redirect."""
    return await answer_from_cache(request) or redirect_alias(request)


def canonical_id(snapshot: Snapshot, coin_id: str) -> str:
    """The coin id as stored, whatever the case it was asked in (the id itself when unknown)."""
    matches = facts_of(snapshot).coins.with_id(coin_id)
    return matches[0] if len(matches) == 1 else coin_id


ALIAS_MOVED = {
    301: ResponseSpec(
        None, description="coin_id was merged into another coin: Location names the survivor"
    )
}


class CoinsController(Controller):
    path = "/api/v1/coins"
    tags = ("coins",)
    before_request = staticmethod(cached_or_moved)

    @get(operation_id="listCoins", summary="Canonical coins", sync_to_thread=True)
    def list_coins(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[duckdb.DuckDBPyConnection],
        snapshot: NamedDependency[Snapshot],
        *,
        symbol: Annotated[
            str | None,
            Parameter(description="Only coins with this symbol (case-insensitive).", max_length=64),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> Response[CoinPage]:
        index = facts_of(snapshot).coins
        matching = index.ordered if symbol is None else index.with_symbol(symbol)
        rows = queries.coins(db, matching[offset : offset + limit])
        page = CoinPage(
            items=msgspec.convert(rows.to_dicts(), list[Coin]),
            total=len(matching),
            limit=limit,
            offset=offset,
        )
        return respond(request, page)

    @get(
        "/{coin_id:str}",
        operation_id="getCoin",
        summary="One coin with every source id mapped to it and why",
        raises=[NotFound],
        responses=ALIAS_MOVED,
        sync_to_thread=True,
    )
    def get_coin(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[duckdb.DuckDBPyConnection],
        snapshot: NamedDependency[Snapshot],
        *,
        coin_id: Annotated[
            str, Parameter(description="Canonical coin id (case-insensitive), e.g. btc-bitcoin.")
        ],
    ) -> Response[CoinDetail]:
        coin_id = canonical_id(snapshot, coin_id)
        found = queries.coin(db, coin_id).to_dicts()
        if not found:
            raise NotFound(f"no coin {coin_id!r}; list coins at /api/v1/coins")
        source_ids = [
            SourceId(**{**row, "evidence": json.loads(row["evidence"])})
            for row in queries.coin_source_ids(db, coin_id).to_dicts()
        ]
        return respond(request, CoinDetail(**found[0], source_ids=source_ids))

    @get(
        "/{coin_id:str}/prices",
        operation_id="getCoinPrices",
        summary="Each source's latest price of a coin and their consensus (median)",
        description="Per source its latest snapshot price, deviation from the median of those "
        "prices and two flags: deviates (beyond deviation_threshold) and stale (more than "
        "stale_after_seconds behind the coin's newest observation). History rows never count.",
        raises=[NotFound],
        sync_to_thread=True,
    )
    def get_coin_prices(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[duckdb.DuckDBPyConnection],
        snapshot: NamedDependency[Snapshot],
        *,
        coin_id: Annotated[
            str, Parameter(description="Canonical coin id (case-insensitive), e.g. btc-bitcoin.")
        ],
    ) -> Response[ConsensusPrices]:
        coin_id = canonical_id(snapshot, coin_id)
        found = queries.coin(db, coin_id).to_dicts()
        if not found:
            raise NotFound(f"no coin {coin_id!r}; list coins at /api/v1/coins")
        rows = consensus.prices_of(db, coin_id)
        coin, first = found[0], rows[0] if rows else None
        prices = ConsensusPrices(
            coin_id=coin["coin_id"],
            symbol=coin["symbol"],
            name=coin["name"],
            sources=len(rows),
            consensus_price_usd=first.consensus_price_usd if first else None,
            spread=first.spread if first else None,
            newest_observed_at=first.newest_observed_at if first else None,
            deviation_threshold=consensus.DEVIATION_THRESHOLD,
            stale_after_seconds=int(consensus.STALE_AFTER.total_seconds()),
            prices=source_prices(rows),
        )
        return respond(request, prices)


def source_prices(rows: Sequence[consensus.SourcePrice]) -> list[SourceLatestPrice]:
    """Each source's latest price of one coin, as the API shows it."""
    return [
        SourceLatestPrice(
            source=row.source,
            source_asset_id=row.source_asset_id,
            price_usd=row.price_usd,
            observed_at=row.observed_at,
            deviation=row.deviation,
            deviates=row.deviates,
            stale=row.stale,
        )
        for row in rows
    ]
