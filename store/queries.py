"""Read queries over a Kasparro DuckDB file (the serving snapshot, usually).

Each function takes a cursor and returns a polars frame whose columns are documented here; the web
layer turns them into response schemas (pages of quotes are in :mod:`store.quote_pages`). Money
leaves as text (``23197.5``, ``0.000000001258``): exact, with trailing zeros trimmed, never
through a float.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import polars as pl

from store.errors import from_duckdb
from store.serving import source_quotes_relation


def money_text(column: str) -> str:
    """SQL rendering a DECIMAL as exact text without trailing zeros."""
    return f"rtrim(rtrim({column}::varchar, '0'), '.')"


def _frame(
    cur: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> pl.DataFrame:
    try:
        return cur.execute(sql, params or []).pl()
    except (duckdb.CatalogException, duckdb.BinderException) as exc:
        # The web app may be upgraded before the next ingest migrates and publishes.
        raise from_duckdb(
            exc, "the snapshot lacks a table or column this Kasparro reads", snapshot=True
        ) from exc


def last_run(cur: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """At most one row: run_id, status, started_at, finished_at, error, and ``problems``: a
    list of ``source: status`` for its sources that failed or were degraded."""
    return _frame(
        cur,
        """
        with latest as (
            select run_id, status, started_at, finished_at, error
            from runs
            order by started_at desc
            limit 1
        ),
        problems as (
            select
                run_id,
                list(source || ': ' || status order by source) as problems
            from run_sources
            where run_id in (select run_id from latest)
                and status in ('failed', 'degraded')
            group by run_id
        )
        select
            l.run_id,
            l.status,
            l.started_at,
            l.finished_at,
            l.error,
            coalesce(p.problems, []) as problems
        from latest as l
        left join problems as p using (run_id)
        """,
    )


def coins(cur: duckdb.DuckDBPyConnection, coin_ids: Sequence[str]) -> pl.DataFrame:
    """coin_id, symbol, name, first_seen_at, sources (list) of ``coin_ids``, a page of ids in
    ``coin_id`` order (a slice of :attr:`store.serving.CoinIndex.ordered` or of a symbol's ids).

    Only the page's range of ids is read and only its coins' sources gathered: ordering every
    coin and gathering every coin's sources cost ~40-80 ms per page at 10,000 coins. The range
    is bound by its two ends (binding a thousand ids as parameters costs ~0.1 ms each), then kept
    to the page's ids when a symbol's coins lie apart in it."""
    if not coin_ids:
        return _frame(cur, f"{_COINS_IN_RANGE} limit 0", [None, None, None, None])
    bounds = [coin_ids[0], coin_ids[-1]]
    rows = _frame(cur, _COINS_IN_RANGE, [*bounds, *bounds])
    if rows.height != len(coin_ids):
        rows = rows.filter(pl.col("coin_id").is_in(list(coin_ids)))
    return rows


_COINS_IN_RANGE = """
    with mapped as (
        select
            coin_id,
            list(distinct source order by source) as sources
        from coin_source_ids
        where coin_id between ? and ?
        group by coin_id
    )
    select
        c.coin_id,
        c.symbol,
        c.name,
        c.first_seen_at,
        coalesce(m.sources, []) as sources
    from coins as c
    left join mapped as m using (coin_id)
    where c.coin_id between ? and ?
    order by c.coin_id
    """


def coin(cur: duckdb.DuckDBPyConnection, coin_id: str) -> pl.DataFrame:
    return _frame(
        cur,
        "select coin_id, symbol, name, first_seen_at from coins where coin_id = ?",
        [coin_id],
    )


def coin_source_ids(cur: duckdb.DuckDBPyConnection, coin_id: str) -> pl.DataFrame:
    """source, source_asset_id, method, confidence, evidence (JSON text), first/last_seen_at."""
    return _frame(
        cur,
        """
        select source, source_asset_id, method, confidence, evidence, first_seen_at, last_seen_at
        from coin_source_ids
        where coin_id = ?
        order by source, source_asset_id
        """,
        [coin_id],
    )


def totals(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    row = cur.execute(
        """
        select
            (select count(*) from coins),
            (select count(*) from quotes),
            (select count(*) from quarantine),
            (select count(*) from runs)
        """
    ).fetchall()[0]
    return dict(zip(("coins", "quotes", "quarantined", "runs"), map(int, row), strict=True))


def source_stats(cur: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per source: quotes, coins, quarantined, last success/failure, last error, durations.

    Quotes and coins per source are read from what publishing kept (:mod:`store.serving`)."""
    return _frame(
        cur,
        f"""
        with stored as (
            select source, quotes, coins
            from {source_quotes_relation(cur)}
        ),
        held as (
            select source, count(*) as quarantined
            from quarantine
            group by source
        ),
        attempts as (
            select
                rs.source,
                rs.status,
                rs.error,
                r.started_at,
                coalesce(rs.extract_seconds, 0) + coalesce(rs.transform_seconds, 0)
                    + coalesce(rs.load_seconds, 0) as seconds,
                row_number() over (partition by rs.source order by r.started_at desc) as recency
            from run_sources as rs
            join runs as r using (run_id)
        ),
        history as (
            select
                source,
                max(started_at) filter (where status = 'loaded') as last_success_at,
                -- degraded: loaded in part, which is no success (flows.verdict)
                max(started_at) filter (where status = 'failed') as last_failure_at,
                max(started_at) filter (where status = 'degraded') as last_degraded_at,
                arg_max(error, started_at) filter (
                    where status in ('failed', 'degraded')
                ) as last_error,
                arg_max(status, started_at) as last_status,
                arg_max(seconds, started_at) filter (where status = 'loaded') as last_seconds,
                avg(seconds) filter (where status = 'loaded' and recency <= 10) as avg_seconds,
                count(*) as runs
            from attempts
            group by source
        ),
        sources as (
            select source from stored
            union
            select source from history
        )
        select
            s.source,
            coalesce(st.quotes, 0) as quotes,
            coalesce(st.coins, 0) as coins,
            coalesce(h.quarantined, 0) as quarantined,
            hi.runs,
            hi.last_success_at,
            hi.last_failure_at,
            hi.last_degraded_at,
            hi.last_status,
            hi.last_error,
            hi.last_seconds,
            hi.avg_seconds
        from sources as s
        left join stored as st using (source)
        left join held as h using (source)
        left join history as hi using (source)
        order by s.source
        """,
    )


def run_list(
    cur: duckdb.DuckDBPyConnection,
    *,
    status: str | None = None,
    run_id: str | None = None,
    limit: int = 1,
    offset: int = 0,
) -> pl.DataFrame:
    """run_id, flow_run_id, status, started_at, finished_at, sources, replay_dir, error."""
    conditions = [c for c, v in (("status = ?", status), ("run_id = ?", run_id)) if v is not None]
    params: list[object] = [v for v in (status, run_id) if v is not None]
    where = f"where {' and '.join(conditions)}" if conditions else ""
    return _frame(
        cur,
        f"""
        select
            run_id, flow_run_id, mode, status, started_at, finished_at, sources, replay_dir, error
        from runs
        {where}
        order by started_at desc, run_id desc
        limit ? offset ?
        """,
        [*params, limit, offset],
    )


def run_sources(cur: duckdb.DuckDBPyConnection, run_ids: list[str]) -> pl.DataFrame:
    return _frame(
        cur,
        """
        select
            run_id, source, status, requests, fetched, valid, quarantined, duplicates, inserted,
            updated, unchanged, rounded, extract_seconds, transform_seconds, load_seconds,
            error, repeat_of
        from run_sources
        where list_contains(?, run_id)
        order by run_id, source
        """,
        [run_ids],
    )


def observed_prices(cur: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """What a run saw in the sources' listings (snapshots): per coin, the median price across
    the sources that listed it.

    Columns: coin_id, symbol, name, price (DOUBLE, for comparison only), sources.
    """
    return _frame(
        cur,
        """
        with seen as (
            select d.coin_id, d.source, q.price_usd
            from run_seen as d
            join quotes as q
                on q.coin_id = d.coin_id
                and q.source = d.source
                and q.observed_at = d.observed_at
            -- A listing says what is there now; history files say nothing about that.
            where d.run_id = ? and q.kind = 'snapshot'
        )
        select
            s.coin_id,
            c.symbol,
            c.name,
            median(s.price_usd::double) as price,
            count(distinct s.source) as sources
        from seen as s
        join coins as c using (coin_id)
        group by all
        """,
        [run_id],
    )


def snapshot_sources(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Sources that deliver listings (snapshots), as opposed to history files."""
    rows = cur.execute(
        "select distinct source from coin_source_ids where last_snapshot_at is not null"
    ).fetchall()
    return sorted(str(s) for (s,) in rows)


def source_assets(cur: duckdb.DuckDBPyConnection, source: str, coin_ids: list[str]) -> pl.DataFrame:
    """coin_id, source_asset_id, symbol, name of ``source``'s assets linked to ``coin_ids``."""
    return _frame(
        cur,
        """
        select coin_id, source_asset_id, symbol, name
        from coin_source_ids
        where source = ? and list_contains(?, coin_id)
        order by coin_id, source_asset_id
        """,
        [source, coin_ids],
    )
