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
import polars as pl

from flows.extract import Extracted, extract
from flows.faults import arm
from flows.history import extract_history, plan_history
from flows.load import load_extracted
from flows.resolution import Override
from flows.settings import HistorySettings
from flows.sources import API_SOURCES, SOURCE_NAMES
from store import runs
from store.connection import open_read_only, transaction, warehouse
from store.quote_layout_build import build_after_publish
from store.resolution import apply_pending, import_inbox
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
    return _digest(frame)


def checksums(
    con: duckdb.DuckDBPyConnection, ignore: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, str]:
    return {t: table_checksum(con, t, (ignore or {}).get(t, ())) for t in DATA_TABLES}


WAREHOUSE_TABLES = {
    **dict.fromkeys(DATA_TABLES, ()),
    "coin_aliases": (),
    "asset_contracts": (),
    "resolution_review": (),
    "resolution_decisions": (),
    "runs": (),
    # A rebuild forgets what the old loads delivered, so the next run loads in full.
    "run_sources": ("delivery_sha256",),
    "run_seen": (),
    "run_files": (),
    "checkpoints": ("updated_at",),
}
"""Every table, and the columns of each that record when a row was written, not what it says."""


def snapshot_checksums(data_dir: Path, *, lineage: bool = False) -> dict[str, str]:
    """:func:`checksums` of the data dir's published snapshot; with ``lineage``, of every table
    with every column that says what a row is or where it came from (see WAREHOUSE_TABLES)."""
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        if not lineage:
            return checksums(con)
        return {
            table: _digest(con.sql(f"select * from {table}").pl().drop(*ignored))
            for table, ignored in WAREHOUSE_TABLES.items()
        }
    finally:
        con.close()


def _digest(frame: pl.DataFrame) -> str:
    rows = sorted(repr(row) for row in frame.iter_rows())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


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
    history: bool = False,
    fault: str | None = None,
    dies_before: str | None = None,
) -> dict[str, runs.SourceResult]:
    """The flow's steps as plain functions (the e2e tests run the real Prefect flow): apply the
    operators' decisions in the inbox, extract every source (history: backfill the default coins
    of the API sources with history, up to yesterday), then load each in turn, a failure recorded
    as the flow records it. ``fault`` is armed in ``raise`` mode (flows.faults); ``dies_before``
    names a source the process dies before loading: the run stays ``running``, its extracts in
    the raw zone."""
    raw_root = data_dir / "raw"
    results: dict[str, runs.SourceResult] = {}
    arm(fault, "raise")
    try:
        with warehouse(data_dir / "warehouse.duckdb") as con:
            with transaction(con):
                runs.start_run(
                    con,
                    run_id=run_id,
                    flow_run_id=None,
                    started_at=datetime.now(UTC),
                    sources=list(sources),
                    replay_dir=str(replay_dir),
                    mode="history" if history else "snapshot",
                )
            import_inbox(con, data_dir / "decisions" / "inbox")
            apply_pending(con, run_id, list(SOURCE_NAMES))
            extracted = {
                source: _extract(con, source, replay_dir, raw_root, run_id, history=history)
                for source in sources
            }
            for source in sources:
                if source == dies_before:
                    con.execute("checkpoint")
                    return results
                result = runs.SourceResult(run_id, source, "loaded")
                try:
                    load_extracted(con, raw_root, extracted[source], result, overrides or {})
                except Exception as exc:  # as flows.ingest._run_source records it
                    result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
                    runs.record_source(con, result)
                results[source] = result
            failed = [r.source for r in results.values() if r.status == "failed"]
            runs.finish_run(con, run_id, "failed" if failed else "completed", None)
            con.execute("checkpoint")
    finally:
        arm(None, None)
        published = publish_snapshot(
            data_dir / "warehouse.duckdb", data_dir / "serving.duckdb", sources=SOURCE_NAMES
        )
        build_after_publish(published.path)  # as the flow does
    return results


def _extract(
    con: duckdb.DuckDBPyConnection,
    source: str,
    replay_dir: Path,
    raw_root: Path,
    run_id: str,
    *,
    history: bool,
) -> Extracted:
    if history and source in API_SOURCES:
        today, settings = datetime.now(UTC).date(), HistorySettings()
        plan, _ = plan_history(con, source, settings.coins, today=today, days=settings.days)
        return extract_history(
            API_SOURCES[source],
            plan,
            raw_root=raw_root,
            run_id=run_id,
            started_at=datetime.now(UTC),
            replay_dir=replay_dir,
        )
    return extract(
        source,
        raw_root=raw_root,
        run_id=run_id,
        started_at=datetime.now(UTC),
        replay_dir=replay_dir,
        csv_loaded=runs.checkpoints_of(con, "csv", prefix="file:"),
    )
