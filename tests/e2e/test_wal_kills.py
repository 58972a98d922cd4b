"""Killed whenever the write-ahead log reaches a given size, a run resumes to the clean result.

The named fault points (test_crash_resume) are where the code expects trouble; these kills are
not. A clean run is watched first: every change in how much the data dir's write-ahead logs have
grown (summed over every ``*.wal``, so the copy a migration writes counts too) is a step. Then,
for each step, a run on a fresh data dir is SIGKILLed (its whole process group) as soon as the
logs have grown that much; the warehouse must open, and a resumed run must end with the same
tables as the clean run. Once for a first run (a new warehouse), once for an upgrade (a warehouse
at schema version 3 with a run loaded).

The runs are forked from one process that imported the flows once (tests/e2e/forked_ingest.py):
a fresh interpreter per run would spend ~3 s of each ~5 s importing.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from store.connection import open_warehouse
from store.migrate import available_migrations, current_version
from tests.conftest import DEMO_DIR, REPO
from tests.helpers import assert_no_duplicates, checksums, table_counts

pytestmark = pytest.mark.slow

MAX_STEPS = 5
"""Kills per scenario spread over the whole run by step (the first and the last included), to
which the commits a checkpoint follows are added. Each costs a killed and a resumed run, ~4 s. A
clean first run shows ~18 steps over ~1 MB, the first five of them (the migrations) within
16 kB."""

State = tuple[dict[str, int], dict[str, str]]


@dataclass
class Run:
    returncode: int
    steps: list[int]
    """How much the data dir's write-ahead logs had grown at each change seen, in bytes."""
    checkpointed: list[int]
    """The steps after which a log shrank (was checkpointed): a commit a checkpoint follows."""
    killed_at: int | None = None


def _wal_sizes(data_dir: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    try:
        entries = list(os.scandir(data_dir))
    except FileNotFoundError:
        return sizes
    for entry in entries:
        if entry.name.endswith(".wal"):
            try:
                sizes[entry.name] = entry.stat().st_size
            except FileNotFoundError:  # checkpointed away between listing and stat
                continue
    return sizes


class ForkedIngests:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forked_ingest.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=env,
            text=True,
        )

    def run(self, data_dir: Path, kill_at: int | None = None) -> Run:
        """Ingest the demo into ``data_dir``; SIGKILL the run once its logs grew ``kill_at``."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        argv = ["ingest", "--replay", str(DEMO_DIR)]
        self.process.stdin.write(json.dumps({"data_dir": str(data_dir), "argv": argv}) + "\n")
        self.process.stdin.flush()
        pid = int(self.process.stdout.readline())
        last: dict[str, int] = {}
        grown, steps, checkpointed, killed_at = 0, [], [], None
        while not select.select([self.process.stdout], [], [], 0.0005)[0]:
            sizes = _wal_sizes(data_dir)
            if sizes == last:
                continue
            if steps and any(sizes.get(name, 0) < size for name, size in last.items()):
                checkpointed.append(steps[-1])
            grown += sum(max(0, size - last.get(name, 0)) for name, size in sizes.items())
            last = sizes
            if grown and (not steps or steps[-1] != grown):
                steps.append(grown)
            if kill_at is not None and killed_at is None and grown >= kill_at:
                os.killpg(pid, signal.SIGKILL)
                killed_at = grown
        done = json.loads(self.process.stdout.readline())
        assert done["pid"] == pid
        return Run(done["returncode"], steps, checkpointed, killed_at)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture(scope="module")
def forked(prefect_api: str) -> Iterator[ForkedIngests]:
    env = {
        **os.environ,
        "KASPARRO_OVERRIDES_FILE": str(REPO / "data" / "asset_overrides.csv"),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "flows,store",
    }
    for name in ("KASPARRO_FAULT", "KASPARRO_DATA_DIR", "PREFECT_LOCAL_STORAGE_PATH"):
        env.pop(name, None)
    ingests = ForkedIngests(env)
    yield ingests
    ingests.close()


def _log(data_dir: Path) -> str:
    log = Path(f"{data_dir}.log")
    return log.read_text()[-3000:] if log.exists() else "(no log)"


def warehouse_state(data_dir: Path) -> State:
    con = open_warehouse(data_dir / "warehouse.duckdb")
    try:
        assert current_version(con) == len(available_migrations())
        assert_no_duplicates(con)
        return table_counts(con), checksums(con)
    finally:
        con.close()


def _spread(steps: list[int], count: int) -> list[int]:
    """``count`` of the steps, the first and the last among them, evenly spaced by index."""
    if len(steps) <= count:
        return steps
    return sorted({steps[round(i * (len(steps) - 1) / (count - 1))] for i in range(count)})


def _clean(forked: ForkedIngests, data_dir: Path) -> tuple[list[int], State]:
    """The steps to kill at (see :func:`_spread`; and every commit a checkpoint follows, where
    a process killed before that checkpoint ends leaves only the log to replay) and the
    warehouse a clean run ends with."""
    clean = forked.run(data_dir)
    assert clean.returncode == 0, _log(data_dir)
    steps = sorted({*_spread(clean.steps, MAX_STEPS), *clean.checkpointed})
    return steps, warehouse_state(data_dir)


def _version_3_of(warehouse: Path, target: Path) -> None:
    """``warehouse``'s rows in a new file at schema version 3 (run_sources.seen, no run_seen)."""
    with duckdb.connect(str(target)) as con:
        con.execute(
            "create table schema_version ("
            " version integer primary key, name varchar not null, applied_at timestamptz not null)"
        )
        for migration in available_migrations()[:3]:
            con.execute(migration.sql)
            con.execute(
                "insert into schema_version values (?, ?, now())",
                [migration.version, migration.name],
            )
        quoted = str(warehouse).replace("'", "''")
        con.execute(f"attach '{quoted}' as current (read_only)")
        tables = con.execute(
            "select table_name from information_schema.tables"
            " where table_catalog = current_database() and table_type = 'BASE TABLE'"
            " and table_name not in ('schema_version', 'run_sources')"
        ).fetchall()
        for (table,) in tables:
            con.execute(f"insert into main.{table} by name select * from current.{table}")
        con.execute(
            """
            insert into main.run_sources by name
            select
                rs.* exclude (delivery_sha256, repeat_of, repeatable_until, rounded),
                (
                    select list({
                        'source_asset_id': s.source_asset_id,
                        'coin_id': s.coin_id,
                        'observed_at': s.observed_at
                    } order by s.source_asset_id)
                    from current.run_seen as s
                    where s.run_id = rs.run_id and s.source = rs.source
                ) as seen
            from current.run_sources as rs
            """
        )
        con.execute("detach current")
        con.execute("checkpoint")


@pytest.fixture(scope="module")
def first_run(
    forked: ForkedIngests, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[int], State]:
    data_dir = tmp_path_factory.mktemp("first") / "data"
    steps, state = _clean(forked, data_dir)
    return data_dir, steps, state


@pytest.fixture(scope="module")
def upgrade(
    forked: ForkedIngests,
    first_run: tuple[Path, list[int], State],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[int], State]:
    """A data dir whose warehouse holds the first run at schema version 3; how a clean run on a
    copy of it grows the logs, and the warehouse it ends with."""
    template = tmp_path_factory.mktemp("upgrade") / "data"
    template.mkdir()
    shutil.copytree(first_run[0] / "raw", template / "raw")
    _version_3_of(first_run[0] / "warehouse.duckdb", template / "warehouse.duckdb")
    clean = template.with_name("clean")
    shutil.copytree(template, clean)
    steps, state = _clean(forked, clean)
    return template, steps, state


def _kill_at_every_step(
    forked: ForkedIngests, steps: list[int], clean: State, template: Path | None, root: Path
) -> None:
    killed = []
    for step in steps:
        data_dir = root / f"killed-at-{step}"
        if template is not None:
            shutil.copytree(template, data_dir)
        crashed = forked.run(data_dir, kill_at=step)
        if crashed.killed_at is not None:
            assert crashed.returncode == -signal.SIGKILL, _log(data_dir)
            killed.append(crashed.killed_at)
        warehouse_state(data_dir)  # opens (the next run opens it the same way)
        resumed = forked.run(data_dir)
        assert resumed.returncode == 0, f"killed at {crashed.killed_at}: {_log(data_dir)}"
        assert warehouse_state(data_dir) == clean, f"killed at {crashed.killed_at}"
    # The last step may come after the run's last write is seen: all others are killed.
    assert len(killed) >= len(steps) - 1, (killed, steps)


def test_a_first_run_killed_at_every_wal_step_resumes_to_the_clean_warehouse(
    forked: ForkedIngests, first_run: tuple[Path, list[int], State], tmp_path: Path
) -> None:
    _, steps, clean = first_run
    _kill_at_every_step(forked, steps, clean, None, tmp_path)


def test_an_upgrade_killed_at_every_wal_step_resumes_to_the_clean_warehouse(
    forked: ForkedIngests, upgrade: tuple[Path, list[int], State], tmp_path: Path
) -> None:
    template, steps, clean = upgrade
    _kill_at_every_step(forked, steps, clean, template, tmp_path)
