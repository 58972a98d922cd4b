"""An operator retries a failed flow run the way the Prefect UI does: same flow run id; what
completed is not fetched or loaded again, and the warehouse ends as a clean run's."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.flow_engine import run_flow
from prefect.states import AwaitingRetry

from flows.ingest import RunSummary, ingest
from store.connection import open_read_only
from store.settings import get_store_settings
from tests.helpers import snapshot_checksums

pytestmark = pytest.mark.slow


def task_runs_by_name(flow_run_id: UUID) -> dict[str, list[str]]:
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    names: dict[str, list[str]] = {}
    for task_run in sorted(task_runs, key=lambda t: t.expected_start_time or t.created):  # type: ignore[arg-type, return-value]
        names.setdefault(task_run.name, []).append(task_run.state.name if task_run.state else "?")
    return names


def test_a_retried_flow_run_reuses_completed_work(
    prefect_api: str,
    overrides: None,
    data_dir: Path,
    demo_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KASPARRO_FAULT", "before_commit:coincap")
    monkeypatch.setenv("KASPARRO_FAULT_MODE", "raise")
    failed = ingest(replay_dir=str(demo_dir), return_state=True)
    assert failed.is_failed()
    assert "coincap" in (failed.message or "")
    flow_run_id = failed.state_details.flow_run_id
    assert flow_run_id is not None
    first_attempt = task_runs_by_name(flow_run_id)
    monkeypatch.delenv("KASPARRO_FAULT")

    # What the UI's "Retry" does: put the same flow run back to AwaitingRetry; a worker runs it.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, AwaitingRetry(), force=True)
        flow_run = client.read_flow_run(flow_run_id)
    retried = run_flow(
        ingest, flow_run=flow_run, parameters=flow_run.parameters, return_type="state"
    )
    assert retried.is_completed(), retried.message
    summary = retried.result()
    assert isinstance(summary, RunSummary)

    ran = task_runs_by_name(flow_run_id)
    for source in ("coingecko", "coinpaprika", "csv"):
        assert ran[f"extract-{source}"] == first_attempt[f"extract-{source}"], (
            f"{source} loaded in the first attempt and is not extracted again"
        )
    assert ran["extract-coincap"][-1] == "Cached", "coincap's extract result is reused"
    assert not list(get_store_settings().raw_dir.rglob("*.2.parquet")), "nothing fetched twice"

    con = open_read_only(data_dir / "serving.duckdb")
    try:
        assert con.execute("select run_id, status, flow_run_id from runs").fetchall() == [
            (summary.run_id, "completed", str(flow_run_id))
        ]
        statuses = dict(con.execute("select source, status from run_sources").fetchall())
        assert set(statuses.values()) == {"loaded"}
    finally:
        con.close()

    clean_dir = tmp_path / "clean"
    monkeypatch.setenv("KASPARRO_DATA_DIR", str(clean_dir))
    get_store_settings.cache_clear()
    assert ingest(replay_dir=str(demo_dir)).status == "completed"
    assert snapshot_checksums(data_dir) == snapshot_checksums(clean_dir)
