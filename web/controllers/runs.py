"""Ingest runs: the ledger, one run in detail, and comparisons between two runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import duckdb
import msgspec
import polars as pl
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from store import queries
from store.compare import COUNTS, compare_runs
from web.dependencies import MAX_LIMIT
from web.errors import NotFound
from web.operations_settings import get_operations_settings
from web.schemas import (
    Anomaly,
    Bucket,
    CoinPrice,
    PriceChange,
    Run,
    RunComparison,
    RunPage,
    RunSource,
    SourceDelta,
)

RunStatus = Literal["running", "completed", "failed", "abandoned"]


def _runs(db: NamedDependency[duckdb.DuckDBPyConnection], runs: pl.DataFrame) -> list[Run]:
    per_source = queries.run_sources(db, runs["run_id"].to_list())
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in per_source.to_dicts():
        by_run.setdefault(row.pop("run_id"), []).append(row)
    settings = get_operations_settings()
    items = []
    for row in runs.to_dicts():
        finished, started = row["finished_at"], row["started_at"]
        flow_run = row["flow_run_id"]
        items.append(
            Run(
                **{k: v for k, v in row.items() if k != "sources"},
                prefect_url=settings.flow_run_url(flow_run) if flow_run else None,
                duration_seconds=(finished - started).total_seconds() if finished else None,
                sources=msgspec.convert(by_run.get(row["run_id"], []), list[RunSource]),
            )
        )
    return items


def _require_run(db: NamedDependency[duckdb.DuckDBPyConnection], run_id: str, role: str) -> None:
    if queries.run_list(db, run_id=run_id).is_empty():
        raise NotFound(f"{role} run {run_id!r} does not exist; list runs at /api/v1/runs")


class RunsController(Controller):
    path = "/api/v1/runs"
    tags = ("runs",)

    @get(operation_id="listRuns", summary="Ingest runs, newest first", sync_to_thread=True)
    def list_runs(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        status: Annotated[
            RunStatus | None, Parameter(description="Only runs in this status.")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> RunPage:
        runs = queries.run_list(db, status=status, limit=limit, offset=offset)
        return RunPage(items=_runs(db, runs), limit=limit, offset=offset)

    @get(
        "/compare",
        operation_id="compareRuns",
        summary="What changed between two runs",
        description="Per-source count deltas, coins added and removed, the distribution of "
        "price changes (median across sources), top movers and anomalies.",
        raises=[NotFound],
        sync_to_thread=True,
    )
    def compare(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        base: Annotated[str, Parameter(description="The earlier run id.", max_length=64)],
        head: Annotated[str, Parameter(description="The later run id.", max_length=64)],
        top: Annotated[int, Parameter(ge=1, le=100, description="How many top movers.")] = 10,
        anomaly_pct: Annotated[
            float,
            Parameter(gt=0, le=10_000, description="Price move (percent) flagged as anomaly."),
        ] = 50.0,
    ) -> RunComparison:
        _require_run(db, base, "base")
        _require_run(db, head, "head")
        result = compare_runs(db, base, head, top=top, anomaly_pct=anomaly_pct)
        sources = [
            SourceDelta(
                source=row["source"],
                base_status=row["base_status"],
                head_status=row["head_status"],
                base={c: row[f"base_{c}"] for c in COUNTS},
                head={c: row[f"head_{c}"] for c in COUNTS},
                delta={c: row[f"delta_{c}"] for c in COUNTS},
            )
            for row in result.sources.to_dicts()
        ]
        return RunComparison(
            base=base,
            head=head,
            sources=sources,
            coins_added=msgspec.convert(result.added.to_dicts(), list[CoinPrice]),
            coins_removed=msgspec.convert(result.removed.to_dicts(), list[CoinPrice]),
            price_change_distribution=result.distribution(),
            price_change_buckets=msgspec.convert(result.buckets(), list[Bucket]),
            top_movers=msgspec.convert(result.movers.to_dicts(), list[PriceChange]),
            anomalies=msgspec.convert(result.anomalies, list[Anomaly]),
        )

    @get(
        "/{run_id:str}",
        operation_id="getRun",
        summary="One run with its per-source results",
        raises=[NotFound],
        sync_to_thread=True,
    )
    def get_run(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        run_id: Annotated[str, Parameter(description="Run id, e.g. 20261125T104105Z-3f9a2c.")],
    ) -> Run:
        runs = queries.run_list(db, run_id=run_id)
        if runs.is_empty():
            raise NotFound(f"no run {run_id!r}; list runs at /api/v1/runs")
        return _runs(db, runs)[0]
