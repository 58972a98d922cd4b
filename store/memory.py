"""DuckDB's memory limit lowered for one step of the writer's work.

The writer's limit (``KASPARRO_DUCKDB_MEMORY_LIMIT``) suits work that is wide, not long: a first
load resolving tens of thousands of new assets. Merging quotes grows with the file instead, and
DuckDB's buffer pool fills whatever limit it has with blocks the merge writes once and does not
read again: under 256 MiB a 500 MB CSV file's process peaked at 618 MiB, with the merge under 64
MiB at 437 MiB, in the same time (63 s). So the quotes merge runs under its own limit
(``KASPARRO_DUCKDB_MERGE_MEMORY_LIMIT``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

logger = logging.getLogger(__name__)

_AFTER_ROLLBACK: dict[int, str] = {}
"""Connection id -> the limit to put back once its aborted transaction has rolled back: DuckDB
takes no SET in an aborted transaction."""


@contextmanager
def memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """Run the block under ``limit`` (validated by the settings' pattern), then put the
    connection's limit back; after an error, once :func:`store.connection.transaction` has
    rolled back."""
    (before,) = con.execute("select current_setting('memory_limit')").fetchall()[0]
    # SET takes no bound parameters.
    con.execute(f"set memory_limit = '{limit}'")
    try:
        yield
    finally:
        try:
            con.execute(f"set memory_limit = '{before}'")
        except duckdb.TransactionException:
            _AFTER_ROLLBACK[id(con)] = str(before)
        except duckdb.Error as exc:
            # DuckDB reads an unlimited setting back as a size it will not take ('16383.9 PiB'):
            # say so rather than hide what the block raised.
            logger.warning("DuckDB's memory limit stays at %s, not %s: %s", limit, before, exc)


def restore_after_rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Put back a limit :func:`memory_limit` could not while the transaction was aborted."""
    if (before := _AFTER_ROLLBACK.pop(id(con), None)) is not None:
        con.execute(f"set memory_limit = '{before}'")
