"""Schema drift events and data-quality findings, and operators' acknowledgements of events.

As with resolution decisions, the API never opens the warehouse: an acknowledgement is written
to the acknowledgement inbox beside the snapshot (``<data dir>/drift/acks``). It takes effect at
once for this API (the event is served acknowledged and stops raising the alarm in /health) and
is recorded in the warehouse by the next ingest run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import duckdb
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED

from store import drift
from store.quality import quality_checks
from store.settings import DRIFT_ACKS
from web.controllers.resolution import (
    SECURITY_SCHEME,
    Forbidden,
    Unauthorized,
    require_decisions_token,
)
from web.dependencies import MAX_LIMIT
from web.errors import NotFound
from web.schemas import (
    Acknowledge,
    DriftEvent,
    DriftPage,
    QualityFinding,
    QualityPage,
)
from web.snapshot import Snapshot

Severity = Literal["info", "warning", "error"]
APPLIES = "served at once; recorded in the warehouse by the next ingest run"


def pending_acks(snapshot: Snapshot) -> dict[str, drift.Acknowledgement]:
    """Acknowledgements received and not yet recorded by a run."""
    return drift.read_acks(snapshot.path.parent / DRIFT_ACKS)


def _event(row: dict[str, object], pending: dict[str, drift.Acknowledgement]) -> DriftEvent:
    ack = pending.get(str(row["event_id"]))
    if ack is not None and row["acknowledged_at"] is None:
        row = {
            **row,
            "acknowledged_at": ack.acknowledged_at,
            "acknowledged_by": ack.acknowledged_by,
            "acknowledged_note": ack.note,
            "acknowledgement_pending": True,
        }
    alarming = row["acknowledged_at"] is None and row["severity"] != "info"
    return DriftEvent(**row, alarming=alarming)  # type: ignore[arg-type]


class DriftController(Controller):
    path = "/api/v1"
    tags = ("drift",)

    @get(
        "/drift",
        operation_id="listDriftEvents",
        summary="Schema drift events, newest first: class, field, policy applied, severity",
        description="What each run's payload comparison with its source's contract and the "
        "previous run's observation found. `alarming`: events not acknowledged above info.",
        sync_to_thread=True,
    )
    def list_drift(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        snapshot: NamedDependency[Snapshot],
        *,
        run_id: Annotated[str | None, Parameter(max_length=100, description="One run.")] = None,
        source: Annotated[str | None, Parameter(max_length=50, description="One source.")] = None,
        severity: Annotated[Severity | None, Parameter(description="One severity.")] = None,
        alarming: Annotated[
            bool | None, Parameter(description="Only alarming (true) or only quiet (false).")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> DriftPage:
        pending = pending_acks(snapshot)
        if alarming is None or not pending:
            rows, total = drift.drift_events(
                db, run_id=run_id, source=source, severity=severity, alarming=alarming,
                limit=limit, offset=offset,
            )  # fmt: skip
            items = [_event(r, pending) for r in rows.to_dicts()]
            return DriftPage(items=items, total=total, limit=limit, offset=offset)
        # Acknowledgements not yet recorded decide ``alarming`` here: filter after merging.
        rows, _ = drift.drift_events(
            db, run_id=run_id, source=source, severity=severity, limit=10_000_000
        )
        every = [e for r in rows.to_dicts() if (e := _event(r, pending)).alarming == alarming]
        return DriftPage(
            items=every[offset : offset + limit], total=len(every), limit=limit, offset=offset
        )

    @post(
        "/drift/{event_id:str}/acknowledge",
        operation_id="acknowledgeDriftEvent",
        summary="Acknowledge a drift event: who, when, a note; it stops raising the alarm",
        description="Requires Authorization: Bearer <KASPARRO_API_DECISIONS_TOKEN>. Served "
        "acknowledged at once; the next ingest run records it in the warehouse.",
        status_code=HTTP_202_ACCEPTED,
        guards=[require_decisions_token],
        security=[{SECURITY_SCHEME: []}],
        raises=[Unauthorized, Forbidden, NotFound],
        sync_to_thread=True,
    )
    def acknowledge(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        snapshot: NamedDependency[Snapshot],
        event_id: Annotated[str, Parameter(max_length=64, description="The event's id.")],
        data: JSONBody[Acknowledge],
    ) -> DriftEvent:
        rows, total = drift.drift_events(db, event_id=event_id, limit=1)
        if not total:
            raise NotFound(f"no drift event {event_id!r}: list them at GET /api/v1/drift")
        ack = drift.Acknowledgement(event_id, data.acknowledged_by, datetime.now(UTC), data.note)
        drift.write_ack(snapshot.path.parent / DRIFT_ACKS, ack)
        return _event(rows.to_dicts()[0], {event_id: ack})

    @get(
        "/quality",
        operation_id="listQualityFindings",
        summary="Data-quality findings of each run and source, newest run first",
        description="Per field (market cap vs price x supply, supply above max, stale records, "
        "null-rate spikes, out-of-range values), across runs (price jumps, coins leaving the "
        "top list, count drops) and across sources (deviation from the consensus, a US dollar "
        "stablecoin off its peg: a listing in another currency).",
        sync_to_thread=True,
    )
    def list_quality(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        run_id: Annotated[str | None, Parameter(max_length=100, description="One run.")] = None,
        source: Annotated[str | None, Parameter(max_length=50, description="One source.")] = None,
        severity: Annotated[Severity | None, Parameter(description="One severity.")] = None,
        check: Annotated[
            str | None, Parameter(max_length=50, description="One check, e.g. price_jump.")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> QualityPage:
        rows, total = quality_checks(
            db, run_id=run_id, source=source, severity=severity, check_name=check,
            limit=limit, offset=offset,
        )  # fmt: skip
        items = [QualityFinding(**r) for r in rows.to_dicts()]
        return QualityPage(items=items, total=total, limit=limit, offset=offset)
