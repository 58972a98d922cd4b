"""``kasparro rebuild --from-raw``: re-derive the warehouse from the raw zone.

Every run's raw files are replayed through the same staging, validation, resolution and loads as
the flow, with today's rules and overrides: the way to apply a changed resolution rule to all
history. Of a page fetched twice by retries, the last attempt is the one a run loaded, so it is
the one replayed; what could never be loaded (an unreadable CSV, an unsplittable page) is skipped
as it was then.

For speed, consecutive runs are loaded together, a window of up to ``rows_per_chunk`` raw rows
at a time (memory stays bounded however long the history), each source of the window in source
order as a run loads them: the loader decides as those runs did one after the other (a snapshot
record counts only if newer than what earlier runs delivered), and resolution does not depend on
order, so the tables come out as run-by-run loading made them. Windows keep ``quotes`` stored
roughly in time order, as ingest appends it, which the API's newest-first reads rely on. The next
chunk is read and validated (polars, off the GIL) while the current one is resolved and merged.

The new warehouse is built beside the old one and swapped in atomically (the old one is kept as
``warehouse.duckdb.bak``); the old one stays locked meanwhile, so no ingest writes during the
rebuild. The run ledger and every checkpoint but the ``quotes`` high-water marks are carried over,
and so are the operator's decisions: those applied before are applied again, in the order taken,
to the rebuilt tables (see :mod:`store.resolution`).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from flows import raw_zone
from flows.load import load_source
from flows.resolution import Crosswalk, Override
from flows.sources import SOURCE_NAMES
from flows.transform import transform_raw_files
from store import runs
from store.connection import open_warehouse, transaction
from store.resolution import apply_pending, reset_applied
from store.snapshot import Published, publish_snapshot

_RAW_PATH = re.compile(r"^source=(?P<source>[^/]+)/date=[^/]+/run=(?P<run>[^/]+)/(?P<file>[^/]+)$")
ROWS_PER_CHUNK = 500_000
"""Raw rows of a window. Two windows are in memory at once (one loading, the next being read):
at 500k a 10M-quote rebuild peaks at 1.36 GiB with the default KASPARRO_DUCKDB_MEMORY_LIMIT."""


@dataclass(frozen=True)
class RawBatch:
    run_id: str
    source: str
    files: list[str]


@dataclass(frozen=True)
class Chunk:
    """Consecutive runs of one source, loaded together."""

    source: str
    run_ids: list[str]
    files: list[str]
    rows: int


def raw_batches(raw_root: Path) -> list[RawBatch]:
    """The raw zone as (run, source) batches in replay order, last attempt of each page only."""
    latest: dict[tuple[str, str, str], tuple[int, str]] = {}
    for path in raw_root.rglob("*.parquet"):
        relative = path.relative_to(raw_root).as_posix()
        where, name = _RAW_PATH.match(relative), raw_zone.attempt_of(path.name)
        if not where or not name:
            continue
        key = (where["run"], where["source"], name[0])
        if key not in latest or latest[key][0] < name[1]:
            latest[key] = (name[1], relative)
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


def chunks(raw_root: Path, batches: list[RawBatch], rows_per_chunk: int) -> list[Chunk]:
    """Windows of consecutive runs holding up to ``rows_per_chunk`` raw rows (a run is never
    split), each window one chunk per source, in source order."""
    order = {name: i for i, name in enumerate(SOURCE_NAMES)}
    planned: list[Chunk] = []
    window: dict[str, Chunk] = {}

    def close_window() -> None:
        planned.extend(
            sorted(window.values(), key=lambda c: (order.get(c.source, len(order)), c.source))
        )
        window.clear()

    sized = [(b, sum(pq.read_metadata(raw_root / f).num_rows for f in b.files)) for b in batches]
    run_rows: dict[str, int] = defaultdict(int)
    for batch, rows in sized:
        run_rows[batch.run_id] += rows
    window_rows, current_run = 0, None
    for batch, rows in sized:  # a run's batches are consecutive
        if batch.run_id != current_run:
            current_run = batch.run_id
            if window and window_rows + run_rows[current_run] > rows_per_chunk:
                close_window()
                window_rows = 0
            window_rows += run_rows[current_run]
        current = window.get(batch.source, Chunk(batch.source, [], [], 0))
        window[batch.source] = Chunk(
            batch.source,
            [*current.run_ids, batch.run_id],
            [*current.files, *batch.files],
            current.rows + rows,
        )
    close_window()
    return planned


def rebuild_from_raw(
    data_dir: Path,
    overrides: dict[tuple[str, str], Override],
    *,
    crosswalk: Crosswalk | None = None,
    rows_per_chunk: int = ROWS_PER_CHUNK,
    planned: list[Chunk] | None = None,
    on_chunk: Callable[[Chunk, runs.SourceResult], None] | None = None,
) -> Published:
    """Rebuild ``data_dir/warehouse.duckdb`` from ``data_dir/raw`` and publish the snapshot."""
    warehouse_path, raw_root = data_dir / "warehouse.duckdb", data_dir / "raw"
    fresh_path = data_dir / "warehouse.rebuild.duckdb"
    fresh_path.unlink(missing_ok=True)
    # One row per asset per source per run: streamed through a file, not held in memory.
    seen_file = data_dir / "warehouse.rebuild.run_seen.parquet"
    old = open_warehouse(warehouse_path)  # held: no ingest may write while we rebuild
    try:
        ledger = {
            t: old.sql(f"select * from {t}").pl()
            for t in ("runs", "run_sources", "resolution_decisions")
        }
        kept_checkpoints = old.sql("select * from checkpoints where stream <> 'quotes'").pl()
        quoted = str(seen_file).replace("'", "''")  # COPY takes no bound parameters
        old.execute(f"copy run_seen to '{quoted}' (format parquet)")
        fresh = open_warehouse(fresh_path)
        try:
            plan = planned or chunks(raw_root, raw_batches(raw_root), rows_per_chunk)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebuild-read") as reader:
                reads = [reader.submit(transform_raw_files, raw_root, c.files) for c in plan[:1]]
                for chunk, following in zip(plan, [*plan[1:], None], strict=True):
                    validated = reads.pop().result()
                    if following is not None:
                        reads.append(reader.submit(transform_raw_files, raw_root, following.files))
                    result = runs.SourceResult(chunk.run_ids[0], chunk.source, "loaded")
                    load_source(
                        fresh, validated, result, overrides, ledger=False, crosswalk=crosswalk
                    )
                    del validated  # two chunks in memory at most: this one and the next
                    if on_chunk:
                        on_chunk(chunk, result)
            with transaction(fresh):
                _carry_over(fresh, ledger, kept_checkpoints, seen_file)
            apply_pending(fresh, "rebuild", list(SOURCE_NAMES))
            fresh.execute("checkpoint")
        finally:
            fresh.close()
        backup = warehouse_path.with_name(warehouse_path.name + ".bak")
        backup.unlink(missing_ok=True)
        os.link(warehouse_path, backup)
        os.replace(fresh_path, warehouse_path)
    finally:
        old.close()
        seen_file.unlink(missing_ok=True)
    return publish_snapshot(warehouse_path, data_dir / "serving.duckdb")


def _carry_over(
    con: duckdb.DuckDBPyConnection,
    ledger: dict[str, pl.DataFrame],
    checkpoints: pl.DataFrame,
    seen_file: Path,
) -> None:
    """The old run ledger (``run_seen`` from ``seen_file``), the checkpoints a replay cannot
    derive (CSV files, history), and the operator's decisions, the applied ones pending again."""
    con.register("old_runs", ledger["runs"])
    con.register("old_run_sources", ledger["run_sources"])
    con.register("old_decisions", ledger["resolution_decisions"])
    con.register("old_checkpoints", checkpoints)
    try:
        con.execute("insert or replace into runs select * from old_runs")
        con.execute("insert or replace into run_sources select * from old_run_sources")
        con.execute("insert into run_seen select * from read_parquet(?)", [str(seen_file)])
        # Rebuilt links may name other coins (changed overrides or rules): every run's pointers
        # follow them, as decisions make them follow a moved link.
        con.execute(
            """
            update run_seen as s
            set coin_id = m.coin_id
            from coin_source_ids as m
            where m.source = s.source
                and m.source_asset_id = s.source_asset_id
                and m.coin_id <> s.coin_id
            """
        )
        # What the old loads derived is not what this rebuild did: the next run loads in full.
        con.execute("update run_sources set delivery_sha256 = null")
        con.execute("insert or replace into resolution_decisions select * from old_decisions")
        con.execute("insert or replace into checkpoints select * from old_checkpoints")
        reset_applied(con)
    finally:
        for name in ("old_runs", "old_run_sources", "old_decisions", "old_checkpoints"):
            con.unregister(name)
