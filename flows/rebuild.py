"""``kasparro rebuild --from-raw``: re-derive the warehouse from the raw zone.

Every run's raw files are replayed in run order (run ids sort by start time), each run's sources
in source order, through the same staging, validation, resolution and loads as the flow, with
today's rules and overrides: the way to apply a changed resolution rule to all history. Of a page
fetched twice by retries, the last attempt is the one a run loaded, so it is the one replayed;
files that could never be loaded (an unreadable CSV, an unsplittable page) are skipped as they
were then.

The new warehouse is built beside the old one and swapped in atomically (the old one is kept as
``warehouse.duckdb.bak``); the old one stays locked meanwhile, so no ingest writes during the
rebuild. The run ledger and the CSV file checkpoints are carried over.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from flows import raw_zone
from flows.load import load_source
from flows.resolution import Override
from flows.sources import SOURCE_NAMES
from flows.sources.csv_files import UNREADABLE
from flows.transform import transform_raw_files
from store import runs
from store.connection import open_warehouse, transaction
from store.snapshot import Published, publish_snapshot

_RAW_PATH = re.compile(r"^source=(?P<source>[^/]+)/date=[^/]+/run=(?P<run>[^/]+)/(?P<file>[^/]+)$")


@dataclass(frozen=True)
class RawBatch:
    run_id: str
    source: str
    files: list[str]


def raw_batches(raw_root: Path) -> list[RawBatch]:
    """The raw zone as (run, source) batches in replay order, last attempt of each page only."""
    latest: dict[tuple[str, str, str], tuple[int, str]] = {}
    for path in raw_root.rglob("*.parquet"):
        relative = path.relative_to(raw_root).as_posix()
        where, name = _RAW_PATH.match(relative), raw_zone.attempt_of(path.name)
        if not where or not name:
            continue
        key = (where["run"], where["source"], name[0])
        attempt = name[1]
        if key not in latest or latest[key][0] < attempt:
            latest[key] = (attempt, relative)
    grouped: dict[tuple[str, str], list[str]] = {}
    for (run_id, source, _), (_, relative) in latest.items():
        grouped.setdefault((run_id, source), []).append(relative)
    order = {name: i for i, name in enumerate(SOURCE_NAMES)}
    return [
        RawBatch(run_id, source, sorted(files))
        for (run_id, source), files in sorted(
            grouped.items(), key=lambda item: (item[0][0], order.get(item[0][1], len(order)))
        )
    ]


def _loadable(raw_root: Path, files: list[str]) -> list[str]:
    keep = []
    for relative in files:
        head = pl.read_parquet(raw_root / relative, columns=["endpoint", "record"], n_rows=1)
        if head.height and head["endpoint"][0] != UNREADABLE and head["record"][0] is not None:
            keep.append(relative)
    return keep


def rebuild_from_raw(
    data_dir: Path,
    overrides: dict[tuple[str, str], Override],
    *,
    on_batch: Callable[[RawBatch, runs.SourceResult], None] | None = None,
) -> Published:
    """Rebuild ``data_dir/warehouse.duckdb`` from ``data_dir/raw`` and publish the snapshot."""
    warehouse_path, raw_root = data_dir / "warehouse.duckdb", data_dir / "raw"
    fresh_path = data_dir / "warehouse.rebuild.duckdb"
    fresh_path.unlink(missing_ok=True)
    old = open_warehouse(warehouse_path)  # held: no ingest may write while we rebuild
    try:
        ledger = {t: old.sql(f"select * from {t}").pl() for t in ("runs", "run_sources")}
        csv_checkpoints = old.sql(
            "select * from checkpoints where starts_with(stream, 'file:')"
        ).pl()
        fresh = open_warehouse(fresh_path)
        try:
            for batch in raw_batches(raw_root):
                result = runs.SourceResult(batch.run_id, batch.source, "loaded")
                files = _loadable(raw_root, batch.files)
                if files:
                    load_source(fresh, transform_raw_files(raw_root, files), result, overrides)
                if on_batch:
                    on_batch(batch, result)
            with transaction(fresh):
                _carry_over(fresh, ledger, csv_checkpoints)
            fresh.execute("checkpoint")
        finally:
            fresh.close()
        backup = warehouse_path.with_name(warehouse_path.name + ".bak")
        backup.unlink(missing_ok=True)
        os.link(warehouse_path, backup)
        os.replace(fresh_path, warehouse_path)
    finally:
        old.close()
    return publish_snapshot(warehouse_path, data_dir / "serving.duckdb")


def _carry_over(
    con: duckdb.DuckDBPyConnection,
    ledger: dict[str, pl.DataFrame],
    csv_checkpoints: pl.DataFrame,
) -> None:
    """The old ledger and CSV checkpoints; run_sources rows the rebuild wrote win (their counts
    describe the rebuilt data)."""
    con.register("old_runs", ledger["runs"])
    con.register("old_run_sources", ledger["run_sources"])
    con.register("old_checkpoints", csv_checkpoints)
    try:
        con.execute("insert or replace into runs select * from old_runs")
        con.execute(
            """
            insert into run_sources
            select o.*
            from old_run_sources as o
            anti join run_sources as n
                on n.run_id = o.run_id and n.source = o.source
            """
        )
        con.execute("insert or replace into checkpoints select * from old_checkpoints")
    finally:
        for name in ("old_runs", "old_run_sources", "old_checkpoints"):
            con.unregister(name)
