"""The run ledger (``runs``, ``run_sources``, ``run_seen``, ``run_files``) and checkpoints, kept
inside the warehouse.

A source's result row, the raw files its load read and its checkpoints are written in the same
transaction as its data, so the ledger never claims a load that did not commit and a checkpoint is
never ahead of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import duckdb
import polars as pl

from store.schema import SEEN

RunStatus = Literal["running", "completed", "failed", "abandoned"]
RunMode = Literal["snapshot", "history"]
SourceStatus = Literal["loaded", "degraded", "failed", "skipped"]
"""``degraded``: loaded, but a share of what it delivered below the floor was valid, or its
payload drifted in a way its policy warns about (flows.drift); ``failed``: nothing of it loaded
(an error, a payload a policy refuses, or records delivered of which none was valid)."""
COMMITTED = ("loaded", "degraded")
"""Statuses of a source whose load committed its rows."""


@dataclass
class SourceResult:
    """One source's outcome within a run."""

    run_id: str
    source: str
    status: SourceStatus
    requests: int = 0
    fetched: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    rounded: int = 0
    """Money values stored rounded to 18 places: float noise (flows.transform.quotes)."""
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    extract_seconds: float | None = None
    transform_seconds: float | None = None
    load_seconds: float | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    raw_files: list[str] = field(default_factory=list)
    seen: pl.DataFrame | None = None
    """:data:`store.schema.SEEN`: the latest valid observation of each asset delivered."""
    delivery_sha256: str | None = None
    """The identity of what the extract delivered (flows.delivery)."""
    repeat_of: str | None = None
    """The run whose load of the same delivery this one repeats, without loading it again."""
    repeatable_until: datetime | None = None
    """When a verdict of this load may turn if the same bytes are read again (None: never)."""


_RESULT_COLUMNS = ("run_id", "source", "status", "requests", "fetched", "valid", "quarantined",
                   "duplicates", "inserted", "updated", "unchanged", "started_at", "finished_at",
                   "extract_seconds", "transform_seconds", "load_seconds", "error",
                   "warnings", "delivery_sha256", "repeat_of", "repeatable_until",
                   "rounded")  # fmt: skip


def start_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    flow_run_id: str | None,
    started_at: datetime,
    sources: list[str],
    replay_dir: str | None,
    mode: RunMode = "snapshot",
) -> None:
    # The caller holds the warehouse, so a run still marked running elsewhere died mid-way.
    con.execute(
        "update runs set status = 'abandoned', error = 'the process ended before the run "
        "finished; its committed sources stay loaded' where status = 'running' and run_id <> ?",
        [run_id],
    )
    con.execute(
        """
        insert into runs (run_id, flow_run_id, mode, started_at, status, sources, replay_dir)
        values (?, ?, ?, ?, 'running', ?, ?)
        on conflict (run_id) do update set status = 'running', finished_at = null, error = null,
            -- the flow run carrying the run on (a retry, or a new run resuming a dead one)
            flow_run_id = coalesce(excluded.flow_run_id, runs.flow_run_id)
        """,
        [run_id, flow_run_id, mode, started_at, sources, replay_dir],
    )


def record_source(
    con: duckdb.DuckDBPyConnection, result: SourceResult, *, seen_of: str | None = None
) -> None:
    """Write ``result``'s ledger row and, if it has them, its ``run_seen`` rows (replacing any
    an earlier attempt of the run wrote). ``seen_of`` names a run whose rows for the same source
    this run takes instead of ``result.seen`` (a repeated delivery): operator decisions move
    every run's pointers along (store.resolution), so they are current."""
    placeholders = ", ".join("?" for _ in _RESULT_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _RESULT_COLUMNS[2:])
    con.execute(
        f"""
        insert into run_sources ({", ".join(_RESULT_COLUMNS)})
        values ({placeholders})
        on conflict (run_id, source) do update set {updates}
        """,
        [getattr(result, c) for c in _RESULT_COLUMNS],
    )
    if seen_of is None and result.seen is None:
        return
    key = [result.run_id, result.source]
    con.execute("delete from run_seen where run_id = ? and source = ?", key)
    if seen_of is not None:
        con.execute(
            f"""
            insert into run_seen
            select $run, source, {", ".join(SEEN)}
            from run_seen
            where run_id = $of and source = $source
            """,
            {"run": result.run_id, "of": seen_of, "source": result.source},
        )
        return
    assert result.seen is not None
    if result.seen.schema != SEEN:
        raise TypeError(f"seen: expected schema {SEEN}, got {result.seen.schema}")
    con.register("stage_seen", result.seen)
    try:
        con.execute(
            f"insert into run_seen select ?, ?, {', '.join(SEEN)} from stage_seen",
            key,
        )
    finally:
        con.unregister("stage_seen")


def record_files(
    con: duckdb.DuckDBPyConnection, run_id: str, source: str, files: Sequence[str]
) -> None:
    """Add ``files`` (paths below the raw root) to what the source's load read in the run. Call
    it in the transaction that commits the load's data."""
    record_files_of(con, [(run_id, source, f) for f in files])


_LISTED = pl.Schema({"run_id": pl.String(), "source": pl.String(), "raw_file": pl.String()})


def record_files_of(con: duckdb.DuckDBPyConnection, listed: Sequence[tuple[str, str, str]]) -> None:
    """Add the (run, source, file) rows run_files does not hold yet, in one statement: DuckDB
    gives each statement's rows in a transaction blocks of their own, so a statement per load
    of a rebuild's thousand recovered loads filled a 64 MiB limit."""
    con.register("listed_files", pl.DataFrame(listed, schema=_LISTED, orient="row"))
    try:
        con.execute(
            """
            insert into run_files
            select distinct l.run_id, l.source, l.raw_file
            from listed_files as l
            anti join run_files as f
                on f.run_id = l.run_id and f.source = l.source and f.raw_file = l.raw_file
            """
        )
    finally:
        con.unregister("listed_files")


@dataclass(frozen=True)
class CommittedLoad:
    """A (run, source) whose load committed: the raw files it read."""

    run_id: str
    source: str
    files: list[str]
    """Paths below the raw root, sorted."""
    unlisted: bool
    """Committed before the ledger listed files (version 5): it read the last attempt of every
    page the run kept for the source."""


def committed_loads(con: duckdb.DuckDBPyConnection) -> list[CommittedLoad]:
    """Every load the ledger says committed, by run id then source name."""
    rows = con.execute(
        """
        select
            run_id,
            source,
            list(raw_file order by raw_file) filter (where raw_file is not null) as files,
            bool_or(raw_file is null) as unlisted
        from run_files
        group by run_id, source
        order by run_id, source
        """
    ).fetchall()
    return [CommittedLoad(str(r), str(s), list(f or []), bool(u)) for r, s, f, u in rows]


def recorded_repeats(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """(run, source) pairs the ledger records as repeating an earlier load (``repeat_of``)."""
    rows = con.execute(
        "select run_id, source from run_sources where repeat_of is not null"
    ).fetchall()
    return {(str(r), str(s)) for r, s in rows}


@dataclass(frozen=True)
class RecoveredLoad:
    """A load that no run committed and a rebuild recovered from the raw zone."""

    run_id: str
    source: str
    files: Sequence[str]
    note: str
    """Why it is in the ledger: among the source's warnings, and the run's error if the ledger
    never knew the run."""
    started_at: datetime
    """The run's start, for a run the ledger never knew."""


_RECOVERED = pl.Schema(
    {
        "position": pl.Int64(),
        "run_id": pl.String(),
        "source": pl.String(),
        "note": pl.String(),
        "started_at": pl.Datetime("us", "UTC"),
    }
)


def record_recovered(con: duckdb.DuckDBPyConnection, loads: Sequence[RecoveredLoad]) -> None:
    """Record loads a rebuild recovered, all in three statements: their files, a ``loaded``
    ledger row each with its note among the warnings (a failed row keeps its error), and the
    run's row if the ledger never knew the run (its error the note of its first load)."""
    if not loads:
        return
    if len({(r.run_id, r.source) for r in loads}) < len(loads):
        raise ValueError("record_recovered: a (run, source) is listed twice; give each load once")
    rows = [(i, r.run_id, r.source, r.note, r.started_at) for i, r in enumerate(loads)]
    con.register("recovered", pl.DataFrame(rows, schema=_RECOVERED, orient="row"))
    try:
        now = datetime.now(UTC)
        con.execute(
            """
            insert into runs (run_id, mode, started_at, finished_at, status, sources, error)
            select
                run_id, 'snapshot', min(started_at), $now, 'abandoned',
                list(source order by position), arg_min(note, position)
            from recovered
            group by run_id
            on conflict (run_id) do update set
                sources = list_distinct(list_concat(runs.sources, excluded.sources))
            """,
            {"now": now},
        )
        con.execute(
            """
            insert into run_sources (run_id, source, status, finished_at, warnings)
            select run_id, source, 'loaded', $now, list(note order by position)
            from recovered
            group by run_id, source
            on conflict (run_id, source) do update set
                status = 'loaded',
                warnings = list_concat(run_sources.warnings, excluded.warnings)
            """,
            {"now": now},
        )
    finally:
        con.unregister("recovered")
    record_files_of(con, [(r.run_id, r.source, f) for r in loads for f in r.files])


@dataclass(frozen=True)
class LastLoad:
    """A source's previous load: its run, what it delivered and the counts it derived."""

    run_id: str
    status: SourceStatus
    finished_at: datetime | None
    delivery_sha256: str | None
    repeatable_until: datetime | None
    valid: int
    quarantined: int
    duplicates: int
    delivered: int
    """Rows after the in-batch duplicate rule: inserted + updated + unchanged."""
    rounded: int


def last_load(con: duckdb.DuckDBPyConnection, source: str, *, before: str) -> LastLoad | None:
    """The source's latest ledger row that was not skipped, in a run other than ``before``."""
    rows = con.execute(
        """
        select run_id, status, finished_at, delivery_sha256, repeatable_until, valid,
            quarantined, duplicates,
            inserted + updated + unchanged, rounded
        from run_sources
        where source = ? and run_id <> ? and status <> 'skipped'
        order by finished_at desc nulls last, run_id desc
        limit 1
        """,
        [source, before],
    ).fetchall()
    return LastLoad(*rows[0]) if rows else None


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, status: RunStatus, error: str | None
) -> None:
    con.execute(
        "update runs set status = ?, finished_at = ?, error = ? where run_id = ?",
        [status, datetime.now(UTC), error, run_id],
    )


def _write_checkpoint(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    stream: str,
    position: str,
    run_id: str,
    moves_when: str,
) -> None:
    con.execute(
        f"""
        insert into checkpoints (source, stream, position, run_id, updated_at)
        values (?, ?, ?, ?, ?)
        on conflict (source, stream) do update set
            position = excluded.position,
            run_id = excluded.run_id,
            updated_at = excluded.updated_at
        where excluded.position {moves_when} checkpoints.position
        """,
        [source, stream, position, run_id, datetime.now(UTC)],
    )


def advance_checkpoint(
    con: duckdb.DuckDBPyConnection, *, source: str, stream: str, position: str, run_id: str
) -> None:
    """Move an ordered checkpoint forward; an older or equal position leaves it as it is."""
    _write_checkpoint(
        con, source=source, stream=stream, position=position, run_id=run_id, moves_when=">"
    )


def set_checkpoint(
    con: duckdb.DuckDBPyConnection, *, source: str, stream: str, position: str, run_id: str
) -> None:
    """Record a checkpoint that is not ordered (a file's sha256): the latest load wins."""
    _write_checkpoint(
        con, source=source, stream=stream, position=position, run_id=run_id, moves_when="<>"
    )


def checkpoint(con: duckdb.DuckDBPyConnection, source: str, stream: str) -> str | None:
    rows = con.execute(
        "select position from checkpoints where source = ? and stream = ?", [source, stream]
    ).fetchall()
    return str(rows[0][0]) if rows else None


def checkpoints_of(con: duckdb.DuckDBPyConnection, source: str, *, prefix: str) -> dict[str, str]:
    """A source's checkpoints whose stream starts with ``prefix`` (stream -> position)."""
    rows = con.execute(
        "select stream, position from checkpoints where source = ? and starts_with(stream, ?)",
        [source, prefix],
    ).fetchall()
    return {str(stream): str(position) for stream, position in rows}


@dataclass(frozen=True)
class Resumable:
    """A run to carry on: its id, start time, and the sources it already loaded."""

    run_id: str
    started_at: datetime
    loaded: list[str]


def resumable_run(
    con: duckdb.DuckDBPyConnection,
    *,
    flow_run_id: str | None,
    sources: list[str],
    replay_dir: str | None,
    mode: RunMode = "snapshot",
) -> Resumable | None:
    """The run this ingest continues, if any: the earlier attempt of the same Prefect flow run
    (an operator's retry), or a run still marked running with the same sources and replay
    directory. The caller holds the warehouse, so such a run is not alive: it died mid-way."""
    rows = con.execute(
        """
        select run_id, started_at
        from runs
        where flow_run_id = ?
            or (
                status = 'running'
                and mode = ?
                and sources = ?
                and replay_dir is not distinct from ?
            )
        order by (flow_run_id = ?) desc nulls last, started_at desc
        limit 1
        """,
        [flow_run_id, mode, sources, replay_dir, flow_run_id],
    ).fetchall()
    if not rows:
        return None
    run_id, started_at = rows[0]
    loaded = con.execute(
        "select source from run_sources where run_id = ? and list_contains(?, status)",
        [run_id, list(COMMITTED)],
    ).fetchall()
    return Resumable(str(run_id), started_at, sorted(str(s) for (s,) in loaded))


def source_results(
    con: duckdb.DuckDBPyConnection, run_id: str, sources: list[str]
) -> list[SourceResult]:
    """The ledger rows of ``sources`` in a run (for a resumed run's summary)."""
    if not sources:
        return []
    frame = con.execute(
        f"select {', '.join(_RESULT_COLUMNS)} from run_sources "
        "where run_id = ? and list_contains(?, source)",
        [run_id, sources],
    ).pl()
    return [SourceResult(**row) for row in frame.to_dicts()]


def flow_run_of(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[bool, str | None]:
    """Whether the ledger has ``run_id``, and the Prefect flow run it points at."""
    rows = con.execute("select flow_run_id from runs where run_id = ?", [run_id]).fetchall()
    return (True, rows[0][0]) if rows else (False, None)
