"""/metrics, /ready and the run trigger's refusals (the trigger against a real Prefect server:
tests/e2e/test_deployments.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from flows.sources import SOURCE_NAMES
from store import runs
from store.connection import transaction, warehouse
from store.snapshot import publish_snapshot
from tests.web.conftest import Published
from web.app import create_app
from web.operations_settings import get_operations_settings
from web.settings import WebSettings

TOKEN = "a-runs-token-of-32-characters-xx"  # noqa: S105 - a test token


@pytest.fixture
def operations(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Operations settings re-read from the environment the test sets."""
    for name in ("PREFECT_API_URL", "PREFECT_UI_URL", "KASPARRO_API_RUNS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    get_operations_settings.cache_clear()
    yield monkeypatch
    get_operations_settings.cache_clear()


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.partition(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def test_metrics_give_requests_by_route_and_each_sources_last_run(
    client: TestClient,
    published: Published,
    operations: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    assert client.get("/api/v1/coins/btc-bitcoin").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = {"path": "/api/v1/coins/{coin_id}", "status_code": "200", "method": "GET"}
    assert sample(text, "kasparro_http_requests_total", **route) >= 1
    assert sample(text, "kasparro_http_request_duration_seconds_count", **route) >= 1
    assert sample(text, "kasparro_snapshot_up") == 1
    assert 0 <= sample(text, "kasparro_snapshot_age_seconds") < 24 * 3600
    # The head run of the fixture: coinpaprika saw the new asset and Ethereum's move.
    assert sample(text, "kasparro_source_last_run_status", source="coinpaprika", status="loaded")
    assert not sample(
        text, "kasparro_source_last_run_status", source="coinpaprika", status="failed"
    )
    assert (
        sample(text, "kasparro_source_last_run_rows", source="coinpaprika", kind="fetched") == 294
    )
    assert sample(text, "kasparro_source_last_run_rows", source="coinpaprika", kind="inserted") >= 1
    assert sample(text, "kasparro_source_last_run_duration_seconds", source="csv") >= 0
    assert sample(text, "kasparro_source_last_run_timestamp_seconds", source="coincap") > 1.7e9


def test_ready_says_why_not(
    published: Published, tmp_path: Path, operations: pytest.MonkeyPatch
) -> None:
    with TestClient(app=create_app(WebSettings(), published.data_dir / "serving.duckdb")) as c:
        fresh = c.get("/ready")
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["ready"] is True
        operations.setenv("KASPARRO_API_READY_MAX_AGE_SECONDS", "0.001")
        get_operations_settings.cache_clear()
        stale = c.get("/ready")
    assert stale.status_code == 503
    assert "more than the 0s the schedule allows" in stale.json()["reason"]
    with TestClient(app=create_app(WebSettings(), tmp_path / "serving.duckdb")) as c:
        missing = c.get("/ready")
        assert c.get("/metrics").text.count("kasparro_snapshot_up 0.0") == 1
    assert missing.status_code == 503
    assert "no serving snapshot" in missing.json()["reason"]


def test_starting_runs_needs_a_token_and_a_prefect_api(
    client: TestClient,
    operations: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    body = {"deployment": "demo-replay"}
    disabled = client.post("/api/v1/runs", json=body)
    assert disabled.status_code == 403
    assert "KASPARRO_API_RUNS_TOKEN" in disabled.text
    operations.setenv("KASPARRO_API_RUNS_TOKEN", TOKEN)
    get_operations_settings.cache_clear()
    wrong = client.post("/api/v1/runs", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    no_prefect = client.post(
        "/api/v1/runs", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert no_prefect.status_code == 503
    assert "set PREFECT_API_URL" in no_prefect.text


def test_a_runs_detail_links_its_prefect_flow_run_when_prefect_is_configured(
    operations: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    flow_run = "0b5e1c8e-3c1a-4d7e-9f0a-2a6f1d3c4b5e"
    with warehouse(tmp_path / "warehouse.duckdb") as con, transaction(con):
        for run_id, flow_run_id in (("prefect-run", flow_run), ("plain-run", None)):
            runs.start_run(
                con,
                run_id=run_id,
                flow_run_id=flow_run_id,
                started_at=datetime.now(UTC),
                sources=["csv"],
                replay_dir=None,
            )
            runs.finish_run(con, run_id, "completed", None)
    publish_snapshot(
        tmp_path / "warehouse.duckdb", tmp_path / "serving.duckdb", sources=list(SOURCE_NAMES)
    )

    def detail(run_id: str) -> dict[str, object]:
        app = create_app(WebSettings(), snapshot_path=tmp_path / "serving.duckdb")
        with TestClient(app=app) as client:
            response = client.get(f"/api/v1/runs/{run_id}")
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body

    assert detail("prefect-run")["prefect_url"] is None, "no Prefect configured: no link"
    operations.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    get_operations_settings.cache_clear()
    assert detail("prefect-run")["prefect_url"] == (
        f"http://127.0.0.1:4200/runs/flow-run/{flow_run}"
    )
    assert detail("plain-run")["prefect_url"] is None, "a run without a flow run has no link"
    operations.setenv("PREFECT_UI_URL", "https://prefect.example.org/")
    get_operations_settings.cache_clear()
    assert detail("prefect-run")["prefect_url"] == (
        f"https://prefect.example.org/runs/flow-run/{flow_run}"
    )
