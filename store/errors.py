"""Errors raised by the warehouse layer.

    StoreError
     ├── WarehouseBusyError      another process holds the warehouse: a writer (wait and retry)
     │                           or a reader (close it), named with its PID
     ├── MigrationError          a schema migration failed or the file is newer than this code
     ├── WalReplayError          DuckDB cannot replay the warehouse's write-ahead log
     ├── SnapshotNotFoundError   no serving snapshot has been published yet
     ├── SnapshotUnreadableError the serving snapshot is not a readable DuckDB file (truncated,
     │                           damaged): publish it again
     ├── SnapshotOutdatedError   the DuckDB file lacks a table or column this code reads: it was
     │                           published by an older version (run `kasparro ingest`)
     └── WarehouseError          any other DuckDB failure, naming what was being done

Native ``duckdb`` errors are converted in one place, :func:`from_duckdb` (or :func:`converted`
around a block). An operator's decision
that cannot apply is no error: it is recorded ``refused`` with a
:class:`store.resolution.Refusal`; one that fails is rolled back and recorded ``refused`` with
the converted error (see :func:`store.resolution.apply_pending`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.locks import LockHolder, lock_holder


class StoreError(Exception):
    """Base class for warehouse errors."""


class WarehouseBusyError(StoreError):
    def __init__(self, path: Path, detail: str, holder: LockHolder | None = None) -> None:
        if holder is not None and holder.kind == "reader":
            # Not an ingest: a DuckDB shell, a notebook or a script reading the warehouse itself.
            message = (
                f"warehouse {path} is open read-only by another process (PID {holder.pid}"
                f"{': ' + holder.command if holder.command else ''}), a reader, and DuckDB lets "
                "no writer in while a reader has the file open: close that reader, then retry. "
                "Readers should open the published snapshot, serving.duckdb, instead"
            )
        else:
            who = f"PID {holder.pid}: {holder.command}" if holder else detail
            message = (
                f"warehouse {path} is open for writing in another process ({who}); only one "
                "ingest may write at a time: wait for the running ingest to finish, then retry"
            )
        super().__init__(message)
        self.path = path
        self.holder = holder


class MigrationError(StoreError):
    pass


class WalReplayError(StoreError):
    def __init__(self, path: Path, wal: Path, duckdb_version: str, detail: str) -> None:
        super().__init__(
            f"warehouse {path} cannot be opened: DuckDB {duckdb_version} fails to replay its "
            f"write-ahead log {wal} ({detail}). The transactions committed since the last "
            "checkpoint are only in that log, so nothing was changed: keep both files. To keep "
            "those transactions, open the warehouse once with a DuckDB version that replays the "
            "log and run CHECKPOINT, then re-run. To give them up instead, move the log aside "
            f"(`mv {wal} {wal}.unreplayable-$(date -u +%Y%m%dT%H%M%SZ)`): the warehouse then "
            "opens at its last checkpoint, and the raw zone still holds every payload those "
            "transactions loaded"
        )
        self.path = path
        self.wal = wal


class SnapshotNotFoundError(StoreError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no serving snapshot at {path}: run `kasparro ingest` (or `make demo`) to publish one"
        )
        self.path = path


class SnapshotUnreadableError(StoreError):
    def __init__(self, path: Path, exc: duckdb.Error) -> None:
        # DuckDB's message repeats the path; the error names it once.
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        detail = first_line.replace(f'"{path}"', "it").replace(str(path), "it")
        super().__init__(
            f"the serving snapshot {path} cannot be read ({type(exc).__name__}: {detail}): it is "
            "truncated or damaged. Publish it again from the warehouse with `kasparro rebuild` "
            "(or run `kasparro ingest`); the API reopens it by itself"
        )
        self.path = path


class SnapshotOutdatedError(StoreError):
    """The web app (or a command) may be upgraded before the next ingest migrates and
    publishes."""


class WarehouseError(StoreError):
    pass


def from_duckdb(
    exc: duckdb.Error, context: str, *, path: Path | None = None, snapshot: bool = False
) -> StoreError:
    """The store's error for a native DuckDB error. ``context`` says what was being read or
    done; ``path``: the DuckDB file being opened; ``snapshot``: a published file is being read,
    so a missing table or column means it predates this code (in the migrated warehouse it is
    a bug)."""
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, duckdb.IOException) and path is not None and "lock" in str(exc).lower():
        return WarehouseBusyError(path, first_line, lock_holder(path))
    if snapshot and isinstance(exc, duckdb.CatalogException | duckdb.BinderException):
        return SnapshotOutdatedError(
            f"{context} ({first_line}): it was published by an older version; run "
            "`kasparro ingest` to migrate the warehouse and publish a new snapshot"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        advice = (
            "DuckDB needed more than its limit allows: KASPARRO_DUCKDB_MERGE_MEMORY_LIMIT while "
            "merging quotes (a load replacing millions of stored rows at once needs more than "
            "its default), else KASPARRO_DUCKDB_MEMORY_LIMIT; raise the one whose size the "
            "figures in DuckDB's message show, then retry"
        )
    elif isinstance(exc, duckdb.IOException):
        advice = "check the file and its disk (free space, permissions), then retry"
    else:
        advice = (
            "a bug or a damaged warehouse: report it with the log; `kasparro rebuild --from-raw` "
            "re-derives the warehouse from the raw zone"
        )
    return WarehouseError(f"{context}: {type(exc).__name__}: {first_line}; {advice}")


@contextmanager
def converted(context: str, *, snapshot: bool = False) -> Iterator[None]:
    """Native DuckDB errors raised inside become :func:`from_duckdb`'s."""
    try:
        yield
    except duckdb.Error as exc:
        raise from_duckdb(exc, context, snapshot=snapshot) from exc
