"""The consensus price of a coin across its sources: reads the ``coin_prices_latest`` view.

The view (``store/migrations/0003_consensus.sql``, where the rules and their reasons are written
down) holds per (coin, source) the source's latest snapshot price beside the coin's consensus:
the exact median of those prices, the spread across them, and per source its deviation from the
consensus and two flags, ``deviates`` and ``stale``. Money leaves as exact text, as in
:mod:`store.queries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from store.errors import from_duckdb
from store.queries import money_text

DEVIATION_THRESHOLD = 0.05
"""A source deviates when abs(price - consensus) / consensus exceeds this (as in the view)."""

STALE_AFTER = timedelta(hours=24)
"""A source is stale when its latest observation is this far behind the coin's newest one."""


@dataclass(frozen=True)
class SourcePrice:
    """One row of ``coin_prices_latest``: a source's latest snapshot of a coin, and the coin's
    consensus (the same on every row of the coin)."""

    coin_id: str
    source: str
    source_asset_id: str
    observed_at: datetime
    price_usd: str
    sources: int
    consensus_price_usd: str
    spread: float | None
    """(max - min) / consensus; null only for a zero consensus, which validation rules out."""
    deviation: float | None
    """(price_usd - consensus) / consensus, signed."""
    deviates: bool
    newest_observed_at: datetime
    stale: bool


def prices_of(con: duckdb.DuckDBPyConnection, coin_id: str) -> list[SourcePrice]:
    """The coin's per-source latest snapshot prices, by source; empty when no source lists it."""
    try:
        rows = con.execute(
            f"""
            select
                coin_id,
                source,
                source_asset_id,
                observed_at,
                {money_text("price_usd")} as price_usd,
                sources,
                {money_text("consensus_price_usd")} as consensus_price_usd,
                spread,
                deviation,
                deviates,
                newest_observed_at,
                stale
            from coin_prices_latest
            where coin_id = ?
            order by source
            """,
            [coin_id],
        ).fetchall()
    except duckdb.CatalogException as exc:
        raise from_duckdb(
            exc, "the DuckDB file has no coin_prices_latest view (schema version 3)", snapshot=True
        ) from exc
    return [SourcePrice(*row) for row in rows]


@dataclass(frozen=True)
class ListedCoin:
    """A coin some source lists now, with each source's latest snapshot price."""

    coin_id: str
    symbol: str
    name: str
    market_cap_usd: str | None
    """The largest market cap a source states at its latest snapshot."""
    prices: list[SourcePrice]


def listed_coins(
    con: duckdb.DuckDBPyConnection, *, limit: int, offset: int
) -> tuple[list[ListedCoin], int]:
    """A page of the coins some source lists now, largest market cap first, and how many such
    coins there are. One query: the view is computed once for the page, not once a coin."""
    try:
        rows = con.execute(
            f"""
            with latest as (
                select * from coin_prices_latest
            ),

            caps as (
                select
                    l.coin_id,
                    max(q.market_cap_usd) as market_cap_usd
                from latest as l
                join quotes as q
                    on q.coin_id = l.coin_id
                    and q.source = l.source
                    and q.observed_at = l.observed_at
                group by l.coin_id
            ),

            ranked as (
                select
                    c.coin_id,
                    c.symbol,
                    c.name,
                    caps.market_cap_usd,
                    row_number() over (
                        order by caps.market_cap_usd desc nulls last, c.coin_id
                    ) as position,
                    count(*) over () as total
                from caps
                join coins as c using (coin_id)
                order by position
                limit ? offset ?
            ),

            final as (
                select
                    r.symbol,
                    r.name,
                    {money_text("r.market_cap_usd")} as market_cap_usd,
                    r.total,
                    l.coin_id,
                    l.source,
                    l.source_asset_id,
                    l.observed_at,
                    {money_text("l.price_usd")} as price_usd,
                    l.sources,
                    {money_text("l.consensus_price_usd")} as consensus_price_usd,
                    l.spread,
                    l.deviation,
                    l.deviates,
                    l.newest_observed_at,
                    l.stale
                from ranked as r
                join latest as l using (coin_id)
                order by r.position, l.source
            )

            select * from final
            """,
            [limit, offset],
        ).fetchall()
        if not rows:
            found = con.execute("select count(distinct coin_id) from coin_prices_latest")
            return [], int(found.fetchall()[0][0])
    except duckdb.CatalogException as exc:
        raise from_duckdb(
            exc, "the DuckDB file has no coin_prices_latest view (schema version 3)", snapshot=True
        ) from exc
    coins: list[ListedCoin] = []
    for symbol, name, market_cap, _total, *price in rows:
        if not coins or coins[-1].coin_id != price[0]:
            coins.append(ListedCoin(price[0], symbol, name, market_cap, []))
        coins[-1].prices.append(SourcePrice(*price))
    return coins, int(rows[0][3])
