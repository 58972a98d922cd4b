"""Opening the warehouse (one writer) and the serving snapshot (many readers).

DuckDB allows one read-write process or many read-only ones, never both. The ingest flow is the
only writer of ``warehouse.duckdb``; everyone else opens the published ``serving.duckdb``
read-only (see :mod:`store.snapshot`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.errors import (
    MigrationError,
    SnapshotNotFoundError,
    SnapshotUnreadableError,
    StoreError,
    WalReplayError,
    from_duckdb,
)
from store.memory import restore_after_rollback
from store.merge import staging_directory
from store.migrate import is_behind, migrate_file
from store.settings import get_store_settings

logger = logging.getLogger(__name__)

_REPLAY_FAILED = "Failure while replaying WAL file"


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    # Timestamps leave DuckDB as aware datetimes in UTC whatever the host's zone is; global so
    # that cursors (one per thread) inherit it.
    con.execute("set global TimeZone = 'UTC'")
    con.execute("set TimeZone = 'UTC'")


def _configure_writer(con: duckdb.DuckDBPyConnection) -> None:
    _configure(con)
    # Validated by the settings' pattern: SET takes no bound parameters.
    con.execute(f"set memory_limit = '{get_store_settings().duckdb_memory_limit}'")


@contextmanager
def _opening(directory: Path) -> Iterator[None]:
    """One process at a time opens (and so migrates) the warehouses of ``directory``. DuckDB's
    own lock cannot do this: a new warehouse has no file to lock until it is renamed into place.
    An flock, so it ends with the process however that ends."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _replay_attached(path: Path, failure: duckdb.Error) -> duckdb.DuckDBPyConnection:
    """Replay a write-ahead log that DuckDB cannot replay while it opens ``path``, by attaching
    the file to an in-memory database, then checkpoint it into the file.

    DuckDB 1.5.6 replays an ALTER TABLE of a table that has a default value by binding that
    default, which needs a default database; none is set yet while a database opens by its path
    ("Calling DatabaseManager::GetDefaultDatabase with no default database set"), while an
    attached file has the in-memory one. Older Kasparros left such logs behind (a process
    killed right after migrating in place)."""
    wal = path.with_name(path.name + ".wal")
    detail = str(failure).splitlines()[0]
    logger.warning("%s: %s; replaying it through an attached connection", path, detail)
    quoted = str(path).replace("'", "''")  # ATTACH takes no bound parameters
    try:
        with duckdb.connect() as con:
            con.execute(f"attach '{quoted}' as replayed")
            con.execute("checkpoint replayed")
    except duckdb.Error:
        raise WalReplayError(path, wal, duckdb.__version__, detail) from None
    return duckdb.connect(str(path))


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path))
    except duckdb.Error as exc:
        if _REPLAY_FAILED in str(exc):
            return _replay_attached(path, exc)
        raise from_duckdb(exc, f"opening the warehouse {path}", path=path) from exc


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-write, migrating it to the current schema (on a copy renamed
    into place: see :mod:`store.migrate`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _opening(path.parent):
        wal = path.with_name(path.name + ".wal")
        if not path.exists() and wal.exists():
            raise StoreError(
                f"{wal} has no warehouse {path} beside it: a log replayed into a new database "
                "would be wrong. Restore the warehouse file, or move the log away"
            )
        con = _connect(path) if path.exists() else None
        try:
            behind = con is None or is_behind(con)
        except MigrationError:
            if con is not None:  # refused: a newer Kasparro's warehouse
                con.close()
            raise
        if con is None or behind:
            migrate_file(path, con, _configure_writer)
            con = _connect(path)
    _configure_writer(con)
    # Open read-write, the warehouse is this process's alone: what a killed load staged is stale.
    shutil.rmtree(staging_directory(path), ignore_errors=True)
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
    try:
        con.execute(f"attach '{quoted}' as {SNAPSHOT_CATALOG} (read_only)")
    except duckdb.Error as exc:
        con.close()
        raise SnapshotUnreadableError(path, exc) from None
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
        restore_after_rollback(con)
        raise
    con.execute("commit")
