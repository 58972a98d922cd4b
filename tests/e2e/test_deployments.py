"""Deployments run by a real worker against a real Prefect server on loopback (the session's):
two deployments at once take turns at the warehouse; Kasparro's log lines reach the Prefect UI.

One work pool, deployments and worker for the module: the worker starts each flow run in a
process of its own (~5 s of imports each), which is most of these tests' time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from litestar.testing import TestClient
from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import ConcurrencyLimitConfig, FlowRun
from prefect.workers.process import ProcessWorker

from flows.writer import one_writer
from store.connection import open_read_only
from tests.conftest import DEMO_DIR, REPO
from web.app import create_app
from web.operations_settings import get_operations_settings
from web.settings import WebSettings

pytestmark = pytest.mark.slow

POOL = "kasparro-e2e"
DEPLOYMENTS = ("demo-a", "demo-b")
WAIT_SECONDS = 150


@dataclass(frozen=True)
class Deployed:
    api_url: str
    data_dir: Path
    worker_log: Path


@pytest.fixture(scope="module")
def deployed(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """Two deployments of the demo replay (as prefect.yaml's ``demo-replay``: each with its own
    limit of one run) on a process pool, and a worker polling it."""
    root = tmp_path_factory.mktemp("deployed")
    data_dir = root / "data"
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=POOL,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            ),
            overwrite=True,
        )
    flow = Flow.from_source(source=str(REPO), entrypoint="flows/ingest.py:ingest")
    for name in DEPLOYMENTS:
        flow.deploy(
            name=name,
            work_pool_name=POOL,
            parameters={"replay_dir": str(DEMO_DIR)},
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy="ENQUEUE"),
            build=False,
            push=False,
            print_next_steps=False,
        )
    worker_log = root / "worker.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "KASPARRO_DATA_DIR": str(data_dir),
        "KASPARRO_OVERRIDES_FILE": str(REPO / "data" / "asset_overrides.csv"),
        "PREFECT_LOCAL_STORAGE_PATH": str(data_dir / "prefect-results"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    # Only the environment above: no PREFECT_LOGGING_EXTRA_LOGGERS, as a worker started by hand.
    env.pop("PREFECT_LOGGING_EXTRA_LOGGERS", None)
    with worker_log.open("w") as log:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", POOL],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Deployed(prefect_api, data_dir, worker_log)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def start(client: SyncPrefectClient, deployment: str) -> UUID:
    found = client.read_deployment_by_name(f"ingest/{deployment}")
    return client.create_flow_run_from_deployment(found.id).id


def wait_until_final(client: SyncPrefectClient, ids: list[UUID], worker_log: Path) -> list[FlowRun]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        runs = [client.read_flow_run(i) for i in ids]
        if all(r.state and r.state.is_final() for r in runs):
            return runs
        time.sleep(1)
    pytest.fail(f"flow runs not finished in {WAIT_SECONDS}s; worker:\n{worker_log.read_text()}")


def log_lines(client: SyncPrefectClient, flow_run_id: UUID) -> list[tuple[str, str]]:
    logs = client.read_logs(
        LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200
    )
    return [(log.name or "", log.message) for log in logs]


def test_two_deployments_at_once_take_turns_at_the_warehouse(
    deployed: Deployed, free_writer_slot: None
) -> None:
    with get_client(sync_client=True) as client:
        # The test holds the writer's slot, as a running ingest would, so both runs must wait.
        with one_writer("the test", deployed.data_dir):
            ids = [start(client, name) for name in DEPLOYMENTS]
            deadline = time.monotonic() + WAIT_SECONDS
            while not all(
                any("waits for the warehouse" in m for _, m in log_lines(client, i)) for i in ids
            ):
                if time.monotonic() > deadline:
                    pytest.fail(f"runs never waited; worker:\n{deployed.worker_log.read_text()}")
                time.sleep(1)
        finished = wait_until_final(client, ids, deployed.worker_log)
        assert [r.state.type.value for r in finished if r.state] == ["COMPLETED", "COMPLETED"], [
            r.state.message for r in finished if r.state
        ]
        lines = [line for i in ids for line in log_lines(client, i)]
    # Kasparro's own loggers reached the UI, WARNING and INFO, from a worker not told to send them.
    assert any(n == "flows.writer" and "got the warehouse after" in m for n, m in lines)
    con = open_read_only(deployed.data_dir / "serving.duckdb")
    try:
        runs = con.execute(
            "select flow_run_id, status, started_at, finished_at from runs order by started_at"
        ).fetchall()
    finally:
        con.close()
    assert {r[0] for r in runs} == {str(i) for i in ids}
    assert [r[1] for r in runs] == ["completed", "completed"]
    (_, _, _, first_finished), (_, _, second_started, _) = runs
    assert second_started >= first_finished, "the second run wrote only after the first"


def test_a_run_started_through_the_api_lands_in_the_warehouse_and_the_metrics(
    deployed: Deployed, free_writer_slot: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "an-e2e-runs-token-0123456789"  # noqa: S105 - a test token
    monkeypatch.setenv("KASPARRO_API_RUNS_TOKEN", token)
    monkeypatch.setenv("PREFECT_API_URL", deployed.api_url)
    get_operations_settings.cache_clear()
    serving = deployed.data_dir / "serving.duckdb"
    try:
        with TestClient(app=create_app(WebSettings(), serving)) as api:
            started = api.post(
                "/api/v1/runs",
                json={"deployment": "demo-a", "parameters": {"sources": ["coinpaprika", "csv"]}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert started.status_code == 201, started.text
            flow_run_id = UUID(started.json()["flow_run_id"])
            assert started.json()["ui_url"].endswith(f"/runs/flow-run/{flow_run_id}")
            with get_client(sync_client=True) as client:
                (finished,) = wait_until_final(client, [flow_run_id], deployed.worker_log)
                assert finished.state is not None
                assert finished.state.is_completed(), finished.state
                (summary,) = client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        key=ArtifactFilterKey(any_=["ingest-summary"]),
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                    )
                )
            con = open_read_only(serving)
            try:
                ((run_id, status, sources),) = con.execute(
                    "select run_id, status, sources from runs where flow_run_id = ?",
                    [str(flow_run_id)],
                ).fetchall()
            finally:
                con.close()
            assert (status, sources) == ("completed", ["coinpaprika", "csv"])
            assert run_id in (summary.description or "")
            table = json.loads(str(summary.data))
            assert {row["source"] for row in table} == {"coinpaprika", "csv"}
            text = api.get("/metrics").text
            assert (
                'kasparro_source_last_run_status{source="coinpaprika",status="loaded"} 1.0' in text
            )
            state = api.get(f"/api/v1/runs/{run_id}/prefect")
            assert state.status_code == 200, state.text
            assert state.json()["state"] == "Completed"
    finally:
        get_operations_settings.cache_clear()
