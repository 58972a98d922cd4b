"""Errors raised by the warehouse layer.

    StoreError
     ├── WarehouseBusyError      another process holds the warehouse (transient: wait and retry)
     ├── MigrationError          a schema migration failed or the file is newer than this code
     ├── WalReplayError          DuckDB cannot replay the warehouse's write-ahead log
     └── SnapshotNotFoundError   no serving snapshot has been published yet

Native ``duckdb`` errors are converted in :func:`store.connection.open_warehouse`, the one place
that opens the warehouse for writing.
"""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """Base class for warehouse errors."""


class WarehouseBusyError(StoreError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"warehouse {path} is open in another process ({detail}); only one ingest may write "
            "at a time: wait for the running ingest to finish, then retry"
        )
        self.path = path


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
