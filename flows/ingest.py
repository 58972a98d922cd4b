"""The ``ingest`` flow: extract every source, transform, resolve and load, publish the snapshot.

Extracts run concurrently (each a retrying task; only transient errors are retried). Then, in
the fixed source order, each source is transformed and loaded in its own transaction: a source
that fails does not stop the others from loading, and the run ends Failed if any source failed.
The flow is the warehouse's only writer; it holds the warehouse for the whole run, so a second
concurrent ingest is refused with a clear message instead of interleaving. Before any source
loads, it applies the operator decisions the API received since the last run (store.resolution).
A run with a failed source returns a Failed state whose message names each failed source, its URL
and what to do: a failed source is an outcome of the run, reported once, not a crash of the flow
with a traceback.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import INPUTS, RUN_ID, TASK_SOURCE
from prefect.client.schemas.objects import State, TaskRun
from prefect.events import emit_event
from prefect.futures import PrefectFuture
from prefect.runtime import deployment, flow_run
from prefect.states import Completed, Failed
from prefect.tasks import Task

from flows.errors import IngestError, SourceError, SourceSkipped, TransientSourceError
from flows.extract import Extracted, extract
from flows.faults import arm, fault_point
from flows.history import extract_history, plan_history
from flows.load import load_extracted
from flows.logs import to_prefect_ui
from flows.resolution import Crosswalk, Override, read_crosswalk, read_overrides
from flows.settings import HistorySettings, get_ingest_settings
from flows.sources import API_SOURCES, SOURCE_NAMES
from flows.sources.api import HistoryRequest
from flows.sources.replay import check_replay_dir
from flows.writer import one_writer
from kasparro import logs
from store import drift as drift_store
from store import runs
from store.connection import warehouse
from store.quality import quality_checks
from store.quote_layout_build import build_after_publish
from store.resolution import apply_pending, import_inbox
from store.settings import get_store_settings
from store.snapshot import publish_snapshot


@dataclass
class RunSummary:
    run_id: str
    status: runs.RunStatus
    results: list[runs.SourceResult] = field(default_factory=list)
    snapshot_seconds: float | None = None
    layout_seconds: float | None = None
    """Building the snapshot's quote layout after publishing it; None when none was built."""

    @property
    def failed(self) -> list[runs.SourceResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def degraded(self) -> list[runs.SourceResult]:
        return [r for r in self.results if r.status == "degraded"]


def new_run_id(now: datetime) -> str:
    """Sortable by start time, unique across hosts: ``20261125T104105Z-3f9a2c``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _only_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a whole extract only for errors that may pass (not bad keys or drifted payloads)."""
    return isinstance(state.data, TransientSourceError)


# The result is persisted (to PREFECT_LOCAL_STORAGE_PATH, which `kasparro` points at
# <data dir>/prefect-results) and cached on (inputs, task source, flow run id): when an operator
# retries a failed flow run, a source whose extract completed is not fetched again.
@task(
    name="extract",
    retry_condition_fn=_only_transient,
    task_run_name="extract-{source}",
    persist_result=True,
    cache_policy=INPUTS + TASK_SOURCE + RUN_ID,
)
def extract_source(
    source: str,
    run_id: str,
    started_at: datetime,
    replay_dir: Path | None,
    csv_loaded: dict[str, str],
) -> Extracted:
    return extract(
        source,
        raw_root=get_store_settings().raw_dir,
        run_id=run_id,
        started_at=started_at,
        replay_dir=replay_dir,
        csv_loaded=csv_loaded,
    )


@task(
    name="extract-history",
    retry_condition_fn=_only_transient,
    task_run_name="extract-history-{source}",
    persist_result=True,
    cache_policy=INPUTS + TASK_SOURCE + RUN_ID,
)
def extract_history_source(
    source: str,
    plan: list[HistoryRequest],
    run_id: str,
    started_at: datetime,
    replay_dir: Path | None,
) -> Extracted:
    return extract_history(
        API_SOURCES[source],
        plan,
        raw_root=get_store_settings().raw_dir,
        run_id=run_id,
        started_at=started_at,
        replay_dir=replay_dir,
    )


def _skip_reason(source: str, replay_dir: Path | None) -> str | None:
    if source not in API_SOURCES:
        return None
    api = API_SOURCES[source]
    try:
        api.access(api.settings_type(), replay_dir is not None)
    except SourceSkipped as exc:
        return str(exc)
    return None


def rounded_note(rounded: int) -> str:
    """What an operator reads about values stored rounded (run_sources.rounded)."""
    return (
        f"{rounded} money values were written as float noise (a binary float printed in full, "
        "e.g. 0.00020473099721129984) and stored rounded to 18 decimal places; their exact text "
        "is in the raw zone"
    )


def _summary_table(summary: RunSummary) -> list[dict[str, Any]]:
    return [
        {
            "source": r.source,
            "status": r.status,
            "fetched": r.fetched,
            "valid": r.valid,
            "quarantined": r.quarantined,
            "rounded": r.rounded,
            "inserted": r.inserted,
            "updated": r.updated,
            "unchanged": r.unchanged,
            "seconds": round(
                (r.extract_seconds or 0) + (r.transform_seconds or 0) + (r.load_seconds or 0), 3
            ),
            "error": r.error or "",
            "repeat_of": r.repeat_of or "",
        }
        for r in summary.results
    ]


def _selected(sources: list[str] | None, history: bool) -> list[str]:
    available = [
        s for s in SOURCE_NAMES if not history or s not in API_SOURCES or API_SOURCES[s].history
    ]
    unknown = sorted(set(sources or ()) - set(available))
    if unknown:
        what = "daily history" if history else "listings"
        raise IngestError(f"no {what} from source(s) {unknown}; choose from {available}")
    return [s for s in available if s in (sources or available)]


def _run_source(
    con: duckdb.DuckDBPyConnection,
    future: PrefectFuture[Extracted],
    result: runs.SourceResult,
    overrides: dict[tuple[str, str], Override],
    crosswalk: Crosswalk,
) -> None:
    """Transform and load one extracted source, recording a failure instead of raising it.
    Transforming is a plain call, not a task: it is pure CPU over files already in the raw zone,
    with nothing to retry or cache, and a task run would cost three state events per source."""
    logger = get_run_logger()
    try:
        raw_root, extracted = get_store_settings().raw_dir, future.result()
        resolution = load_extracted(
            con, raw_root, extracted, result, overrides, crosswalk=crosswalk
        )
    # One source's failure must not stop the others: it is recorded in the ledger, logged, and
    # fails the run at the end.
    except Exception as exc:
        result.status = "failed"
        result.error = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        _rolled_back(result)
        result.finished_at = datetime.now(UTC)
        logger.error("%s failed: %s", result.source, result.error)
        runs.record_source(con, result)
        return
    if resolution is None:
        logger.info(
            "%s: %d fetched, %s; recorded as %d unchanged without transforming; extract %.2fs",
            result.source, result.fetched,
            f"the same payloads as run {result.repeat_of}" if result.repeat_of else "nothing new",
            result.unchanged, result.extract_seconds or 0,
        )  # fmt: skip
        return
    logger.info(
        "%s: %d fetched, %d valid, %d quarantined, %d inserted, %d updated, %d unchanged; "
        "resolution %s; extract %.2fs, transform %.2fs, load %.2fs",
        result.source, result.fetched, result.valid, result.quarantined, result.inserted,
        result.updated, result.unchanged, resolution.decisions(), result.extract_seconds or 0,
        result.transform_seconds or 0, result.load_seconds or 0,
    )  # fmt: skip
    if result.rounded:
        logger.info("%s: %s", result.source, rounded_note(result.rounded))
    if result.status == "failed":
        logger.error("%s failed: %s", result.source, result.error)
    elif result.status == "degraded":
        logger.warning("%s degraded: %s", result.source, result.error)


def _run_anomalies(
    con: duckdb.DuckDBPyConnection, run_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's drift events above info, and its quality findings above info."""
    events, _ = drift_store.drift_events(con, run_id=run_id, limit=10_000)
    found, _ = quality_checks(con, run_id=run_id, limit=10_000)
    return (
        events.filter(pl.col("severity") != "info").to_dicts(),
        found.filter(pl.col("severity") != "info").to_dicts(),
    )


def _report_anomalies(
    run_id: str, events: list[dict[str, Any]], findings: list[dict[str, Any]]
) -> None:
    """Drift and quality warnings as Prefect artifacts (the flow run's Artifacts tab) and one
    Prefect event per source with drift (``kasparro.drift.detected``, for automations)."""
    logger = get_run_logger()
    for event in events:
        logger.warning(
            "%s schema drift (%s, policy %s): %s [event %s]",
            event["source"], event["drift_class"], event["policy"], event["detail"],
            event["event_id"],
        )  # fmt: skip
    if events:
        create_table_artifact(
            [
                {
                    k: event[k]
                    for k in (
                        "event_id",
                        "source",
                        "endpoint",
                        "field",
                        "drift_class",
                        "policy",
                        "severity",
                        "affected",
                        "detail",
                    )
                }
                for event in events
            ],
            key="drift-events",
            description=f"Schema drift in run {run_id}: acknowledge at "
            "POST /api/v1/drift/{event_id}/acknowledge",
        )
        for source in sorted({str(e["source"]) for e in events}):
            emit_event(
                event="kasparro.drift.detected",
                resource={"prefect.resource.id": f"kasparro.source.{source}"},
                payload={
                    "run_id": run_id,
                    "events": [
                        {k: e[k] for k in ("event_id", "field", "drift_class", "policy")}
                        for e in events
                        if e["source"] == source
                    ],
                },
            )
    if findings:
        create_table_artifact(
            [
                {
                    k: f[k]
                    for k in (
                        "source",
                        "check_name",
                        "severity",
                        "coin_id",
                        "observed",
                        "expected",
                        "detail",
                    )
                }
                for f in findings
            ],
            key="quality-findings",
            description=f"Data-quality findings of run {run_id} (GET /api/v1/quality)",
        )


def _rolled_back(result: runs.SourceResult) -> None:
    """A failed source's load was rolled back: what it counted while loading (valid, inserted,
    ...) never reached the warehouse, so neither the ledger nor the summary may show it. What
    was fetched stays: its pages are in the raw zone."""
    result.valid = result.quarantined = result.duplicates = result.rounded = 0
    result.inserted = result.updated = result.unchanged = 0
    result.seen = None


def _apply_decisions(con: duckdb.DuckDBPyConnection, inbox: Path, run_id: str) -> None:
    """Operator decisions the API received since the last run, applied before any source loads
    (each in its own transaction; see store.resolution)."""
    imported = import_inbox(con, inbox)
    applied = apply_pending(con, run_id, list(SOURCE_NAMES))
    refused = [a for a in applied if a.outcome == "refused"]
    if imported or applied:
        get_run_logger().info(
            "decisions: %d imported, %d applied, %d refused%s",
            imported, len(applied) - len(refused), len(refused),
            "".join(f"; {a.decision_id} ({a.action}): {a.detail['reason']}" for a in refused),
        )  # fmt: skip


def _start(
    con: duckdb.DuckDBPyConnection, selected: list[str], replay: Path | None, mode: runs.RunMode
) -> runs.Resumable:
    """Resume this flow run's earlier attempt, or a run that died mid-way with the same sources;
    else start a new run."""
    logger = get_run_logger()
    flow_run_id = str(flow_run.id) if flow_run.id else None
    replay_text = str(replay) if replay else None
    previous = runs.resumable_run(
        con, flow_run_id=flow_run_id, sources=selected, replay_dir=replay_text, mode=mode
    )
    if previous is not None:
        logger.warning(
            "resuming run %s (started %s): %s already loaded, pages already fetched are reused",
            previous.run_id, previous.started_at, previous.loaded or "no source",
        )  # fmt: skip
        run = previous
    else:
        now = datetime.now(UTC)
        run = runs.Resumable(new_run_id(now), now, [])
    runs.start_run(
        con,
        run_id=run.run_id,
        flow_run_id=flow_run_id,
        started_at=run.started_at,
        sources=selected,
        replay_dir=replay_text,
        mode=mode,
    )
    return run


def _submit_extracts(
    con: duckdb.DuckDBPyConnection,
    run: runs.Resumable,
    summary: RunSummary,
    *,
    selected: list[str],
    replay: Path | None,
    history: bool,
) -> tuple[dict[str, PrefectFuture[Extracted]], dict[str, list[str]]]:
    """Start every extract the run still needs (they run concurrently); record skipped sources.
    Returns the futures and, per source, notes for its ledger row."""
    logger = get_run_logger()
    settings, history_settings = get_ingest_settings(), HistorySettings()
    retries, delay = settings.extract_retries, settings.extract_retry_delay_seconds
    csv_loaded = runs.checkpoints_of(con, "csv", prefix="file:")
    futures: dict[str, PrefectFuture[Extracted]] = {}
    notes: dict[str, list[str]] = {}
    for source in selected:
        if source in run.loaded:
            continue
        reason = _skip_reason(source, replay)
        if reason is not None:
            logger.warning("%s skipped: %s", source, reason)
            skipped = runs.SourceResult(run.run_id, source, "skipped", error=reason)
            runs.record_source(con, skipped)
            summary.results.append(skipped)
        elif history and source in API_SOURCES:
            plan, notes[source] = plan_history(
                con,
                source,
                history_settings.coins,
                today=datetime.now(UTC).date(),
                days=history_settings.days,
            )
            futures[source] = extract_history_source.with_options(
                retries=retries, retry_delay_seconds=delay
            ).submit(source, plan, run.run_id, run.started_at, replay)
        else:
            futures[source] = extract_source.with_options(
                retries=retries, retry_delay_seconds=delay
            ).submit(
                source,
                run.run_id,
                run.started_at,
                replay,
                csv_loaded if source == "csv" else {},
            )
    return futures, notes


@flow(name="ingest", log_prints=False)
def ingest(
    sources: list[str] | None = None,
    replay_dir: str | None = None,
    history: bool = False,
    fault: str | None = None,
) -> RunSummary | State[RunSummary]:
    """Run every selected source once into the warehouse and publish the serving snapshot.

    ``history`` backfills daily history of the configured coins (CoinGecko, CoinPaprika and CSV
    files) instead of reading the listings. ``fault`` injects a failure at a named point
    (testing and drills only; see flows.faults).
    """
    to_prefect_ui()
    logger = get_run_logger()
    arm(fault, "raise" if fault else None)
    selected = _selected(sources, history)
    mode: runs.RunMode = "history" if history else "snapshot"
    replay = Path(replay_dir) if replay_dir else None
    if replay:
        check_replay_dir(replay)
    store, settings = get_store_settings(), get_ingest_settings()
    overrides = read_overrides(settings.overrides_file)
    crosswalk = read_crosswalk(settings.crosswalk_file) if settings.crosswalk_file else {}

    summary: RunSummary | None = None
    try:
        with one_writer("ingest", store.data_dir, flow_run.id):
            with warehouse(store.warehouse_path) as con:
                run = _start(con, selected, replay, mode)
                logs.run_id.set(run.run_id)
                summary = RunSummary(
                    run.run_id, "running", runs.source_results(con, run.run_id, run.loaded)
                )
                drifted, findings = _load(
                    con, run, summary, selected, overrides, crosswalk, replay, history
                )
            fault_point("after_commit")
            published = publish_snapshot(
                store.warehouse_path, store.serving_path, sources=SOURCE_NAMES
            )
            # After the snapshot is out, while no other writer can publish over it.
            layout = build_after_publish(store.serving_path)
    except Exception as exc:
        # A run that fails before publishing still says what it did (a killed one cannot).
        _summary_artifact(summary, failure=f"{type(exc).__name__}: {exc}")
        raise
    assert summary is not None
    summary.snapshot_seconds = published.seconds
    summary.layout_seconds = layout.seconds if layout is not None else None
    logger.info(
        "published %s (%d bytes) in %.2fs", published.path, published.bytes, published.seconds
    )
    _summary_artifact(summary)
    _report_anomalies(summary.run_id, drifted, findings)
    failed = summary.failed
    if failed:
        error = "; ".join(f"{r.source}: {r.error}" for r in failed)
        others = (
            "; the others were loaded and published" if len(failed) < len(summary.results) else ""
        )
        return Failed(
            message=f"run {summary.run_id}: {len(failed)} source(s) failed ({error}){others}. "
            f"Fix the cause named above, then {retry_advice(failed, replay_dir, history)}",
            data=summary,
        )
    if degraded := summary.degraded:
        # Completed (the data that was valid is loaded and published), under a name the Prefect
        # UI shows, with the reason: a degraded source must not look like a clean run.
        return Completed(
            name="Degraded",
            message=f"run {summary.run_id}: {len(degraded)} source(s) degraded ("
            + "; ".join(f"{r.source}: {r.error}" for r in degraded)
            + ")",
            data=summary,
        )
    return summary


def retry_advice(failed: list[runs.SourceResult], replay_dir: str | None, history: bool) -> str:
    """What to do once a failed source's cause is fixed. Under a deployment: Retry the flow run
    (it resumes, keeping its parameters; loaded sources are not loaded again). Else the command
    that runs the failed sources the same way (replayed, history)."""
    if deployment.id:
        return (
            "Retry this flow run (Prefect UI, the run's menu): the sources already loaded are "
            "not loaded again"
        )
    again = " ".join(f"--source {r.source}" for r in failed)
    replay = f" --replay {replay_dir}" if replay_dir else ""
    return f"re-run `kasparro ingest {again}{replay}{' --history' if history else ''}`"


def _summary_artifact(summary: RunSummary | None, failure: str | None = None) -> None:
    """The ``ingest-summary`` table: each source's outcome, and why the run stopped if it
    stopped before publishing."""
    if summary is None:  # it stopped before the ledger had a run
        create_table_artifact(
            [{"source": "", "status": "failed", "error": failure or ""}],
            key="ingest-summary",
            description=f"Ingest failed before it started a run: {failure}",
        )
        return
    description = f"Ingest run {summary.run_id}"
    if failure:
        description += f": failed before publishing the snapshot ({failure})"
    create_table_artifact(_summary_table(summary), key="ingest-summary", description=description)


def _load(  # noqa: PLR0917 - the flow's own state, passed on once
    con: duckdb.DuckDBPyConnection,
    run: runs.Resumable,
    summary: RunSummary,
    selected: list[str],
    overrides: dict[tuple[str, str], Override],
    crosswalk: Crosswalk,
    replay: Path | None,
    history: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Extract, transform and load every source the run still needs, then close the run in the
    ledger (the caller publishes). Returns the run's drift events and quality findings worth
    reporting (:func:`_run_anomalies`)."""
    logger = get_run_logger()
    run_id = run.run_id
    _apply_decisions(con, get_store_settings().decisions_inbox, run_id)
    if acknowledged := drift_store.import_acks(con, get_store_settings().drift_acks):
        logger.info("drift: %d acknowledgements recorded", acknowledged)
    progress = create_progress_artifact(0.0, key="ingest-progress", description=f"run {run_id}")
    assert isinstance(progress, UUID)  # the sync call returns the id, not a coroutine
    logger.info("run %s: %s%s", run_id, selected, f", replaying {replay}" if replay else "")
    futures, notes = _submit_extracts(
        con, run, summary, selected=selected, replay=replay, history=history
    )

    # Extracts run concurrently; loads go one source at a time, in source order, so entity
    # resolution sees the same sequence on every run.
    for done, (source, future) in enumerate(futures.items(), start=1):
        result = runs.SourceResult(
            run_id,
            source,
            "loaded",
            started_at=datetime.now(UTC),
            warnings=notes.get(source, []),
        )
        with logs.context(logs.source, source):
            _run_source(con, future, result, overrides, crosswalk)
        summary.results.append(result)
        update_progress_artifact(progress, 100.0 * done / len(futures))
    if not futures:  # nothing left to extract: the loop above never reported 100%
        update_progress_artifact(progress, 100.0)

    summary.results.sort(key=lambda r: SOURCE_NAMES.index(r.source))
    failed = summary.failed
    summary.status = "failed" if failed else "completed"
    error = "; ".join(f"{r.source}: {r.error}" for r in failed) or None
    runs.finish_run(con, run_id, summary.status, error)
    anomalies = _run_anomalies(con, run_id)
    con.execute("checkpoint")
    return anomalies
