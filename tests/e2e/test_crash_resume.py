"""Crash anywhere, resume, and end up exactly where a run that never crashed ends.

Each case runs the real command line in a subprocess that SIGKILLs itself at a named point (no
cleanup, no exception handler runs), checks that no checkpoint got ahead of the data, runs the
command again, and compares a checksum of every warehouse table with a clean run's.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from store.connection import open_warehouse
from tests.conftest import REPO
from tests.helpers import assert_no_duplicates, checksums, table_counts

pytestmark = pytest.mark.slow


def kasparro(
    data_dir: Path, demo_dir: Path, prefect_api: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KASPARRO_DATA_DIR": str(data_dir),
        "KASPARRO_OVERRIDES_FILE": str(REPO / "data" / "asset_overrides.csv"),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("KASPARRO_FAULT", None)
    if fault:
        env["KASPARRO_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "kasparro", "ingest", "--replay", str(demo_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def warehouse_state(data_dir: Path) -> tuple[dict[str, int], dict[str, str]]:
    con = open_warehouse(data_dir / "warehouse.duckdb")
    try:
        assert_no_duplicates(con)
        return table_counts(con), checksums(con)
    finally:
        con.close()


def assert_checkpoints_not_ahead_of_data(data_dir: Path) -> None:
    con = open_warehouse(data_dir / "warehouse.duckdb")
    try:
        ahead = con.execute(
            """
            select c.source, c.position
            from checkpoints as c
            where c.stream = 'quotes'
                and not exists (
                    select 1 from quotes as q
                    where q.source = c.source and q.observed_at = c.position::timestamptz
                )
            """
        ).fetchall()
        assert ahead == [], f"checkpoints ahead of the data: {ahead}"
        loaded_without_data = con.execute(
            """
            select rs.source
            from run_sources as rs
            where rs.status = 'loaded' and rs.inserted > 0
                and not exists (select 1 from quotes as q where q.run_id = rs.run_id)
            """
        ).fetchall()
        assert loaded_without_data == []
    finally:
        con.close()


def raw_files(data_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (data_dir / "raw").rglob("*.parquet")
    }


@pytest.fixture(scope="module")
def clean(
    prefect_api: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, int], dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("clean") / "data"
    done = kasparro(data_dir, REPO / "data" / "demo", prefect_api)
    assert done.returncode == 0, done.stderr[-3000:]
    return warehouse_state(data_dir)


FAULTS = [
    "after_page:coingecko:1",
    "after_raw:coinpaprika",
    "mid_transform:coincap",
    "before_commit:coingecko",
    "before_commit:csv",
    "after_commit",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_killed_run_resumes_to_the_same_warehouse_as_a_clean_run(
    prefect_api: str,
    clean: tuple[dict[str, int], dict[str, str]],
    tmp_path: Path,
    fault: str,
) -> None:
    data_dir = tmp_path / "data"
    demo = REPO / "data" / "demo"

    crashed = kasparro(data_dir, demo, prefect_api, fault=fault)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    assert_checkpoints_not_ahead_of_data(data_dir)
    before = raw_files(data_dir)

    resumed = kasparro(data_dir, demo, prefect_api)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert warehouse_state(data_dir) == clean
    after = raw_files(data_dir)
    assert {k: after[k] for k in before} == before, "the raw zone is only added to"
    if fault.startswith("after_page"):
        assert not [
            f for f in after if "coins_markets-page-0001." in f and f.endswith(".2.parquet")
        ], "the resumed run reuses the page it had fetched"
    if fault != "after_commit":
        assert "resuming run" in resumed.stderr + resumed.stdout
    assert (data_dir / "serving.duckdb").exists()
