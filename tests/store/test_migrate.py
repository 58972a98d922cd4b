"""Schema migrations: applied once, in order, recorded; a newer warehouse is refused."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

import store.migrate
from store.connection import open_warehouse
from store.errors import MigrationError
from store.migrate import available_migrations
from tests.conftest import REPO


def test_a_new_warehouse_gets_every_migration_recorded(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "w.duckdb")
    versions = con.execute("select version from schema_version order by version").fetchall()
    assert [v for (v,) in versions] == [m.version for m in available_migrations()]
    tables = {
        t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()
    }
    assert {
        "coins",
        "coin_source_ids",
        "quotes",
        "quarantine",
        "runs",
        "run_sources",
        "checkpoints",
    } <= tables
    con.close()


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    open_warehouse(path).close()
    con = open_warehouse(path)
    assert con.execute("select count(*) from schema_version").fetchall()[0][0] == len(
        available_migrations()
    )
    con.close()


def test_a_warehouse_from_a_newer_kasparro_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    open_warehouse(path).close()
    with duckdb.connect(str(path)) as con:
        con.execute("insert into schema_version values (999, 'future', now())")
    with pytest.raises(MigrationError, match=r"version 999 .* upgrade Kasparro"):
        open_warehouse(path)


CREATE_THEN_DIE = """
import os, sys
from pathlib import Path
from store.connection import open_warehouse

con = open_warehouse(Path(sys.argv[1]))
con.execute("insert into run_sources (run_id, source, status) values ('r1', 'csv', 'loaded')")
os._exit(0)  # killed: no close, no checkpoint on the way out
"""


def test_a_warehouse_killed_right_after_it_was_created_opens_again(tmp_path: Path) -> None:
    """DuckDB 1.5.6 cannot replay version 4's ALTER TABLE of run_sources from the write-ahead
    log: the migrations must be checkpointed, or the first run's crash leaves a warehouse that
    does not open."""
    path = tmp_path / "w.duckdb"
    subprocess.run([sys.executable, "-c", CREATE_THEN_DIE, str(path)], check=True, cwd=REPO)
    con = open_warehouse(path)
    try:
        rows = con.execute("select run_id, source, repeat_of from run_sources").fetchall()
        assert rows == [("r1", "csv", None)], "the committed rows after the migrations survive"
        version = con.execute("select max(version) from schema_version").fetchall()[0][0]
        assert version == available_migrations()[-1].version
    finally:
        con.close()


def test_version_4_moves_each_runs_seen_list_into_run_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.duckdb"
    every = available_migrations()
    monkeypatch.setattr(store.migrate, "available_migrations", lambda: every[:3])
    con = open_warehouse(path)
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    seen = [
        {"source_asset_id": "bitcoin", "coin_id": "btc-bitcoin", "observed_at": at},
        {"source_asset_id": "ethereum", "coin_id": "eth-ethereum", "observed_at": at},
    ]
    con.execute(
        "insert into run_sources (run_id, source, status, seen) values ('r1', 'coingecko', "
        "'loaded', ?), ('r1', 'csv', 'loaded', null)",
        [seen],
    )
    con.close()
    monkeypatch.undo()

    con = open_warehouse(path)
    try:
        rows = con.execute("select * from run_seen order by all").fetchall()
        assert rows == [
            ("r1", "coingecko", "bitcoin", "btc-bitcoin", at),
            ("r1", "coingecko", "ethereum", "eth-ethereum", at),
        ]
        columns = {
            c
            for (c,) in con.execute("select name from pragma_table_info('run_sources')").fetchall()
        }
        assert "seen" not in columns
        assert {"delivery_sha256", "repeat_of"} <= columns
    finally:
        con.close()


def test_version_5_marks_each_committed_load_as_reading_its_runs_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.duckdb"
    every = available_migrations()
    monkeypatch.setattr(store.migrate, "available_migrations", lambda: every[:4])
    con = open_warehouse(path)
    con.execute(
        "insert into run_sources (run_id, source, status, repeat_of) values "
        "('r1', 'coingecko', 'loaded', null), ('r1', 'coincap', 'failed', null), "
        "('r2', 'coingecko', 'loaded', 'r1'), ('r2', 'csv', 'loaded', null)"
    )
    con.close()
    monkeypatch.undo()

    con = open_warehouse(path)
    try:
        rows = con.execute("select * from run_files order by all").fetchall()
        assert rows == [("r1", "coingecko", None), ("r2", "csv", None)], (
            "loads that committed, not failed ones or repeats"
        )
    finally:
        con.close()
