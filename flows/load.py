"""Load one source's validated batch: resolve entities and merge, all in one transaction.

Coins, mappings, quotes, quarantine, the run's observations, the source's checkpoint and its
ledger row commit together or not at all. Resolution reads the stored mappings inside the same
transaction, and the flow is the warehouse's only writer, so decisions never race.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

import duckdb
import polars as pl

from flows.resolution import Override, Resolution, resolve
from flows.sources import SOURCE_NAMES
from flows.transform import Validated
from store import merge, runs
from store.connection import transaction
from store.schema import QUOTES, QUOTES_KEY, RUN_OBSERVATIONS


def load_source(
    con: duckdb.DuckDBPyConnection,
    validated: Validated,
    result: runs.SourceResult,
    overrides: dict[tuple[str, str], Override],
    checkpoints: Mapping[str, str] | None = None,
) -> Resolution:
    """Merge ``validated`` and record ``result`` (filled in with the counts) atomically, with the
    source's checkpoints: the latest observation loaded (stream ``quotes``) and ``checkpoints``
    (stream -> position, e.g. a CSV file's sha256)."""
    clock = time.perf_counter()
    with transaction(con):
        resolution = resolve(
            validated.quotes,
            stored_mappings=con.sql(
                "select source, source_asset_id, coin_id, match_key from coin_source_ids"
            ).pl(),
            stored_coin_ids=[c for (c,) in con.execute("select coin_id from coins").fetchall()],
            overrides=overrides,
            run_id=result.run_id,
        )
        merge.merge_coins(con, resolution.new_coins)
        merge.merge_source_ids(con, resolution.mappings)
        merge.refresh_coins(
            con, resolution.mappings["coin_id"].unique().to_list(), list(SOURCE_NAMES)
        )
        quotes = _with_coin_ids(validated.quotes, resolution)
        counts = merge.merge_quotes(con, quotes)
        merge.merge_quarantine(con, validated.quarantine)
        merge.merge_observations(con, _observations(quotes, result.run_id))
        if not quotes.is_empty():
            latest = quotes["observed_at"].max()
            assert isinstance(latest, datetime)
            runs.advance_checkpoint(
                con,
                source=result.source,
                stream="quotes",
                position=latest.isoformat(timespec="microseconds"),
                run_id=result.run_id,
            )
        for stream, position in (checkpoints or {}).items():
            runs.set_checkpoint(
                con, source=result.source, stream=stream, position=position, run_id=result.run_id
            )
        result.valid = validated.quotes.height
        result.quarantined = validated.quarantine.height
        result.duplicates = validated.duplicates
        result.inserted, result.updated, result.unchanged = (
            counts.inserted,
            counts.updated,
            counts.unchanged,
        )
        result.load_seconds = time.perf_counter() - clock
        runs.record_source(con, result)
    return resolution


def _with_coin_ids(quotes: pl.DataFrame, resolution: Resolution) -> pl.DataFrame:
    coin_of = resolution.mappings.select("source", "source_asset_id", "coin_id")
    joined = quotes.join(coin_of, on=["source", "source_asset_id"], how="left")
    # Two source ids an override maps to one coin could meet on one key: keep the later record.
    return (
        joined.sort("raw_file", "raw_record")
        .unique(subset=list(QUOTES_KEY), keep="last", maintain_order=True)
        .select(QUOTES.names())
    )


def _observations(quotes: pl.DataFrame, run_id: str) -> pl.DataFrame:
    return (
        quotes.sort("observed_at")
        .group_by("source", "source_asset_id")
        .agg(pl.col("coin_id").last(), pl.col("observed_at").last())
        .with_columns(run_id=pl.lit(run_id))
        .select(RUN_OBSERVATIONS.names())
    )
