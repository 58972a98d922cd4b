"""The API's handle on the serving snapshot: reopened when a new one is published.

Each request stats the file (microseconds); when its identity (inode, mtime, size) changed, the
snapshot is reopened read-only. A request borrows a cursor of its own (threads never share a
result) from a pool and gives it back: opening a cursor costs a statement (``use snapshot``) in
the event loop's thread, reusing one costs nothing. Connections to a replaced snapshot are not
closed under running requests: their cursors are closed as they come back, and the connection
once no cursor uses it.

What a replaced snapshot leaves behind is closed on a thread of its own, never on a request's:
the last close of the old file frees it (the publish renamed another over it), which took
230-340 ms at 10M quotes (1.3 GB) and was charged to the first request after each publish.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
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


def _close_all(
    cursors: list[duckdb.DuckDBPyConnection], released: duckdb.DuckDBPyConnection | None
) -> None:
    """Close ``cursors``; ``released``, a replaced connection, is only let go of here (closing
    it would close the cursors running requests still read from)."""
    for cursor in cursors:
        cursor.close()
    del released


def _closer() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="snapshot-closer")


class Snapshot:
    def __init__(self, path: Path, closer: Executor | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int, int] | None = None
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._owns_closer = closer is None
        self._closer = closer or _closer()
        """Closes what replaced snapshots leave behind, off the requests' threads."""

    def _retire(
        self,
        cursors: list[duckdb.DuckDBPyConnection],
        released: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        self._closer.submit(_close_all, cursors, released)

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
            # The old connection goes with its idle cursors: the closer drops the last
            # reference to it unless a running request's cursor still holds it.
            idle, old = self._idle, self._con
            self._idle = []
            self._con = open_read_only(self.path)
            self._identity = identity
            if old is not None:
                self._retire(idle, old)
            del old
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
            identity = self._identity
            cursor = self._idle.pop() if self._idle else None
        if cursor is None:
            cursor = read_only_cursor(con)
        # The request holds its cursor, not the connection: the cursor may be the last hold on
        # a replaced snapshot, and is then closed by the closer.
        del con
        try:
            yield cursor
        except BaseException:
            # A request that failed gives back nothing half-read.
            self._retire([cursor])
            raise
        with self._lock:
            if identity == self._identity and len(self._idle) < MAX_IDLE_CURSORS:
                self._idle.append(cursor)
                return
        self._retire([cursor])

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

    def settle(self) -> None:
        """Wait until what replaced snapshots left behind is closed."""
        self._closer.submit(lambda: None).result()

    def close(self) -> None:
        with self._lock:
            for idle in self._idle:
                idle.close()
            self._idle = []
            if self._con is not None:
                self._con.close()
            self._con = None
            self._identity = None
        self.settle()
        if self._owns_closer:  # its thread ends; a new one starts if the snapshot is used again
            self._closer.shutdown()
            self._closer = _closer()
