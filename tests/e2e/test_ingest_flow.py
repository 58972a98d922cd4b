"""The real Prefect flow on the demo recording, end to end: ingest, re-ingest, failures, API."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from litestar.testing import TestClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.ingest import RunSummary, ingest
from kasparro.cli import main
from store.connection import open_read_only
from store.quote_layout import Manifest, layout_directory, manifest_path
from store.snapshot import file_identity
from tests.helpers import (
    assert_no_duplicates,
    checksums,
    table_counts,
    warehouse_held_elsewhere,
)
from web.app import create_app
from web.settings import WebSettings

pytestmark = pytest.mark.slow


def snapshot_tables(data_dir: Path) -> tuple[dict[str, int], dict[str, str]]:
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        assert_no_duplicates(con)
        return table_counts(con), checksums(con)
    finally:
        con.close()


def test_the_flow_ingests_the_demo_and_a_rerun_writes_nothing(
    prefect_api: str, overrides: None, data_dir: Path, demo_dir: Path
) -> None:
    first = ingest(replay_dir=str(demo_dir))
    assert isinstance(first, RunSummary)
    assert first.status == "completed"
    loaded = {r.source: r for r in first.results}
    assert set(loaded) == {"coingecko", "coinpaprika", "coincap", "csv"}
    for result in loaded.values():
        assert result.status == "loaded"
        assert result.inserted == result.valid > 0
        assert result.fetched == result.valid + result.quarantined + result.duplicates
    counts, sums = snapshot_tables(data_dir)
    assert counts["quotes"] == sum(r.inserted for r in loaded.values())
    assert counts["quarantine"] == sum(r.quarantined for r in loaded.values())

    second = ingest(replay_dir=str(demo_dir))
    assert second.status == "completed"
    for result in second.results:
        assert (result.inserted, result.updated) == (0, 0), result.source
        assert result.unchanged == result.valid
        # The APIs served the same bytes: recorded from the first load, not transformed again.
        # The CSV files were all loaded already: nothing was delivered.
        assert result.repeat_of == (None if result.source == "csv" else first.run_id)
    assert snapshot_tables(data_dir) == (counts, sums), (
        "a re-run over the same data changes nothing"
    )
    # Each publish is followed by its quote layout, and only the current one is kept.
    assert first.layout_seconds is not None
    assert second.layout_seconds is not None
    serving = data_dir / "serving.duckdb"
    manifest = manifest_path(serving, file_identity(serving))
    assert sorted(p.name for p in layout_directory(serving).iterdir()) == sorted(
        [manifest.name, *Manifest.read(manifest).segments]
    )

    app = create_app(WebSettings(), snapshot_path=data_dir / "serving.duckdb")
    with TestClient(app=app) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok"
        assert health["last_run"]["run_id"] == second.run_id
        quotes = client.get("/api/v1/data?coin_id=btc-bitcoin&limit=1000").json()["items"]
        assert {q["source"] for q in quotes} == {"coingecko", "coinpaprika", "coincap", "csv"}
        run = client.get(f"/api/v1/runs/{first.run_id}").json()
        assert run["flow_run_id"], "the ledger links the Prefect flow run"
        rerun = client.get(f"/api/v1/runs/{second.run_id}").json()
        assert {s["source"]: s["repeat_of"] for s in rerun["sources"]} == {
            "coingecko": first.run_id,
            "coinpaprika": first.run_id,
            "coincap": first.run_id,
            "csv": None,
        }

    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run["flow_run_id"]])
            )
        )
        task_runs = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run["flow_run_id"])]))
        )
    assert sorted(t.name for t in task_runs) == [
        "extract-coincap",
        "extract-coingecko",
        "extract-coinpaprika",
        "extract-csv",
    ], "the UI shows one (retrying, cached) extract task per source; the rest runs in the flow"
    by_key = {a.key: a for a in artifacts}
    assert by_key["ingest-progress"].data == 100.0
    table = by_key["ingest-summary"].data
    assert isinstance(table, str)
    assert all(source in table for source in ("coingecko", "coinpaprika", "coincap", "csv"))
    with get_client(sync_client=True) as prefect:
        rerun_artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[rerun["flow_run_id"]]),
                key=ArtifactFilterKey(any_=["ingest-summary"]),
            )
        )
    assert first.run_id in str(rerun_artifacts[0].data), "the UI names the run a source repeats"


def test_a_failing_source_fails_the_run_but_the_others_load(
    prefect_api: str, overrides: None, data_dir: Path, demo_dir: Path, tmp_path: Path
) -> None:
    replay = tmp_path / "replay"
    shutil.copytree(demo_dir, replay)
    (replay / "coinpaprika" / "tickers.json").unlink()  # the unpaged endpoint now answers 404
    (replay / "csv" / "zz_export.csv").write_text("Date,Coin,Price\n2026-11-20,BTC,97000.5\n")

    state = ingest(replay_dir=str(replay), return_state=True)
    assert state.is_failed()
    assert "coinpaprika" in (state.message or "")
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        statuses = dict(con.execute("select source, status from run_sources").fetchall())
        assert statuses == {
            "coingecko": "loaded",
            "coinpaprika": "failed",
            "coincap": "loaded",
            "csv": "failed",
        }
        error = con.execute(
            "select error from run_sources where source = 'coinpaprika'"
        ).fetchall()[0][0]
        assert "HTTP 404" in error
        csv_error = con.execute("select error from run_sources where source = 'csv'").fetchall()[0][
            0
        ]
        assert "zz_export.csv: unrecognised header" in csv_error
        assert (
            con.execute("select count(*) from quotes where source = 'csv'").fetchall()[0][0] > 0
        ), "the readable CSV files still load"
        status, run_error = con.execute("select status, error from runs").fetchall()[0]
        assert status == "failed"
        assert "coinpaprika" in run_error
        assert (
            con.execute("select count(*) from quotes where source = 'coingecko'").fetchall()[0][0]
            > 0
        )
        assert (
            con.execute("select count(*) from quotes where source = 'coinpaprika'").fetchall()[0][0]
            == 0
        )
    finally:
        con.close()


def test_a_second_ingest_while_one_writes_is_refused_clearly(
    prefect_api: str, overrides: None, data_dir: Path, demo_dir: Path
) -> None:
    ingest(replay_dir=str(demo_dir), sources=["coinpaprika"])
    with warehouse_held_elsewhere(data_dir / "warehouse.duckdb"):
        state = ingest(replay_dir=str(demo_dir), return_state=True)
    assert state.is_failed()
    assert "only one ingest may write at a time" in (state.message or "")


def test_the_command_line_exits_non_zero_when_a_source_fails(
    prefect_api: str,
    overrides: None,
    data_dir: Path,
    demo_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert main(["ingest", "--replay", str(demo_dir), "--source", "coincap"]) == 0
    out = capsys.readouterr().out
    assert "completed" in out
    assert "coincap" in out

    replay = tmp_path / "replay"
    shutil.copytree(demo_dir, replay)
    (replay / "coinpaprika" / "tickers.json").write_text('{"error": "not the tickers array"}')
    assert main(["ingest", "--replay", str(replay), "--source", "coinpaprika"]) == 1
    captured = capsys.readouterr()
    assert "coinpaprika failed" in captured.err
    assert "--source coinpaprika" in captured.err
    # The error itself is logged once, as it happens (test_failure_output.py reads the terminal).
    assert "raw zone" in caplog.text, "the message says where the payload was kept"
    kept = list((data_dir / "raw").glob("source=coinpaprika/**/*.parquet"))
    assert kept, "the drifted payload is in the raw zone"


def test_a_history_backfill_loads_daily_closes_once(
    prefect_api: str, overrides: None, data_dir: Path, demo_dir: Path
) -> None:
    ingest(replay_dir=str(demo_dir))
    first = ingest(replay_dir=str(demo_dir), history=True)
    assert first.status == "completed"
    loaded = {r.source: r for r in first.results}
    assert set(loaded) == {"coingecko", "coinpaprika", "csv"}, "CoinCap has no history endpoint"
    assert loaded["coingecko"].inserted == loaded["coinpaprika"].inserted == 2 * 30
    assert loaded["coingecko"].duplicates > 0, "the hourly points of the last days are folded"

    con = open_read_only(data_dir / "serving.duckdb")
    try:
        history = con.execute(
            """
            select source, coin_id, count(*), count(distinct observed_at::date)
            from quotes where kind = 'history' and source <> 'csv'
            group by all order by all
            """
        ).fetchall()
        assert history == [
            ("coingecko", "btc-bitcoin", 30, 30),
            ("coingecko", "eth-ethereum", 30, 30),
            ("coinpaprika", "btc-bitcoin", 30, 30),
            ("coinpaprika", "eth-ethereum", 30, 30),
        ]
        checkpoints = dict(
            con.execute(
                "select source || ':' || stream, position from checkpoints "
                "where starts_with(stream, 'history:')"
            ).fetchall()
        )
        yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        assert checkpoints == {
            "coingecko:history:bitcoin": yesterday,
            "coingecko:history:ethereum": yesterday,
            "coinpaprika:history:btc-bitcoin": yesterday,
            "coinpaprika:history:eth-ethereum": yesterday,
        }
    finally:
        con.close()

    again = ingest(replay_dir=str(demo_dir), history=True)
    for result in again.results:
        assert (result.requests, result.fetched, result.inserted) == (0, 0, 0), result.source
