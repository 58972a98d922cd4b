"""Native DuckDB errors become the store's, in one place, each saying what to do."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from store.connection import open_warehouse
from store.errors import (
    SnapshotOutdatedError,
    StoreError,
    WarehouseBusyError,
    WarehouseError,
    converted,
    from_duckdb,
)


def test_a_lock_held_by_another_process_is_the_transient_busy_error() -> None:
    lock = duckdb.IOException('Could not set lock on file "w.duckdb": Conflicting lock is held')
    error = from_duckdb(lock, "opening", path=Path("w.duckdb"))
    assert isinstance(error, WarehouseBusyError)
    assert "wait for the running ingest to finish" in str(error)


def test_a_missing_table_means_an_old_snapshot_only_when_reading_one() -> None:
    missing = duckdb.CatalogException("Catalog Error: Table with name coin_aliases does not exist!")
    outdated = from_duckdb(missing, "reading aliases", snapshot=True)
    assert isinstance(outdated, SnapshotOutdatedError)
    assert "run `kasparro ingest`" in str(outdated)
    # In the migrated warehouse a missing table is a bug, not a file to republish.
    bug = from_duckdb(missing, "applying it")
    assert type(bug) is WarehouseError
    assert "report it with the log" in str(bug)


def test_other_errors_name_what_was_being_done_and_the_native_error() -> None:
    error = from_duckdb(duckdb.IOException("disk went away"), "importing the inbox")
    assert type(error) is WarehouseError
    assert str(error).startswith("importing the inbox: IOException: disk went away; check the")


def test_converted_raises_the_store_error_from_the_native_one() -> None:
    native = duckdb.ConstraintException("Constraint Error: duplicate key")
    with (
        pytest.raises(WarehouseError, match="writing: ConstraintException") as raised,
        converted("writing"),
    ):
        raise native
    assert raised.value.__cause__ is native


def test_a_file_that_is_not_a_warehouse_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    path.write_text("not a database " * 500)
    with pytest.raises(StoreError, match="not a valid DuckDB database file") as raised:
        open_warehouse(path)
    assert str(path) in str(raised.value)


def test_running_out_of_duckdb_memory_says_which_setting_to_raise() -> None:
    con = duckdb.connect()
    con.execute("set memory_limit = '8MiB'")
    with pytest.raises(duckdb.OutOfMemoryException) as raised:
        con.execute("select list(range) from range(5000000) group by range % 3").fetchall()
    error = from_duckdb(raised.value, "loading csv")
    assert "KASPARRO_DUCKDB_MEMORY_LIMIT" in str(error)
    assert str(error).startswith("loading csv: OutOfMemoryException")
