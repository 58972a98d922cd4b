"""Domain assertions and builders shared by the test packages."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from flows.extract import extract
from flows.load import load_extracted
from flows.resolution import Override
from store import runs
from store.connection import open_read_only, transaction, warehouse
from store.snapshot import publish_snapshot

DATA_TABLES = ("coins", "coin_source_ids", "quotes", "quarantine")
# Columns that name the run or the wall-clock moment that wrote a row: two runs over the same
# inputs legitimately differ there and nowhere else.
RUN_COLUMNS = {
    "coins": ("created_by_run",),
    "coin_source_ids": ("decided_by_run",),
    "quotes": ("run_id", "raw_file"),
    "quarantine": ("first_run_id", "raw_file"),
}


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in DATA_TABLES}


def table_checksum(con: duckdb.DuckDBPyConnection, table: str, ignore: tuple[str, ...] = ()) -> str:
    """A digest of a table's rows (order-independent), ignoring run/lineage columns."""
    frame = con.sql(f"select * from {table}").pl().drop(*RUN_COLUMNS.get(table, ()), *ignore)
    rows = sorted(repr(row) for row in frame.iter_rows())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def checksums(
    con: duckdb.DuckDBPyConnection, ignore: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, str]:
    return {t: table_checksum(con, t, (ignore or {}).get(t, ())) for t in DATA_TABLES}


def snapshot_checksums(data_dir: Path) -> dict[str, str]:
    """:func:`checksums` of the data dir's published snapshot."""
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        return checksums(con)
    finally:
        con.close()


def assert_no_duplicates(con: duckdb.DuckDBPyConnection) -> None:
    keys = {
        "quotes": "coin_id, source, observed_at",
        "coin_source_ids": "source, source_asset_id",
        "coins": "coin_id",
        "quarantine": "source, record_sha256, reason",
        "run_seen": "run_id, source, source_asset_id",
    }
    for table, key in keys.items():
        dupes = con.execute(
            f"select {key}, count(*) from {table} group by all having count(*) > 1"
        ).fetchall()
        assert dupes == [], f"{table} has duplicate natural keys: {dupes[:5]}"


@contextmanager
def warehouse_held_elsewhere(path: Path) -> Iterator[None]:
    """Another process holds the warehouse open for writing while the block runs."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from store.connection import open_warehouse; "
            f"con = open_warehouse(Path({str(path)!r})); print('holding', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        yield
    finally:
        holder.communicate("", timeout=30)


def ingest_without_prefect(
    replay_dir: Path,
    data_dir: Path,
    *,
    run_id: str,
    sources: tuple[str, ...] = ("coingecko", "coinpaprika", "coincap", "csv"),
    overrides: dict[tuple[str, str], Override] | None = None,
) -> dict[str, runs.SourceResult]:
    """The flow's steps as plain functions (the e2e tests run the real Prefect flow)."""
    raw_root = data_dir / "raw"
    results: dict[str, runs.SourceResult] = {}
    with warehouse(data_dir / "warehouse.duckdb") as con:
        with transaction(con):
            runs.start_run(
                con,
                run_id=run_id,
                flow_run_id=None,
                started_at=datetime.now(UTC),
                sources=list(sources),
                replay_dir=str(replay_dir),
            )
        for source in sources:
            extracted = extract(
                source,
                raw_root=raw_root,
                run_id=run_id,
                started_at=datetime.now(UTC),
                replay_dir=replay_dir,
                csv_loaded=runs.checkpoints_of(con, "csv", prefix="file:"),
            )
            result = runs.SourceResult(run_id, source, "loaded")
            load_extracted(con, raw_root, extracted, result, overrides or {})
            results[source] = result
        runs.finish_run(con, run_id, "completed", None)
        con.execute("checkpoint")
    publish_snapshot(data_dir / "warehouse.duckdb", data_dir / "serving.duckdb")
    return results
