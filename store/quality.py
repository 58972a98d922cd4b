"""Data-quality checks of one source's load in a run, stored in ``quality_checks`` and served.

Each check is one query over what the source delivered in the run (``run_seen`` points at the
quotes, unchanged ones included), the previous run's delivery, the run's schema observation
and the other sources' prices (``coin_prices_latest``). They flag; they never change data (what
must not load is stopped earlier, by validation and the drift policies).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from store.queries import money_text


@dataclass(frozen=True)
class Thresholds:
    market_cap_tolerance: float = 0.1
    """|market cap - price x circulating supply| / market cap above this is a mismatch."""
    stale_after: timedelta = timedelta(hours=24)
    """A record observed this long before its run started is stale."""
    null_spike: float = 0.2
    """A field's null share this much above its mean over the previous runs is a spike."""
    price_jump: float = 0.5
    """A coin's price moving by more than this share between consecutive runs."""
    top_n: int = 100
    """Coins of this rank or better that leave a source's listing are reported."""
    count_drop: float = 0.5
    """A delivery this share smaller than the previous run's is a drop."""
    consensus: float = 0.05
    """Deviation from the consensus price that flags a coin (as coin_prices_latest)."""
    outlier_share: float = 0.3
    """Share of a source's coins deviating beyond which the source itself is flagged."""
    peg: float = 0.03
    """A US dollar stablecoin further than this from 1 USD: a listing in another currency
    (the real CoinGecko capture of 2025-03-04, in EUR, has USDT at 0.949)."""


_DELIVERED = """
    delivered as (
        select q.*
        from run_seen as s
        join quotes as q using (coin_id, source, observed_at)
        where s.run_id = $run and s.source = $source
    )"""

_PREVIOUS = """
    previous_run as (
        select max(run_id) as run_id
        from run_seen
        where source = $source and run_id < $run
    ),
    previous as (
        select q.*
        from run_seen as s
        join quotes as q using (coin_id, source, observed_at)
        where s.run_id = (select run_id from previous_run) and s.source = $source
    )"""

_CHECKS = {
    "market_cap_mismatch": f"""
        with {_DELIVERED}
        select 'warning', 'market_cap_usd', coin_id, source_asset_id,
            {money_text("market_cap_usd")},
            (price_usd * circulating_supply)::varchar,
            'market cap differs from price x circulating supply by '
                || round(100 * abs(market_cap_usd::double - price_usd::double
                    * circulating_supply) / market_cap_usd::double, 1) || '%'
        from delivered
        where market_cap_usd > 0 and circulating_supply > 0
            and abs(market_cap_usd::double - price_usd::double * circulating_supply)
                / market_cap_usd::double > $tolerance
    """,
    "supply_above_max": f"""
        with {_DELIVERED}
        select 'warning', 'circulating_supply', coin_id, source_asset_id,
            circulating_supply::varchar, max_supply::varchar,
            'circulating supply is above the maximum supply'
        from delivered
        where max_supply > 0 and circulating_supply > max_supply * 1.000001
    """,
    "stale_records": f"""
        with {_DELIVERED}
        select 'info', 'observed_at', null, null, count(*)::varchar,
            '<= ' || $stale_hours || ' h',
            count(*) || ' records observed more than ' || $stale_hours
                || ' h before the run started (oldest ' || min(observed_at) || ')'
        from delivered
        where observed_at
            < (select started_at from runs where run_id = $run) - to_hours($stale_hours::bigint)
        having count(*) > 0
    """,
    "out_of_range": """
        select 'warning', null, null, null, count(*)::varchar, null,
            count(*) || ' records quarantined for a zero, negative or non-finite value'
        from quarantine
        where first_run_id = $run and source = $source
            and reason in ('price_not_positive', 'negative_value', 'not_finite')
        having count(*) > 0
    """,
    "null_rate_spike": """
        with now as (
            select endpoint, field, 1 - (present - nulls) / records::double as share
            from schema_observations
            where run_id = $run and source = $source and records > 0
        ),
        before as (
            select endpoint, field, avg(1 - (present - nulls) / records::double) as share
            from schema_observations
            where source = $source and records > 0 and run_id in (
                select distinct run_id from schema_observations
                where source = $source and run_id < $run
                order by run_id desc
                limit 5
            )
            group by endpoint, field
        )
        select 'warning', now.field, null, null, round(now.share, 4)::varchar,
            round(before.share, 4)::varchar,
            now.field || ' is null in ' || round(100 * now.share, 1) || '% of records, against '
                || round(100 * before.share, 1) || '% over the previous runs'
        from now
        join before using (endpoint, field)
        where now.share > before.share + $null_spike
    """,
    "price_jump": f"""
        with {_DELIVERED}, {_PREVIOUS}
        select 'warning', 'price_usd', d.coin_id, d.source_asset_id,
            {money_text("d.price_usd")}, {money_text("p.price_usd")},
            'price moved ' || round(100 * (d.price_usd::double / p.price_usd::double - 1), 1)
                || '% since run ' || (select run_id from previous_run)
        from delivered as d
        join previous as p using (coin_id)
        where p.price_usd > 0
            and abs(d.price_usd::double / p.price_usd::double - 1) > $jump
    """,
    "disappeared": f"""
        with {_DELIVERED}, {_PREVIOUS}
        select 'warning', null, p.coin_id, p.source_asset_id, null, p.rank::varchar,
            'rank ' || p.rank || ' in run ' || (select run_id from previous_run)
                || ', absent from this run'
        from previous as p
        where p.rank <= $top_n
            and p.coin_id not in (select coin_id from delivered)
    """,
    "count_drop": f"""
        with {_DELIVERED}, {_PREVIOUS}
        select 'error', null, null, null,
            (select count(*) from delivered)::varchar,
            (select count(*) from previous)::varchar,
            'delivered ' || (select count(*) from delivered) || ' assets, against '
                || (select count(*) from previous) || ' in run '
                || (select run_id from previous_run)
        where (select count(*) from previous) > 0
            and (select count(*) from delivered)
                < (1 - $drop) * (select count(*) from previous)
    """,
    "stablecoin_off_peg": f"""
        with {_DELIVERED}
        select 'error', 'price_usd', coin_id, source_asset_id, {money_text("price_usd")}, '1',
            upper(symbol) || ', a US dollar stablecoin, is quoted at ' || {money_text("price_usd")}
                || ': the listing is probably in another currency'
        from delivered
        where lower(symbol) in ('usdt', 'usdc', 'dai', 'fdusd', 'tusd', 'usdp', 'pyusd')
            -- A ticker alone names no stablecoin (tokens reuse DAI and USDT): only a listing
            -- that values the asset like one, $100M or more in circulation, is held to the peg.
            and market_cap_usd::double >= 1e8
            and abs(price_usd::double - 1) > $peg
    """,
    "consensus_deviation": f"""
        with {_DELIVERED}
        select 'warning', 'price_usd', c.coin_id, c.source_asset_id,
            {money_text("c.price_usd")}, {money_text("c.consensus_price_usd")},
            'price deviates ' || round(100 * c.deviation, 1) || '% from the consensus of '
                || c.sources || ' sources' || case when c.stale then ' (observed more than '
                || '24 h before the newest source)' else '' end
        from coin_prices_latest as c
        where c.source = $source and c.sources >= 2 and abs(c.deviation) > $consensus
            and c.coin_id in (select coin_id from delivered)
    """,
    "consensus_outlier_source": f"""
        with {_DELIVERED},
        compared as (
            select deviation
            from coin_prices_latest
            where source = $source and sources >= 2
                and coin_id in (select coin_id from delivered)
        )
        select 'error', 'price_usd', null, null,
            round(median(deviation), 4)::varchar, '0',
            count(*) filter (where abs(deviation) > $consensus) || ' of ' || count(*)
                || ' coins deviate from the consensus (median ' || round(100 * median(deviation), 1)
                || '%): a listing in another currency or unit?'
        from compared
        having count(*) >= 3
            and count(*) filter (where abs(deviation) > $consensus) > $outlier_share * count(*)
    """,
}


@dataclass(frozen=True)
class Finding:
    run_id: str
    source: str
    check_name: str
    severity: str
    field: str | None
    coin_id: str | None
    source_asset_id: str | None
    observed: str | None
    expected: str | None
    detail: str
    detected_at: datetime


def run_checks(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    source: str,
    *,
    thresholds: Thresholds,
) -> list[Finding]:
    """Every check of :data:`_CHECKS` over the source's load in the run."""
    params = {
        "run": run_id,
        "source": source,
        "tolerance": thresholds.market_cap_tolerance,
        "stale_hours": int(thresholds.stale_after.total_seconds() // 3600),
        "null_spike": thresholds.null_spike,
        "jump": thresholds.price_jump,
        "top_n": thresholds.top_n,
        "drop": thresholds.count_drop,
        "consensus": thresholds.consensus,
        "outlier_share": thresholds.outlier_share,
        "peg": thresholds.peg,
    }
    now = datetime.now(UTC)
    found = []
    for name, sql in _CHECKS.items():
        wanted = {k: v for k, v in params.items() if f"${k}" in sql}
        for row in con.execute(sql, wanted).fetchall():
            severity, field, coin_id, asset, observed, expected, detail = row
            found.append(
                Finding(run_id, source, name, severity, field, coin_id, asset, observed,
                        expected, detail, now)
            )  # fmt: skip
    return found


def record_quality(
    con: duckdb.DuckDBPyConnection, run_id: str, source: str, findings: list[Finding]
) -> None:
    """Replace the source's findings of the run (a retried run checks again)."""
    con.execute("delete from quality_checks where run_id = ? and source = ?", [run_id, source])
    if findings:
        con.executemany(
            "insert into quality_checks values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [list(f.__dict__.values()) for f in findings],
        )


def quality_checks(
    cur: duckdb.DuckDBPyConnection,
    *,
    run_id: str | None = None,
    source: str | None = None,
    severity: str | None = None,
    check_name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[pl.DataFrame, int]:
    """Findings, newest run first, and how many match."""
    conditions, params = [], []
    filters = (("run_id", run_id), ("source", source), ("severity", severity),
               ("check_name", check_name))  # fmt: skip
    for column, value in filters:
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    where = f"where {' and '.join(conditions)}" if conditions else ""
    total = cur.execute(f"select count(*) from quality_checks {where}", params).fetchall()[0][0]
    rows = cur.execute(
        f"""
        select *
        from quality_checks
        {where}
        order by run_id desc, source, check_name, coin_id nulls first
        limit ? offset ?
        """,
        [*params, limit, offset],
    ).pl()
    return rows, int(total)
