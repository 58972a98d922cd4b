"""Schema observations and drift events (``schema_observations``, ``drift_events``), and the
operators' acknowledgements of events.

An acknowledgement is received by the API, which serves a read-only snapshot: it is written to
the acknowledgement inbox (``<data dir>/drift/acks``, one JSON file per event), read by the API
at once (an acknowledged event stops raising the alarm) and recorded in the warehouse by the
next ingest run (:func:`import_acks`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class ObservedField:
    run_id: str
    source: str
    endpoint: str
    field: str
    records: int
    present: int
    nulls: int
    types: str
    """JSON object: type -> records."""
    sample: str
    """JSON object: asset id -> value."""
    observed_at: datetime


@dataclass(frozen=True)
class DriftEvent:
    event_id: str
    run_id: str
    source: str
    endpoint: str
    field: str
    drift_class: str
    related_field: str | None
    confidence: float | None
    required: bool
    policy: str
    severity: str
    detail: str
    affected: int
    detected_at: datetime


def record_drift(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    source: str,
    observed: list[ObservedField],
    events: list[DriftEvent],
) -> None:
    """Replace the run's observation and events of ``source`` (a retried run writes them again;
    an acknowledgement already recorded is kept)."""
    key = [run_id, source]
    con.execute("delete from schema_observations where run_id = ? and source = ?", key)
    if observed:
        con.executemany(
            "insert into schema_observations values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [list(asdict(o).values()) for o in observed],
        )
    kept = [e.event_id for e in events]
    con.execute(
        "delete from drift_events where run_id = ? and source = ? "
        "and not list_contains(?, event_id)",
        [*key, kept],
    )
    for event in events:
        con.execute(
            """
            insert into drift_events (
                event_id, run_id, source, endpoint, field, drift_class, related_field,
                confidence, required, policy, severity, detail, affected, detected_at
            )
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            on conflict (event_id) do update set
                policy = excluded.policy,
                severity = excluded.severity,
                detail = excluded.detail,
                affected = excluded.affected,
                confidence = excluded.confidence
            """,
            list(asdict(event).values()),
        )


def previous_observation(
    con: duckdb.DuckDBPyConnection, source: str, endpoint: str, *, before: str
) -> list[ObservedField]:
    """The fields of the latest observation of ``source``'s ``endpoint`` in a run other than
    ``before`` (run ids sort by start time)."""
    rows = con.execute(
        """
        with latest as (
            select max(run_id) as run_id
            from schema_observations
            where source = $source and endpoint = $endpoint and run_id < $before
        )
        select o.*
        from schema_observations as o
        join latest using (run_id)
        where o.source = $source and o.endpoint = $endpoint
        order by o.field
        """,
        {"source": source, "endpoint": endpoint, "before": before},
    ).fetchall()
    return [ObservedField(*row) for row in rows]


def drift_events(
    cur: duckdb.DuckDBPyConnection,
    *,
    event_id: str | None = None,
    run_id: str | None = None,
    source: str | None = None,
    severity: str | None = None,
    alarming: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[pl.DataFrame, int]:
    """Events, newest first, and how many match. ``alarming``: only events not acknowledged
    and above ``info`` (or, False, only the others)."""
    conditions, params = [], []
    filters = (("event_id", event_id), ("run_id", run_id), ("source", source),
               ("severity", severity))  # fmt: skip
    for column, value in filters:
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if alarming is not None:
        test = "(acknowledged_at is null and severity <> 'info')"
        conditions.append(test if alarming else f"not {test}")
    where = f"where {' and '.join(conditions)}" if conditions else ""
    total = cur.execute(f"select count(*) from drift_events {where}", params).fetchall()[0][0]
    rows = cur.execute(
        f"""
        select *
        from drift_events
        {where}
        order by detected_at desc, event_id
        limit ? offset ?
        """,
        [*params, limit, offset],
    ).pl()
    return rows, int(total)


def alarming_events(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Ids of events not acknowledged whose severity is above info."""
    rows = cur.execute(
        "select event_id from drift_events "
        "where acknowledged_at is null and severity <> 'info' order by event_id"
    ).fetchall()
    return [str(r) for (r,) in rows]


@dataclass(frozen=True)
class Acknowledgement:
    event_id: str
    acknowledged_by: str
    acknowledged_at: datetime
    note: str | None


def write_ack(inbox: Path, ack: Acknowledgement) -> None:
    """One file per event (a later acknowledgement replaces it), written atomically."""
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / f"{ack.event_id}.json"
    tmp = target.with_suffix(".tmp")
    body = {**asdict(ack), "acknowledged_at": ack.acknowledged_at.isoformat()}
    tmp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(tmp, target)


def read_acks(inbox: Path) -> dict[str, Acknowledgement]:
    """The acknowledgements waiting in the inbox, by event id."""
    found: dict[str, Acknowledgement] = {}
    if not inbox.is_dir():
        return found
    for path in sorted(inbox.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        found[body["event_id"]] = Acknowledgement(
            body["event_id"],
            body["acknowledged_by"],
            datetime.fromisoformat(body["acknowledged_at"]),
            body["note"],
        )
    return found


def import_acks(con: duckdb.DuckDBPyConnection, inbox: Path) -> int:
    """Record the inbox's acknowledgements on their events and empty it; returns how many."""
    acks = read_acks(inbox)
    for ack in acks.values():
        con.execute(
            """
            update drift_events set
                acknowledged_at = ?, acknowledged_by = ?, acknowledged_note = ?
            where event_id = ?
            """,
            [ack.acknowledged_at, ack.acknowledged_by, ack.note, ack.event_id],
        )
    for event_id in acks:
        (inbox / f"{event_id}.json").unlink(missing_ok=True)
    return len(acks)
