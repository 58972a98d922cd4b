"""The serving snapshot: published atomically; readers and the single writer never collide."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import duckdb
import pytest

from store import snapshot
from store.connection import open_read_only, open_warehouse
from store.errors import SnapshotNotFoundError, StoreError, WarehouseBusyError
from store.serving import known_sources, quote_stats
from store.snapshot import publish_snapshot
from tests.helpers import warehouse_held_elsewhere

SOURCES = ("coingecko", "coinpaprika", "coincap", "csv")


def write_rows(path: Path, n: int) -> None:
    con = open_warehouse(path)
    con.execute("delete from runs")
    for i in range(n):
        con.execute(
            "insert into runs (run_id, started_at, status, sources) "
            "values (?, now(), 'completed', [])",
            [f"run-{i}"],
        )
    con.execute("checkpoint")
    con.close()


def runs_in(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("select count(*) from runs").fetchall()[0][0])


def test_a_reader_keeps_its_snapshot_while_a_new_one_is_published(tmp_path: Path) -> None:
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving.duckdb"
    write_rows(warehouse, 1)
    publish_snapshot(warehouse, serving, sources=SOURCES)
    reader = open_read_only(serving)
    assert runs_in(reader) == 1

    write_rows(warehouse, 3)
    publish_snapshot(warehouse, serving, sources=SOURCES)

    assert runs_in(reader) == 1, "an open reader keeps reading the snapshot it opened"
    fresh = open_read_only(serving)
    assert runs_in(fresh) == 3, "a new reader sees the new snapshot"
    reader.close()
    fresh.close()
    assert not list(tmp_path.glob(".serving.duckdb.*")), "no temporary file is left behind"


def _refuse(*args: object) -> int:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


@pytest.mark.parametrize("kernel", ["copy_file_range", "copy_file_range refused", "no hints"])
def test_the_copy_is_the_warehouse_byte_for_byte_however_it_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: str
) -> None:
    warehouse, copy = tmp_path / "warehouse.duckdb", tmp_path / "copy.duckdb"
    write_rows(warehouse, 50)
    monkeypatch.setattr(snapshot, "CHUNK", 4096 + 1)  # many chunks, none aligned to a page
    if kernel == "copy_file_range refused":
        monkeypatch.setattr(os, "copy_file_range", _refuse, raising=False)
    if kernel == "no hints":
        monkeypatch.setattr(snapshot, "_sync_file_range", None)

    snapshot.copy_durably(warehouse, copy)

    assert copy.read_bytes() == warehouse.read_bytes()


def test_the_snapshot_holds_the_warehouse_and_the_serving_tables(tmp_path: Path) -> None:
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving.duckdb"
    write_rows(warehouse, 50)

    published = publish_snapshot(warehouse, serving, sources=SOURCES)

    assert published.bytes == serving.stat().st_size
    reader = open_read_only(serving)
    assert runs_in(reader) == 50
    assert known_sources(reader) == SOURCES, "the list of sources travels with the snapshot"
    assert quote_stats(reader).quotes == 0
    reader.close()
    assert not list(tmp_path.glob(".serving.duckdb.*")), "no temporary file is left behind"


def test_many_readers_can_open_the_snapshot_while_the_flow_writes(tmp_path: Path) -> None:
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving.duckdb"
    write_rows(warehouse, 2)
    publish_snapshot(warehouse, serving, sources=SOURCES)
    writer = open_warehouse(warehouse)
    readers = [open_read_only(serving) for _ in range(4)]
    writer.execute(
        "insert into runs (run_id, started_at, status, sources) values ('x', now(), 'running', [])"
    )
    assert [runs_in(r) for r in readers] == [2, 2, 2, 2]
    for r in readers:
        r.close()
    writer.close()


def test_publishing_an_open_warehouse_is_refused(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    write_rows(warehouse, 1)
    con = open_warehouse(warehouse)
    con.execute(
        "insert into runs (run_id, started_at, status, sources) values ('x', now(), 'running', [])"
    )
    try:
        with pytest.raises(StoreError, match="still open"):
            publish_snapshot(warehouse, tmp_path / "serving.duckdb", sources=SOURCES)
    finally:
        con.close()


def test_a_missing_snapshot_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(SnapshotNotFoundError, match="kasparro ingest"):
        open_read_only(tmp_path / "serving.duckdb")


def test_a_second_writer_process_gets_a_clear_busy_error(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    open_warehouse(warehouse).close()
    with (
        warehouse_held_elsewhere(warehouse),
        pytest.raises(WarehouseBusyError, match="only one ingest may write at a time"),
    ):
        open_warehouse(warehouse)
