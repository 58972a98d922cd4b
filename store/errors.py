"""Errors raised by the warehouse layer.

    StoreError
     ├── WarehouseBusyError      another process holds the warehouse (transient: wait and retry)
     ├── MigrationError          a schema migration failed or the file is newer than this code
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


class SnapshotNotFoundError(StoreError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no serving snapshot at {path}: run `kasparro ingest` (or `make demo`) to publish one"
        )
        self.path = path
