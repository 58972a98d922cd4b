"""The review reads on a snapshot published before the resolution tables existed: a store error
that says what to run (the API answers 503 with it), never a native DuckDB error."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from store.errors import SnapshotOutdatedError
from store.resolution import alias_target, decision_log, operator_links, review_queue


@pytest.fixture
def empty_snapshot() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def test_the_review_reads_of_an_outdated_snapshot_say_what_to_run(
    empty_snapshot: duckdb.DuckDBPyConnection,
) -> None:
    reads = [
        lambda: review_queue(empty_snapshot, limit=10, offset=0),
        lambda: decision_log(empty_snapshot, outcome=None, limit=10, offset=0),
        lambda: operator_links(empty_snapshot),
    ]
    for read in reads:
        with pytest.raises(SnapshotOutdatedError, match="run `kasparro ingest`"):
            read()


def test_a_snapshot_without_aliases_has_none(empty_snapshot: duckdb.DuckDBPyConnection) -> None:
    assert alias_target(empty_snapshot, "eth-ether") is None
