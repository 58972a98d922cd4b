"""Canonical coins and the source ids resolved to them."""

from __future__ import annotations

import json
from typing import Annotated

import duckdb
import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from store import queries
from web.dependencies import MAX_LIMIT
from web.errors import NotFound
from web.schemas import Coin, CoinDetail, CoinPage, SourceId


class CoinsController(Controller):
    path = "/api/v1/coins"
    tags = ("coins",)

    @get(operation_id="listCoins", summary="Canonical coins", sync_to_thread=True)
    def list_coins(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        symbol: Annotated[
            str | None,
            Parameter(description="Only coins with this symbol (case-insensitive).", max_length=64),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> CoinPage:
        rows, total = queries.coins(db, symbol=symbol, limit=limit, offset=offset)
        return CoinPage(
            items=msgspec.convert(rows.to_dicts(), list[Coin]),
            total=total,
            limit=limit,
            offset=offset,
        )

    @get(
        "/{coin_id:str}",
        operation_id="getCoin",
        summary="One coin with every source id mapped to it and why",
        raises=[NotFound],
        sync_to_thread=True,
    )
    def get_coin(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        coin_id: Annotated[str, Parameter(description="Canonical coin id, e.g. btc-bitcoin.")],
    ) -> CoinDetail:
        found = queries.coin(db, coin_id).to_dicts()
        if not found:
            raise NotFound(f"no coin {coin_id!r}; list coins at /api/v1/coins")
        source_ids = [
            SourceId(**{**row, "evidence": json.loads(row["evidence"])})
            for row in queries.coin_source_ids(db, coin_id).to_dicts()
        ]
        return CoinDetail(**found[0], source_ids=source_ids)
