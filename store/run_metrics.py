"""What /metrics reports of the runs, read from a published snapshot: each source's last load
and the drift events recorded per source (when the snapshot has a drift table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

DRIFT_TABLE = "drift_events"
"""Schema-drift events, one row per event with a ``source`` column (flows.transform; absent from
snapshots published before drift was recorded)."""


@dataclass(frozen=True)
class SourceLastRun:
    source: str
    run_id: str
    status: str
    finished_at: datetime | None
    seconds: float
    fetched: int
    inserted: int
    updated: int
    quarantined: int


def last_source_runs(cur: duckdb.DuckDBPyConnection) -> list[SourceLastRun]:
    """Each source's latest ledger row (by its run's start), skipped sources included."""
    rows = cur.execute(
        """
        select
            s.source, s.run_id, s.status, coalesce(s.finished_at, r.finished_at),
            coalesce(s.extract_seconds, 0) + coalesce(s.transform_seconds, 0)
                + coalesce(s.load_seconds, 0),
            s.fetched, s.inserted, s.updated, s.quarantined
        from run_sources s
        join runs r using (run_id)
        qualify row_number() over (partition by s.source order by r.started_at desc) = 1
        order by s.source
        """
    ).fetchall()
    return [SourceLastRun(*row) for row in rows]


def drift_events(cur: duckdb.DuckDBPyConnection) -> dict[str, int] | None:
    """Drift events per source, or None when the snapshot has no drift table."""
    found = cur.execute(
        "select count(*) from information_schema.tables where table_name = ?", [DRIFT_TABLE]
    ).fetchone()
    if not found or not found[0]:
        return None
    rows = cur.execute(f"select source, count(*) from {DRIFT_TABLE} group by source").fetchall()
    return {str(source): int(count) for source, count in rows}
