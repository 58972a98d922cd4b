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
