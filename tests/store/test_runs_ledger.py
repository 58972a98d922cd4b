"""The ledger points at the flow run that finished a run's work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from store import runs
from store.connection import transaction, warehouse


def test_a_resumed_run_points_at_the_flow_run_that_carries_it_on(tmp_path: Path) -> None:
    started = datetime(2026, 12, 4, 10, tzinfo=UTC)
    with warehouse(tmp_path / "warehouse.duckdb") as con:
        for flow_run_id in ("crashed-flow-run", "resuming-flow-run", None):
            runs.start_run(
                con,
                run_id="r1",
                flow_run_id=flow_run_id,
                started_at=started,
                sources=["csv"],
                replay_dir=None,
            )
            if flow_run_id:
                assert con.execute("select flow_run_id from runs").fetchall() == [(flow_run_id,)]
        # A resume outside Prefect (no flow run) keeps the last flow run known.
        assert con.execute("select flow_run_id from runs").fetchall() == [("resuming-flow-run",)]


def test_a_thousand_recovered_loads_are_recorded_in_a_small_memory_limit(tmp_path: Path) -> None:
    # DuckDB gives each statement's rows in a transaction blocks of their own: recorded a
    # statement per load, a 1M-quote `rebuild --recover` filled a 64 MiB limit here.
    started = datetime(2026, 12, 4, 10, tzinfo=UTC)
    loads = [
        runs.RecoveredLoad(
            f"r{i // 2:04d}",
            ("coingecko", "csv")[i % 2],
            [f"raw/{i}/page-0001.parquet", f"raw/{i}/page-0002.parquet"],
            note=f"recovered load {i}",
            started_at=started,
        )
        for i in range(2_000)
    ]
    with warehouse(tmp_path / "warehouse.duckdb") as con:
        runs.start_run(
            con, run_id="r0000", flow_run_id=None, started_at=started, sources=["coingecko"],
            replay_dir=None,
        )  # fmt: skip
        con.execute("set memory_limit = '24MiB'")
        with transaction(con):
            runs.record_recovered(con, loads)
            runs.record_recovered(con, loads[:2])  # again: no file twice, one more warning
            with pytest.raises(ValueError, match="listed twice"):
                runs.record_recovered(con, [loads[0], loads[0]])
        assert con.execute(
            "select count(*), count(distinct raw_file) from run_files"
        ).fetchall() == [(4_000, 4_000)]
        assert con.execute(
            "select status, sources, error from runs where run_id = 'r0001'"
        ).fetchall() == [("abandoned", ["coingecko", "csv"], "recovered load 2")]
        # A run the ledger knew keeps its row; it gains the recovered sources.
        assert con.execute(
            "select status, list_sort(sources) from runs where run_id = 'r0000'"
        ).fetchall() == [("running", ["coingecko", "csv"])]
        assert con.execute(
            "select status, warnings from run_sources where run_id = 'r0000' and source = 'csv'"
        ).fetchall() == [("loaded", ["recovered load 1", "recovered load 1"])]
