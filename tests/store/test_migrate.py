"""Schema migrations: applied once, in order, recorded; a newer warehouse is refused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from store.connection import open_warehouse
from store.errors import MigrationError
from store.migrate import available_migrations


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
