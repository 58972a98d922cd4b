"""The README's advice for analysts reading serving.duckdb from Python: it sees each newly
published snapshot while an older connection to the same path is still open in the process."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def publish(data_dir: Path, value: int) -> Path:
    """A database holding ``value``, published over serving.duckdb as publish_snapshot does:
    written beside it, then renamed over it."""
    serving = data_dir / "serving.duckdb"
    tmp = data_dir / f".serving-{value}.tmp"
    with duckdb.connect(str(tmp)) as con:
        con.execute("create table answer as select ? as value", [value])
    os.replace(tmp, serving)
    return serving


def open_snapshot(path: Path) -> duckdb.DuckDBPyConnection:
    """The README's recipe, verbatim in substance: attach to a fresh in-memory database."""
    con = duckdb.connect()
    con.execute(f"attach '{path}' as serving (read_only)")
    con.execute("use serving")
    return con


def value(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("select value from answer").fetchone()
    assert row is not None
    return int(row[0])


def test_attaching_again_sees_a_new_snapshot_while_the_old_connection_stays_open(
    tmp_path: Path,
) -> None:
    serving = publish(tmp_path, 1)
    first = open_snapshot(serving)
    publish(tmp_path, 2)
    second = open_snapshot(serving)
    try:
        assert value(first) == 1, "a connection keeps the snapshot it opened"
        assert value(second) == 2, "a new one sees the newly published snapshot"
    finally:
        first.close()
        second.close()


def test_connecting_by_path_again_does_not_while_an_old_connection_is_open(
    tmp_path: Path,
) -> None:
    """Why the README does not say `duckdb.connect(path)`: DuckDB's module caches the database
    instance by path, so a second connect returns the old snapshot (if DuckDB stops doing so,
    this fails and the README can say the simpler thing)."""
    serving = publish(tmp_path, 1)
    first = duckdb.connect(str(serving), read_only=True)
    publish(tmp_path, 2)
    second = duckdb.connect(str(serving), read_only=True)
    try:
        assert value(second) == 1
    finally:
        first.close()
        second.close()
    third = duckdb.connect(str(serving), read_only=True)
    try:
        assert value(third) == 2, "once every connection is closed, a new one sees it"
    finally:
        third.close()
