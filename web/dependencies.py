"""What controllers receive by dependency injection (tests swap these with ``Provide``)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
from litestar.di import NamedDependency

from web.snapshot import Snapshot

MAX_LIMIT = 1000
"""Largest ``limit`` a list endpoint accepts."""


def provide_db(snapshot: NamedDependency[Snapshot]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on the current serving snapshot for the duration of one request.

    Litestar runs generator dependencies in the event loop's thread: borrowing a pooled cursor
    does not block it (opening one would run a statement there).
    """
    with snapshot.borrowed_cursor() as cursor:
        yield cursor
