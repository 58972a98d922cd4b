"""Comparing two runs: what changed between what ``base`` saw and what ``head`` saw.

* per-source count deltas (fetched, valid, quarantined, inserted, updated, unchanged);
* coins added (seen by head, not base) and removed (seen by base, not head);
* the distribution of price changes of coins both saw (median across sources per run);
* the top movers, and anomalies: a price move beyond ``anomaly_pct`` percent, a listing
  source that delivered records in base and none in head, and head's schema drift and quality
  findings above ``info``.

Coins added and removed, and prices, come from the listings (snapshot sources): a history file
left unchanged, and so skipped, says nothing about which coins exist now.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import duckdb
import polars as pl

from store.drift import drift_events
from store.quality import quality_checks
from store.queries import observed_prices, run_sources, snapshot_sources

COUNTS = ("fetched", "valid", "quarantined", "inserted", "updated", "unchanged")
BUCKETS = (-50.0, -10.0, -1.0, 1.0, 10.0, 50.0)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Comparison:
    sources: pl.DataFrame
    """source, base_status, head_status, and base_/head_/delta_ for each of COUNTS."""
    added: pl.DataFrame
    """coin_id, symbol, name, price."""
    removed: pl.DataFrame
    changes: pl.DataFrame
    """coin_id, symbol, name, base_price, head_price, pct_change, for coins both runs saw."""
    movers: pl.DataFrame
    anomalies: list[dict[str, str]]

    def distribution(self) -> dict[str, float | int | None]:
        pct = self.changes["pct_change"]
        stats: dict[str, float | int | None] = {"compared": pct.len()}
        stats["min"] = pct.min() if pct.len() else None  # type: ignore[assignment]
        for q in QUANTILES:
            stats[f"p{round(q * 100):02d}"] = pct.quantile(q, "linear") if pct.len() else None
        stats["max"] = pct.max() if pct.len() else None  # type: ignore[assignment]
        return stats

    def buckets(self) -> list[dict[str, object]]:
        """Coins per percent-change bucket; ``None`` marks an open end."""
        pct = self.changes["pct_change"]
        edges: list[float | None] = [None, *BUCKETS, None]
        buckets: list[dict[str, object]] = []
        for lo, hi in pairwise(edges):
            inside = pct.is_not_null()
            if lo is not None:
                inside &= pct >= lo
            if hi is not None:
                inside &= pct < hi
            buckets.append({"low": lo, "high": hi, "coins": int(inside.sum())})
        return buckets


def compare_runs(
    cur: duckdb.DuckDBPyConnection,
    base: str,
    head: str,
    *,
    top: int = 10,
    anomaly_pct: float = 50.0,
) -> Comparison:
    counts = run_sources(cur, [base, head])
    # Keyed by role, not run id: a run compared with itself is both sides.
    side = {
        label: counts.filter(pl.col("run_id") == run).select(
            "source",
            pl.col("status").alias(f"{label}_status"),
            *[pl.col(c).alias(f"{label}_{c}") for c in COUNTS],
        )
        for run, label in ((base, "base"), (head, "head"))
    }
    sources = (
        side["base"]
        .join(side["head"], on="source", how="full", coalesce=True)
        .with_columns(pl.col(f"base_{c}", f"head_{c}").fill_null(0) for c in COUNTS)
        .with_columns(
            (pl.col(f"head_{c}") - pl.col(f"base_{c}")).alias(f"delta_{c}") for c in COUNTS
        )
        .sort("source")
    )
    before, after = observed_prices(cur, base), observed_prices(cur, head)
    added = after.join(before, on="coin_id", how="anti").select(
        "coin_id", "symbol", "name", "price"
    )
    removed = before.join(after, on="coin_id", how="anti").select(
        "coin_id", "symbol", "name", "price"
    )
    changes = (
        before.join(after.select("coin_id", pl.col("price").alias("head_price")), on="coin_id")
        .rename({"price": "base_price"})
        .with_columns(
            pct_change=(pl.col("head_price") - pl.col("base_price")) / pl.col("base_price") * 100
        )
        .select("coin_id", "symbol", "name", "base_price", "head_price", "pct_change")
        .sort("coin_id")
    )
    movers = changes.sort(pl.col("pct_change").abs(), "coin_id", descending=[True, False]).head(top)
    anomalies = [
        {
            "kind": "price_move",
            "subject": row["coin_id"],
            "detail": f"price moved {row['pct_change']:+.2f}% "
            f"({row['base_price']:.10g} -> {row['head_price']:.10g} USD)",
        }
        for row in changes.filter(pl.col("pct_change").abs() > anomaly_pct).iter_rows(named=True)
    ]
    anomalies += [
        {
            "kind": "source_dropped",
            "subject": row["source"],
            "detail": f"delivered {row['base_fetched']} records in base and none in head "
            f"(head status: {row['head_status']})",
        }
        for row in sources.filter(
            (pl.col("base_fetched") > 0)
            & (pl.col("head_fetched") == 0)
            & pl.col("source").is_in(snapshot_sources(cur))
        ).iter_rows(named=True)
    ]
    if head != base:  # a run compared with itself changes nothing
        anomalies += _observed(cur, head)
    return Comparison(
        sources, added.sort("coin_id"), removed.sort("coin_id"), changes, movers, anomalies
    )


def _observed(cur: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, str]]:
    """The head run's schema drift and quality findings above ``info`` (store.drift,
    store.quality), in a snapshot published since they are kept."""
    tables = {
        name
        for (name,) in cur.execute(
            "select table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall()
    }
    found: list[dict[str, str]] = []
    if "drift_events" in tables:
        events, _ = drift_events(cur, run_id=run_id, limit=1_000)
        found += [
            {
                "kind": f"drift_{row['drift_class']}",
                "subject": f"{row['source']}.{row['field']}",
                "detail": f"{row['severity']}, policy {row['policy']}: {row['detail']}",
            }
            for row in events.filter(pl.col("severity") != "info").iter_rows(named=True)
        ]
    if "quality_checks" in tables:
        findings, _ = quality_checks(cur, run_id=run_id, limit=1_000)
        found += [
            {
                "kind": f"quality_{row['check_name']}",
                "subject": f"{row['source']}/{row['coin_id']}" if row["coin_id"] else row["source"],
                "detail": f"{row['severity']}: {row['detail']}",
            }
            for row in findings.filter(pl.col("severity") != "info").iter_rows(named=True)
        ]
    return found
