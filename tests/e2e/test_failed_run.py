"""What a failed run leaves: a summary that shows no rolled-back counts, advice that keeps the
way the run was started, and an ``ingest-summary`` even when it fails before publishing."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)

from flows.ingest import RunSummary, ingest, retry_advice
from store import runs
from store.connection import open_read_only, warehouse

pytestmark = pytest.mark.slow


def test_a_failed_source_shows_no_counts_of_its_rolled_back_load(
    prefect_api: str,
    overrides: None,
    data_dir: Path,
    demo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KASPARRO_FAULT", "before_commit:coincap")
    monkeypatch.setenv("KASPARRO_FAULT_MODE", "raise")
    state = ingest(replay_dir=str(demo_dir), sources=["coincap", "csv"], return_state=True)
    assert state.is_failed()
    assert f"re-run `kasparro ingest --source coincap --replay {demo_dir}`" in (state.message or "")
    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, RunSummary)
    (coincap,) = summary.failed
    assert coincap.fetched == 281, "its pages are in the raw zone"
    assert (coincap.valid, coincap.inserted, coincap.updated, coincap.unchanged) == (0, 0, 0, 0)
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        assert con.execute(
            "select inserted, valid from run_sources where source = 'coincap'"
        ).fetchall() == [(0, 0)]
        assert con.execute("select count(*) from quotes where source = 'coincap'").fetchall() == [
            (0,)
        ]
    finally:
        con.close()


def test_a_run_that_fails_before_publishing_leaves_its_summary(
    prefect_api: str,
    overrides: None,
    data_dir: Path,
    demo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KASPARRO_FAULT", "after_commit")
    monkeypatch.setenv("KASPARRO_FAULT_MODE", "raise")
    state = ingest(replay_dir=str(demo_dir), sources=["csv"], return_state=True)
    assert state.is_failed()
    assert not (data_dir / "serving.duckdb").exists(), "it failed before publishing"
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["ingest-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    with warehouse(data_dir / "warehouse.duckdb") as con:
        ((run_id,),) = con.execute("select run_id from runs").fetchall()
    assert f"Ingest run {run_id}: failed before publishing the snapshot" in (
        artifact.description or ""
    )
    assert "InjectedFault" in (artifact.description or "")


def test_under_a_deployment_the_advice_is_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = [runs.SourceResult("r", "coincap", "failed")]
    assert retry_advice(failed, "data/demo", False) == (
        "re-run `kasparro ingest --source coincap --replay data/demo`"
    )
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "6f1c0b7e-0000-4000-8000-000000000000")
    assert retry_advice(failed, "data/demo", False).startswith("Retry this flow run")
