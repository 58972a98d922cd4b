"""For the platform that runs the API: ``/metrics`` (Prometheus) and ``/ready`` (may this
instance take traffic: is there a snapshot, fresh enough for the schedule?)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST

from store.errors import StoreError
from web.metrics import exposition
from web.operations_settings import get_operations_settings
from web.snapshot import Snapshot


class Readiness(msgspec.Struct):
    ready: bool
    reason: str
    snapshot_age_seconds: float | None = None
    max_age_seconds: float | None = None


# Prometheus' text format; Litestar appends the charset (CONTENT_TYPE_LATEST names it already,
# and the header would carry it twice).
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST.split("; charset")[0]


@get(
    "/metrics",
    operation_id="getMetrics",
    summary="Prometheus metrics: HTTP, each source's last run, snapshot age",
    tags=["operations"],
    sync_to_thread=True,
    media_type=METRICS_MEDIA_TYPE,
)
def metrics(snapshot: NamedDependency[Snapshot]) -> Response[bytes]:
    return Response(exposition(snapshot), media_type=METRICS_MEDIA_TYPE)


@get(
    "/ready",
    operation_id="getReadiness",
    summary="200 when a snapshot is published and younger than the schedule allows, else 503",
    description="503 with the reason when no snapshot can be read or it is older than "
    "KASPARRO_API_READY_MAX_AGE_SECONDS (default two hourly intervals).",
    tags=["health"],
    sync_to_thread=True,
)
def ready(snapshot: NamedDependency[Snapshot]) -> Response[Readiness]:
    max_age = get_operations_settings().ready_max_age_seconds
    try:
        snapshot.cursor().close()
    except StoreError as exc:
        return Response(Readiness(ready=False, reason=str(exc)), status_code=503)
    age = round((datetime.now(UTC) - snapshot.published_at()).total_seconds(), 3)
    if age > max_age:
        reason = (
            f"the snapshot {snapshot.path} is {age:.0f}s old, more than the {max_age:.0f}s the "
            "schedule allows (KASPARRO_API_READY_MAX_AGE_SECONDS): the scheduled ingest has "
            "not published; check its runs in the Prefect UI"
        )
        return Response(Readiness(False, reason, age, max_age), status_code=503)
    return Response(Readiness(True, "snapshot published and fresh", age, max_age))
