"""The issue's reproduction through the real flow and command line: a CoinGecko recording whose
``current_price`` became ``price`` is no longer a completed run with exit 0 and /health ok."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)

from flows.ingest import RunSummary, ingest
from kasparro.cli import EXIT_DEGRADED, main
from tests.conftest import _clear_settings
from tests.drifted import drifted_coingecko, renamed
from web.app import create_app
from web.settings import WebSettings

pytestmark = pytest.mark.slow


def api(data_dir: Path) -> TestClient:  # type: ignore[type-arg]
    return TestClient(app=create_app(WebSettings(), snapshot_path=data_dir / "serving.duckdb"))


def test_a_source_that_loaded_nothing_fails_the_run_exit_health_and_stats(
    prefect_api: str,
    overrides: None,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    replay = drifted_coingecko(tmp_path / "replay", renamed("current_price", "price"))
    assert main(["ingest", "--replay", str(replay), "--source", "coingecko"]) == 1
    assert "coingecko failed" in capsys.readouterr().err
    with api(data_dir) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health["last_run"]["status"] == "failed"
        assert health["last_run"]["problems"] == ["coingecko: failed"]
        (stats,) = client.get("/api/v1/stats").json()["sources"]
        assert stats["last_status"] == "failed"
        assert "field_removed 'current_price'" in stats["last_error"]
        assert stats["last_success_at"] is None

    state = ingest(sources=["coingecko"], replay_dir=str(replay), return_state=True)
    assert state.is_failed()
    assert "coingecko" in (state.message or "")
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
                key=ArtifactFilterKey(any_=["drift-events"]),
            )
        )
    assert len(artifacts) == 1
    assert "field_removed" in str(artifacts[0].data)
    assert "probable_rename" in str(artifacts[0].data)


def test_a_source_below_the_valid_floor_is_degraded_in_state_exit_and_health(
    prefect_api: str,
    overrides: None,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KASPARRO_MIN_VALID_SHARE", "0.8")
    _clear_settings()
    replay = drifted_coingecko(tmp_path / "replay", renamed("current_price", "price", every=3))
    state = ingest(sources=["coingecko"], replay_dir=str(replay), return_state=True)
    assert state.is_completed()
    assert state.name == "Degraded"
    assert "below the floor" in (state.message or "")
    summary = state.result()
    assert isinstance(summary, RunSummary)
    assert [r.status for r in summary.results] == ["degraded"]
    with api(data_dir) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health["last_run"]["problems"] == ["coingecko: degraded"]
        (stats,) = client.get("/api/v1/stats").json()["sources"]
        assert stats["last_status"] == "degraded"
        assert stats["last_degraded_at"] is not None
    # Same bytes again: not repeated as a clean load, degraded again.
    assert main(["ingest", "--replay", str(replay), "--source", "coingecko"]) == EXIT_DEGRADED
