"""What the warehouse knows that bears on resolving a batch's assets: the stored mappings, and,
when the batch holds an asset not mapped yet, the coins, contracts, aliases and operators'
applied accept/reject decisions; and the market lookup (:func:`nearest_quotes`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import polars as pl

from store.schema import ASSET_CONTRACTS, UTC_TIME

MARKET_WINDOW = timedelta(days=7)
"""Quotes further from every asked time are no market evidence."""

MARKET_LOOKUP = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "asked_at": UTC_TIME,
    }
)
"""What :func:`nearest_quotes` is asked: the candidate coin's quote nearest to ``asked_at``."""
MARKET_FOUND = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "quote_source": pl.String(),
        "observed_at": UTC_TIME,
        "price_usd": pl.Float64(),
        "market_cap_usd": pl.Float64(),
        "rank": pl.Int32(),
    }
)
"""What :func:`nearest_quotes` finds."""


PENDING_REVIEW = pl.Schema(
    {"source": pl.String(), "source_asset_id": pl.String(), "candidate_coin_id": pl.String()}
)
"""A pending review row: an asset, and a coin it may be."""


@dataclass(frozen=True)
class StoredEvidence:
    """What the warehouse holds on a batch's assets."""

    mappings: pl.DataFrame
    """(source, source_asset_id, coin_id, symbol, name, match_key, method) of every mapped
    asset."""
    new_assets: bool = False
    """The batch holds an asset to decide (not mapped yet, waiting in review, or linked by a
    method the caller rechecks); only then are the fields below read."""
    pending_review: pl.DataFrame = field(default_factory=PENDING_REVIEW.to_frame)
    """:data:`PENDING_REVIEW` rows of the batch's assets."""
    coin_ids: frozenset[str] = frozenset()
    contracts: pl.DataFrame = field(default_factory=ASSET_CONTRACTS.to_frame)
    """:data:`store.schema.ASSET_CONTRACTS` rows."""
    accepted: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    """(source, asset) -> (coin, decision id) an operator accepted."""
    rejected: frozenset[tuple[str, str, str]] = frozenset()
    """(source, asset, coin) an operator rejected."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Merged coin id -> the coin it lives on as."""


def stored_evidence(
    con: duckdb.DuckDBPyConnection, quotes: pl.DataFrame, recheck: Collection[str] = ()
) -> StoredEvidence:
    """What the warehouse knows that bears on the batch's assets. Contracts, decisions and
    aliases are read only when the batch holds an asset to decide: one not mapped yet, one
    waiting in review, or one linked by a method in ``recheck`` (a re-run over settled assets
    reads none of them)."""
    stored = con.sql(
        "select source, source_asset_id, coin_id, symbol, name, match_key, method "
        "from coin_source_ids"
    ).pl()
    link = ["source", "source_asset_id"]
    batch = quotes.select(link).unique()
    con.register("batch_assets", batch)
    try:
        pending = con.execute(
            """
            select r.source, r.source_asset_id, r.candidate_coin_id
            from resolution_review as r
            semi join batch_assets as b using (source, source_asset_id)
            where r.status = 'pending'
            order by all
            """
        ).pl()
    finally:
        con.unregister("batch_assets")
    weak = stored.join(batch, on=link, how="semi").filter(pl.col("method").is_in(list(recheck)))
    if (
        batch.join(stored, on=link, how="anti").is_empty()
        and pending.is_empty()
        and weak.is_empty()
    ):
        return StoredEvidence(stored)
    coin_ids = frozenset(con.sql("select coin_id from coins").pl()["coin_id"].to_list())
    decisions = con.execute(
        """
        select action, source, source_asset_id, coin_id, decision_id
        from resolution_decisions
        where outcome = 'applied' and action in ('accept', 'reject')
        order by decided_at, decision_id
        """
    ).fetchall()
    accepted: dict[tuple[str, str], tuple[str, str]] = {}
    rejected: set[tuple[str, str, str]] = set()
    for action, source, asset, coin, decision in decisions:
        if action == "accept":
            accepted[(source, asset)] = (coin, decision)
            rejected.discard((source, asset, coin))
        else:
            rejected.add((source, asset, coin))
            if accepted.get((source, asset), ("",))[0] == coin:
                del accepted[(source, asset)]
    return StoredEvidence(
        mappings=stored,
        new_assets=True,
        pending_review=pending.cast(PENDING_REVIEW),
        coin_ids=coin_ids,
        contracts=con.sql(f"select {', '.join(ASSET_CONTRACTS)} from asset_contracts").pl(),
        accepted=accepted,
        rejected=frozenset(rejected),
        aliases=dict(con.execute("select alias_coin_id, coin_id from coin_aliases").fetchall()),
    )


def nearest_quotes(con: duckdb.DuckDBPyConnection, pairs: pl.DataFrame) -> pl.DataFrame:
    """For each (asset, candidate coin, time), the coin's stored quote from another source
    nearest that time (within the market window); of quotes equally near, the first source
    alphabetically. The nearest distance is found by aggregating per pair and its quote joined
    back: ranking every quote in the window with ``row_number()`` measured ~7x slower on a 1M
    rebuild, and DuckDB's ASOF join ~100x slower (and it picks one of equally near quotes by
    storage order). Times are compared as epoch microseconds: ``timestamptz`` arithmetic goes
    through ICU row by row.

    Pairs are asked :data:`PAIRS_PER_QUERY` at a time, by coin: the memory one query needs
    grows with its pairs beyond what DuckDB spills, and the 180k pairs of a 100k-quote first
    load ran out of a 64 MiB limit in one query."""
    found = [MARKET_FOUND.to_frame()]
    by_source = pairs.sort("source", "coin_id", "source_asset_id", "asked_at")
    for (source,), of_source in by_source.group_by("source", maintain_order=True):
        for asked in of_source.iter_slices(PAIRS_PER_QUERY):
            found.append(_nearest(con, str(source), asked))
    return pl.concat(found)


PAIRS_PER_QUERY = 20_000


def _nearest(con: duckdb.DuckDBPyConnection, source: str, asked: pl.DataFrame) -> pl.DataFrame:
    con.register("market_pairs", asked.with_row_index("pair_id"))
    try:
        first, last = asked["asked_at"].min(), asked["asked_at"].max()
        assert isinstance(first, datetime)
        assert isinstance(last, datetime)
        window = [first - MARKET_WINDOW, last + MARKET_WINDOW, MARKET_WINDOW // _MICROSECOND]
        return con.execute(_NEAREST_QUOTES, [source, *window]).pl().cast(MARKET_FOUND)
    finally:
        con.unregister("market_pairs")


_MICROSECOND = timedelta(microseconds=1)
_NEAREST_QUOTES = """
with asked as (
    select
        pair_id,
        source,
        source_asset_id,
        coin_id,
        epoch_us(asked_at) as asked_us
    from market_pairs
),
wanted as (
    select
        q.coin_id,
        q.source,
        q.observed_at,
        epoch_us(q.observed_at) as observed_us,
        q.price_usd,
        q.market_cap_usd,
        q.rank
    from quotes as q
    semi join market_pairs as p on q.coin_id = p.coin_id
    where q.source <> $1
        and q.observed_at between $2 and $3
),
nearest as (
    select
        a.pair_id,
        min(abs(a.asked_us - w.observed_us)) as distance
    from asked as a
    join wanted as w
        on w.coin_id = a.coin_id
        and w.observed_us between a.asked_us - $4 and a.asked_us + $4
    group by a.pair_id
),
final as (
    select
        a.source,
        a.source_asset_id,
        a.coin_id,
        w.source as quote_source,
        w.observed_at,
        w.price_usd::double as price_usd,
        w.market_cap_usd::double as market_cap_usd,
        w.rank
    from asked as a
    join nearest as n using (pair_id)
    join wanted as w
        on w.coin_id = a.coin_id
        and abs(a.asked_us - w.observed_us) = n.distance
    qualify row_number() over (partition by a.pair_id order by w.source) = 1
)
select * from final
"""
