"""Forward-only, versioned schema migrations.

Each ``store/migrations/NNNN_name.sql`` file is applied once, in order, inside its own
transaction, and recorded in ``schema_version``. A warehouse written by a newer Kasparro is
refused rather than guessed at.

The warehouse file itself is never migrated in place (:func:`migrate_file`): DuckDB 1.5.6 cannot
replay some of the migrations' DDL from the write-ahead log, so a process killed between their
commits and the next checkpoint would leave a file that no longer opens. The migrations run on a
copy (or, for a new warehouse, a new file) beside it, which is checkpointed, closed and renamed
over it: at every moment the live file is either the old version or the new one, whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

from store.errors import MigrationError
from store.snapshot import copy_durably, fsync_path

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


def is_behind(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether migrations are pending; a warehouse from a newer Kasparro is refused."""
    latest = len(available_migrations())
    version = current_version(con)
    if version > latest:
        raise MigrationError(
            f"warehouse schema is at version {version} but this Kasparro knows only up to "
            f"{latest}: upgrade Kasparro before opening this warehouse"
        )
    return version < latest


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema of ``con``'s database up to date; return the version it is at. Run it
    on a file no one relies on yet (see :func:`migrate_file`)."""
    migrations = available_migrations()
    is_behind(con)
    for migration in migrations[current_version(con) :]:
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
    return len(migrations)


def work_path(path: Path) -> Path:
    """Where :func:`migrate_file` builds the next version of ``path``."""
    return path.with_name(path.name + ".migrating")


def migrate_file(
    path: Path,
    live: duckdb.DuckDBPyConnection | None,
    configure: Callable[[duckdb.DuckDBPyConnection], None],
) -> None:
    """Replace the warehouse at ``path`` (open as ``live``; None when there is none yet) by a
    migrated copy. The caller holds the only connection to ``path`` and keeps any other
    process from opening it until this returns; ``live`` is closed."""
    work = work_path(path)
    for stale in (work, work.with_name(work.name + ".wal")):  # left by a killed migration
        stale.unlink(missing_ok=True)
    if live is not None:
        live.execute("checkpoint")  # the copy must hold every committed transaction
        live.close()
        copy_durably(path, work)
    con = duckdb.connect(str(work))
    try:
        configure(con)
        migrate(con)
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(work, path)
    fsync_path(path.parent)
