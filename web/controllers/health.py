"""Liveness and readiness: ``/ping`` (the process answers) and ``/health`` (data is servable)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from store import drift, queries
from store.errors import StoreError
from web.controllers.drift import pending_acks
from web.schemas import Health, LastRun, SnapshotInfo
from web.settings import WebSettings
from web.snapshot import Snapshot


@get("/ping", operation_id="ping", summary="The process is up", tags=["health"])
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health",
    operation_id="health",
    summary="Snapshot reachable, last run status and age",
    description="200 with status `ok` or `degraded` (last run failed, one of its sources failed "
    "or was degraded, a drift event is alarming (GET /api/v1/drift?alarming=true), or it is "
    "older than KASPARRO_API_STALE_AFTER_SECONDS); 503 with status `unavailable` when no "
    "snapshot can be read (``snapshot.problem`` says why and what to do).",
    tags=["health"],
    responses={503: ResponseSpec(Health, description="No snapshot can be read: why, and the fix")},
    sync_to_thread=True,
)
def health(
    snapshot: NamedDependency[Snapshot], web_settings: NamedDependency[WebSettings]
) -> Response[Health]:
    try:
        cursor = snapshot.cursor()
        try:
            rows = queries.last_run(cursor).to_dicts()
            alarms = set(drift.alarming_events(cursor)) - set(pending_acks(snapshot))
        finally:
            cursor.close()
    except (StoreError, duckdb.Error) as exc:
        # Readiness answers for itself: not servable, and why (the fix included).
        error = exc if isinstance(exc, StoreError) else snapshot.read_error(exc)
        info = SnapshotInfo(
            path=snapshot.public_path, reachable=False, problem=snapshot.redact(str(error))
        )
        return Response(Health(status="unavailable", snapshot=info), status_code=503)
    info = SnapshotInfo(
        path=snapshot.public_path,
        reachable=True,
        published_at=snapshot.published_at(),
        bytes=snapshot.size(),
    )
    last = None
    status: str = "degraded"
    if rows:
        row = rows[0]
        reference = row["finished_at"] or row["started_at"]
        age = (datetime.now(UTC) - reference).total_seconds()
        last = LastRun(
            run_id=row["run_id"],
            status=row["status"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            age_seconds=round(age, 3),
            error=row["error"],
            problems=row["problems"],
        )
        fresh = age <= web_settings.stale_after_seconds
        if row["status"] == "completed" and fresh and not row["problems"] and not alarms:
            status = "ok"
    health = Health(status=status, snapshot=info, last_run=last, drift_alarms=len(alarms))  # type: ignore[arg-type]
    return Response(health)
