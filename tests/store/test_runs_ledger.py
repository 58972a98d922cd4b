"""The ledger points at the flow run that finished a run's work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from store import runs
from store.connection import warehouse


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
