"""The API's handle on the serving snapshot: reopened when a new one is published.

Each request stats the file (microseconds); when its identity (inode, mtime, size) changed, the
snapshot is reopened read-only. Requests get their own cursor, so threads never share a result.
Connections to a replaced snapshot are not closed under running requests: they are dropped and
closed once no cursor uses them.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from store.connection import open_read_only, read_only_cursor
from store.errors import SnapshotNotFoundError


class Snapshot:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int, int] | None = None

    def _stat(self) -> os.stat_result:
        try:
            return self.path.stat()
        except FileNotFoundError as exc:
            raise SnapshotNotFoundError(self.path) from exc

    def cursor(self) -> duckdb.DuckDBPyConnection:
        stat = self._stat()
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._con is None or identity != self._identity:
                self._con = open_read_only(self.path)
                self._identity = identity
            return read_only_cursor(self._con)

    def published_at(self) -> datetime:
        return datetime.fromtimestamp(self._stat().st_mtime, UTC)

    def size(self) -> int:
        return self._stat().st_size

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None
            self._identity = None
