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
from store.errors import MigrationError, WalReplayError
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


MIGRATE_IN_PLACE_THEN_DIE = """
import os, sys
import duckdb
from store.migrate import available_migrations

# What Kasparro did before migrations ran on a copy: commit each migration in the warehouse
# itself; then the process dies before the checkpoint that followed them.
con = duckdb.connect(sys.argv[1])
con.execute("create table schema_version ("
            " version integer primary key, name varchar not null, applied_at timestamptz not null)")
for m in available_migrations():
    con.execute("begin transaction")
    con.execute(m.sql)
    con.execute("insert into schema_version values (?, ?, now())", [m.version, m.name])
    con.execute("commit")
con.execute("insert into run_sources (run_id, source, status) values ('r1', 'csv', 'loaded')")
os._exit(0)
"""


def test_a_log_duckdb_cannot_replay_on_open_is_replayed_whole(tmp_path: Path) -> None:
    """A warehouse an older Kasparro left with version 4's ALTER TABLEs in its write-ahead log
    (DuckDB 1.5.6 fails to replay them while opening: "GetDefaultDatabase with no default
    database set") opens, with everything that was committed."""
    path = tmp_path / "w.duckdb"
    subprocess.run(
        [sys.executable, "-c", MIGRATE_IN_PLACE_THEN_DIE, str(path)], check=True, cwd=REPO
    )
    assert (tmp_path / "w.duckdb.wal").stat().st_size > 0
    with pytest.raises(duckdb.Error, match="GetDefaultDatabase"):
        duckdb.connect(str(path)).close()  # the failure this recovers from

    con = open_warehouse(path)
    try:
        rows = con.execute("select run_id, source, repeat_of from run_sources").fetchall()
        assert rows == [("r1", "csv", None)]
        assert store.migrate.current_version(con) == available_migrations()[-1].version
    finally:
        con.close()
    assert not (tmp_path / "w.duckdb.wal").exists(), "replayed into the file and checkpointed"


def test_a_log_that_cannot_be_replayed_is_kept_and_the_error_says_what_to_do(
    tmp_path: Path,
) -> None:
    path, wal = tmp_path / "w.duckdb", tmp_path / "w.duckdb.wal"
    subprocess.run([sys.executable, "-c", CREATE_THEN_DIE, str(path)], check=True, cwd=REPO)
    damaged = bytearray(wal.read_bytes())
    damaged[40:80] = bytes(40)  # a flipped sector: the entry's checksum no longer matches
    wal.write_bytes(damaged)
    before = path.read_bytes()

    with pytest.raises(WalReplayError) as refused:
        open_warehouse(path)
    message = str(refused.value)
    assert str(wal) in message
    assert "fails to replay" in message
    assert "nothing was changed: keep both files" in message
    assert f"mv {wal} {wal}.unreplayable-" in message, "says how to give the log up"
    assert wal.read_bytes() == damaged, "the log, where the committed transactions are, is kept"
    assert path.read_bytes() == before


def test_a_killed_migration_leaves_the_warehouse_at_its_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations run on a copy: whatever the copy holds when the process dies, the warehouse
    is the previous version, whole, and the next open migrates it."""
    path = tmp_path / "w.duckdb"
    every = available_migrations()
    monkeypatch.setattr(store.migrate, "available_migrations", lambda: every[:3])
    open_warehouse(path).close()
    monkeypatch.undo()
    work = store.migrate.work_path(path)
    subprocess.run(
        [sys.executable, "-c", MIGRATE_IN_PLACE_THEN_DIE, str(work)], check=True, cwd=REPO
    )

    with duckdb.connect(str(path)) as con:
        assert store.migrate.current_version(con) == 3
    con = open_warehouse(path)
    try:
        assert store.migrate.current_version(con) == every[-1].version
        assert con.execute("select count(*) from run_sources").fetchall() == [(0,)]
    finally:
        con.close()
    assert not work.exists()
