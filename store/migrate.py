"""Forward-only, versioned schema migrations.

Each ``store/migrations/NNNN_name.sql`` file is applied once, in order, inside its own
transaction, and recorded in ``schema_version``. A warehouse written by a newer Kasparro is
refused rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import duckdb

from store.errors import MigrationError

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("store.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration files are not numbered 1..n without gaps: {versions}")
    return found


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    version = con.execute("select coalesce(max(version), 0) from schema_version").fetchall()
    return int(version[0][0])


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema up to date; return the version it is at."""
    migrations = available_migrations()
    latest = migrations[-1].version if migrations else 0
    version = current_version(con)
    if version > latest:
        raise MigrationError(
            f"warehouse schema is at version {version} but this Kasparro knows only up to "
            f"{latest}: upgrade Kasparro before opening this warehouse"
        )
    for migration in migrations[version:]:
        try:
            con.execute("begin transaction")
            con.execute(
                "create table if not exists schema_version ("
                " version integer primary key, name varchar not null,"
                " applied_at timestamptz not null)"
            )
            con.execute(migration.sql)
            con.execute(
                "insert into schema_version values (?, ?, ?)",
                [migration.version, migration.name, datetime.now(UTC)],
            )
            con.execute("commit")
        except duckdb.Error as exc:
            con.execute("rollback")
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}; the warehouse "
                "was left at the previous version"
            ) from exc
    if version < latest:
        # DuckDB 1.5.6 cannot replay an ALTER TABLE of run_sources from the write-ahead log
        # (binding its `default []` during replay fails: "GetDefaultDatabase with no default
        # database set"), so a process killed before its next checkpoint would leave a
        # warehouse that no longer opens. Migrations are rare: checkpoint them at once.
        con.execute("checkpoint")
    return latest
