"""Opening the warehouse (one writer) and the serving snapshot (many readers).

DuckDB allows one read-write process or many read-only ones, never both. The ingest flow is the
only writer of ``warehouse.duckdb``; everyone else opens the published ``serving.duckdb``
read-only (see :mod:`store.snapshot`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.errors import SnapshotNotFoundError, from_duckdb
from store.migrate import migrate
from store.settings import get_store_settings


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    # Timestamps leave DuckDB as aware datetimes in UTC whatever the host's zone is; global so
    # that cursors (one per thread) inherit it.
    con.execute("set global TimeZone = 'UTC'")
    con.execute("set TimeZone = 'UTC'")


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-write, migrating it to the current schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise from_duckdb(exc, f"opening the warehouse {path}", path=path) from exc
    _configure(con)
    # Validated by the settings' pattern: SET takes no bound parameters.
    con.execute(f"set memory_limit = '{get_store_settings().duckdb_memory_limit}'")
    migrate(con)
    return con


@contextmanager
def warehouse(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_warehouse(path)
    try:
        yield con
    finally:
        con.close()


SNAPSHOT_CATALOG = "snapshot"


def open_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """Open a published snapshot (or any Kasparro DuckDB file) read-only.

    The file is ATTACHed to a fresh in-memory database rather than opened by path: DuckDB's
    Python module caches database instances by path, so a second ``connect(path)`` while the
    first is alive would return the old instance and never see a newly published snapshot.
    """
    if not path.exists():
        raise SnapshotNotFoundError(path)
    con = duckdb.connect()
    _configure(con)
    quoted = str(path).replace("'", "''")
    con.execute(f"attach '{quoted}' as {SNAPSHOT_CATALOG} (read_only)")
    con.execute(f"use {SNAPSHOT_CATALOG}")
    return con


def read_only_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of a connection from :func:`open_read_only` (one per thread)."""
    cursor = con.cursor()
    cursor.execute(f"use {SNAPSHOT_CATALOG}")
    return cursor


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Everything inside commits together or not at all."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
