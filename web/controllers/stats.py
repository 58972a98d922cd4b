"""Per-source and total counts, last success and failure, durations."""

from __future__ import annotations

import duckdb
import msgspec
from litestar import get
from litestar.di import NamedDependency

from store import queries
from web.schemas import SourceStats, Stats, Totals


@get(
    "/api/v1/stats",
    operation_id="getStats",
    summary="Counts per source and in total, last success and failure, durations",
    tags=["stats"],
    sync_to_thread=True,
)
def stats(db: NamedDependency[duckdb.DuckDBPyConnection]) -> Stats:
    return Stats(
        totals=Totals(**queries.totals(db)),
        sources=msgspec.convert(queries.source_stats(db).to_dicts(), list[SourceStats]),
    )
