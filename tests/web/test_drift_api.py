"""GET /api/v1/drift, GET /api/v1/quality and POST /api/v1/drift/{id}/acknowledge over a
snapshot whose last run drifted."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from flows.sources import SOURCE_NAMES
from store import drift
from store.connection import warehouse
from store.settings import DRIFT_ACKS
from store.snapshot import publish_snapshot
from tests.drifted import chained, drifted_coingecko, later, renamed
from tests.helpers import ingest_without_prefect
from web.app import create_app
from web.settings import WebSettings

TOKEN = "s3cret-drift-token"  # noqa: S105 (a test token)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def drifted_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean CoinGecko run; one where every other record's current_price became price (it
    loads half, with warnings); one where every record's did (it fails)."""
    root = tmp_path_factory.mktemp("drift-api")
    data_dir = root / "data"
    replay = drifted_coingecko(root / "replay", lambda n, r: r)
    ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coingecko",))
    half = renamed("current_price", "price", every=2)
    drifted_coingecko(root / "replay", chained(later(5), half))
    ingest_without_prefect(replay, data_dir, run_id="run-2", sources=("coingecko",))
    drifted_coingecko(root / "replay", chained(later(10), renamed("current_price", "price")))
    ingest_without_prefect(replay, data_dir, run_id="run-3", sources=("coingecko",))
    return data_dir


def client_for(data_dir: Path) -> TestClient:  # type: ignore[type-arg]
    settings = WebSettings(decisions_token=TOKEN)
    return TestClient(app=create_app(settings, snapshot_path=data_dir / "serving.duckdb"))


def test_drift_events_are_served_and_filtered(drifted_data: Path) -> None:
    with client_for(drifted_data) as client:
        page = client.get("/api/v1/drift", params={"run_id": "run-3"}).json()
        by_class = {(e["field"], e["drift_class"]): e for e in page["items"]}
        assert by_class[("current_price", "field_removed")]["policy"] == "fail"
        assert by_class[("current_price", "field_removed")]["severity"] == "error"
        rename = by_class[("price", "probable_rename")]
        assert rename["related_field"] == "current_price"
        assert rename["alarming"] is True
        errors = client.get("/api/v1/drift", params={"severity": "error"}).json()
        assert {e["run_id"] for e in errors["items"]} == {"run-3"}
        assert {e["severity"] for e in errors["items"]} == {"error"}
        warned = client.get("/api/v1/drift", params={"run_id": "run-2"}).json()["items"]
        assert {(e["field"], e["drift_class"], e["policy"]) for e in warned} == {
            ("current_price", "nullability_changed", "warn"),
            ("price", "field_added", "evolve"),
        }
        assert client.get("/api/v1/drift", params={"source": "coinpaprika"}).json()["total"] == 0
        assert client.get("/api/v1/drift", params={"severity": "bad"}).status_code == 400


def test_quality_findings_are_served_and_filtered(drifted_data: Path) -> None:
    with client_for(drifted_data) as client:
        page = client.get("/api/v1/quality", params={"source": "coingecko"}).json()
        assert page["total"] == len(page["items"]) > 0
        assert {f["source"] for f in page["items"]} == {"coingecko"}
        # run-2 loaded half the records: the other half of run-1's top 100 is gone.
        gone = client.get(
            "/api/v1/quality", params={"run_id": "run-2", "check": "disappeared"}
        ).json()
        assert 40 <= gone["total"] <= 60
        assert {f["check_name"] for f in gone["items"]} == {"disappeared"}
        warnings = client.get("/api/v1/quality", params={"severity": "warning"}).json()
        assert {f["severity"] for f in warnings["items"]} == {"warning"}
        assert client.get("/api/v1/quality", params={"run_id": "run-3"}).json()["total"] == 0


def test_acknowledging_needs_the_token_and_stops_the_alarm(
    drifted_data: Path, tmp_path: Path
) -> None:
    # A copy of the data: acknowledgements written here do not reach the other tests.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "serving.duckdb").write_bytes((drifted_data / "serving.duckdb").read_bytes())
    (data_dir / "warehouse.duckdb").write_bytes((drifted_data / "warehouse.duckdb").read_bytes())
    with client_for(data_dir) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        alarms = health["drift_alarms"]
        assert alarms > 0
        alarming = client.get("/api/v1/drift", params={"alarming": "true"}).json()["items"]
        assert len(alarming) == alarms
        target = alarming[0]["event_id"]
        url = f"/api/v1/drift/{target}/acknowledge"
        body = {"acknowledged_by": "ops@example.com", "note": "upstream renamed it; mapping"}
        assert client.post(url, json=body).status_code == 401
        wrong = {"Authorization": f"Bearer {TOKEN}x"}
        assert client.post(url, json=body, headers=wrong).status_code == 401
        assert (
            client.post("/api/v1/drift/nope/acknowledge", json=body, headers=AUTH).status_code
            == 404
        )
        response = client.post(url, json=body, headers=AUTH)
        assert response.status_code == 202
        acked = response.json()
        assert acked["acknowledged_by"] == "ops@example.com"
        assert acked["alarming"] is False
        assert acked["acknowledgement_pending"] is True
        assert client.get("/health").json()["drift_alarms"] == alarms - 1
        still = client.get("/api/v1/drift", params={"alarming": "true"}).json()
        assert target not in {e["event_id"] for e in still["items"]}
        assert still["total"] == alarms - 1

    # The next run records it in the warehouse and empties the inbox.
    with warehouse(data_dir / "warehouse.duckdb") as con:
        assert drift.import_acks(con, data_dir / DRIFT_ACKS) == 1
        con.execute("checkpoint")
    assert not list((data_dir / DRIFT_ACKS).glob("*.json"))
    publish_snapshot(
        data_dir / "warehouse.duckdb", data_dir / "serving.duckdb", sources=SOURCE_NAMES
    )
    with client_for(data_dir) as client:
        items = client.get("/api/v1/drift", params={"limit": 1000}).json()["items"]
        (event,) = [e for e in items if e["event_id"] == target]
        assert event["acknowledged_note"] == "upstream renamed it; mapping"
        assert event["acknowledgement_pending"] is False
        assert client.get("/health").json()["drift_alarms"] == alarms - 1


def test_the_run_comparison_lists_the_head_runs_drift_and_quality_findings(
    drifted_data: Path,
) -> None:
    with client_for(drifted_data) as client:
        compared = client.get(
            "/api/v1/runs/compare", params={"base": "run-1", "head": "run-3"}
        ).json()
        kinds = {(a["kind"], a["subject"]) for a in compared["anomalies"]}
        assert ("drift_field_removed", "coingecko.current_price") in kinds
        assert ("drift_probable_rename", "coingecko.price") in kinds
        clean = client.get("/api/v1/runs/compare", params={"base": "run-1", "head": "run-1"})
        assert not [a for a in clean.json()["anomalies"] if a["kind"].startswith("drift_")]
