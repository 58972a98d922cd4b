"""The API's handle on the serving snapshot: reopened when a new one is published.

Each request stats the file (microseconds); when its identity (inode, mtime, size) changed, the
snapshot is reopened read-only. A request borrows a cursor of its own (threads never share a
result) from a pool and gives it back: opening a cursor costs a statement (``use snapshot``) in
the event loop's thread, reusing one costs nothing. Connections to a replaced snapshot are not
closed under running requests: their cursors are closed as they come back, and the connection
once no cursor uses it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from store.connection import open_read_only, read_only_cursor
from store.errors import (
    SnapshotNotFoundError,
    SnapshotUnreadableError,
    StoreError,
    from_duckdb,
)

MAX_IDLE_CURSORS = 64
"""Idle cursors kept for reuse (more than the worker threads that could hold one at a time)."""


class Snapshot:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int, int] | None = None
        self._idle: list[duckdb.DuckDBPyConnection] = []

    def _stat(self) -> os.stat_result:
        try:
            return self.path.stat()
        except FileNotFoundError as exc:
            raise SnapshotNotFoundError(self.path) from exc

    def _current(self) -> duckdb.DuckDBPyConnection:
        """The connection to the snapshot published now (call with the lock held)."""
        stat = self._stat()
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._con is None or identity != self._identity:
            for idle in self._idle:
                idle.close()
            self._idle = []
            self._con = open_read_only(self.path)
            self._identity = identity
        return self._con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the current snapshot; the caller closes it."""
        with self._lock:
            return read_only_cursor(self._current())

    @contextmanager
    def borrowed_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the current snapshot for one request, from the pool and back to it."""
        with self._lock:
            con = self._current()
            cursor = self._idle.pop() if self._idle else None
        if cursor is None:
            cursor = read_only_cursor(con)
        try:
            yield cursor
        except BaseException:
            # A request that failed gives back nothing half-read.
            cursor.close()
            raise
        with self._lock:
            if con is self._con and len(self._idle) < MAX_IDLE_CURSORS:
                self._idle.append(cursor)
                return
        cursor.close()

    @property
    def public_directory(self) -> str:
        """The data directory as responses and logs show it: relative to the working directory
        when inside it, else ``<data dir>`` (an absolute path says more about the host than a
        client needs)."""
        directory = self.path.parent.absolute()
        try:
            return str(directory.relative_to(Path.cwd()))
        except ValueError:
            return "<data dir>"

    @property
    def public_path(self) -> str:
        return f"{self.public_directory}/{self.path.name}"

    def redact(self, text: str) -> str:
        """``text`` with every spelling of the data directory's absolute path made public."""
        directory = self.path.parent
        spellings = {str(directory.absolute()), str(directory.resolve())}
        for spelling in sorted(spellings, key=len, reverse=True):
            text = text.replace(spelling, self.public_directory)
        return text

    def read_error(self, exc: duckdb.Error) -> StoreError:
        """The store's error for a query on this snapshot that failed: the file broke under it
        (a read error), or it predates this code (a missing table or column)."""
        if isinstance(exc, duckdb.IOException):
            return SnapshotUnreadableError(self.path, exc)
        return from_duckdb(exc, "reading the serving snapshot", snapshot=True)

    def published_at(self) -> datetime:
        return datetime.fromtimestamp(self._stat().st_mtime, UTC)

    def size(self) -> int:
        return self._stat().st_size

    def close(self) -> None:
        with self._lock:
            for idle in self._idle:
                idle.close()
            self._idle = []
            if self._con is not None:
                self._con.close()
            self._con = None
            self._identity = None
