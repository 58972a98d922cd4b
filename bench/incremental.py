"""Re-run cost: the first load of a recording against a re-run over unchanged upstream data.

    python -m bench.incremental [--quotes 1000000 | --replay DIR | --demo] [--repeat 3]

``--replay DIR`` reuses a recording written by ``python -m bench.synthetic DIR --quotes N``
(generating 1M quotes takes about two minutes).

Each repeat builds a fresh data dir, loads the recording once (first load) and again (re-run),
timing the flow's own steps without Prefect (extract from the replay into the raw zone,
transform, resolve, load, publish): Prefect's overhead is measured separately. Prints medians
with min/max, the ratio re-run / first load, and the rows the re-run wrote to the data tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import Timing
from bench.synthetic import bench_environment, universe_for, write_recording
from flows.extract import extract
from flows.load import load_extracted
from flows.resolution import read_overrides
from flows.sources import SOURCE_NAMES
from flows.sources.replay import check_replay_dir
from store import runs
from store.connection import open_read_only, transaction, warehouse
from store.resolution import apply_pending, import_inbox
from store.settings import DECISIONS_INBOX
from store.snapshot import publish_snapshot

DATA_TABLES = ("coins", "coin_source_ids", "quotes", "quarantine", "checkpoints")
SOURCES = ("coingecko", "coinpaprika", "coincap", "csv")


def table_rows(data_dir: Path) -> dict[str, int]:
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        return {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in DATA_TABLES}
    finally:
        con.close()


RUN_COLUMNS = (
    ("quotes", "run_id"),
    ("coins", "created_by_run"),
    ("coin_source_ids", "decided_by_run"),
    ("quarantine", "first_run_id"),
    ("checkpoints", "run_id"),
)


def changed_rows(data_dir: Path, run_id: str) -> int:
    """Rows of the data tables a run inserted or rewrote (its run id is on every such row)."""
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        total = 0
        for table, column in RUN_COLUMNS:
            sql = f"select count(*) from {table} where {column} = ?"
            total += con.execute(sql, [run_id]).fetchall()[0][0]
        return total
    finally:
        con.close()


def ingest_once(replay: Path, data_dir: Path, run_id: str) -> float:
    """The ingest flow's steps as plain calls, in its order: check the replay, look for a run to
    resume, start the run, apply operator decisions, start every extract (concurrently, as the
    flow's tasks run), then per source in order transform and load, finish the run, checkpoint
    and publish."""
    overrides = read_overrides(Path("data/asset_overrides.csv"))
    clock = time.perf_counter()
    check_replay_dir(replay)
    with warehouse(data_dir / "warehouse.duckdb") as con:
        runs.resumable_run(con, flow_run_id=None, sources=list(SOURCES), replay_dir=str(replay))
        with transaction(con):
            runs.start_run(
                con, run_id=run_id, flow_run_id=None, started_at=datetime.now(UTC),
                sources=list(SOURCES), replay_dir=str(replay),
            )  # fmt: skip
        import_inbox(con, data_dir / DECISIONS_INBOX)
        apply_pending(con, run_id, list(SOURCES))
        csv_loaded = runs.checkpoints_of(con, "csv", prefix="file:")
        with ThreadPoolExecutor(max_workers=len(SOURCES)) as pool:
            extracts = {
                source: pool.submit(
                    extract,
                    source,
                    raw_root=data_dir / "raw",
                    run_id=run_id,
                    started_at=datetime.now(UTC),
                    replay_dir=replay,
                    csv_loaded=csv_loaded if source == "csv" else {},
                )
                for source in SOURCES
            }
            for source, extracted in extracts.items():
                result = runs.SourceResult(run_id, source, "loaded")
                load_extracted(con, data_dir / "raw", extracted.result(), result, overrides)
        runs.finish_run(con, run_id, "completed", None)
        con.execute("checkpoint")
    publish_snapshot(
        data_dir / "warehouse.duckdb", data_dir / "serving.duckdb", sources=SOURCE_NAMES
    )
    return time.perf_counter() - clock


@dataclass(frozen=True)
class Rerun:
    quotes: int
    first: Timing
    rerun: Timing
    written: int
    """Rows the re-runs wrote to the data tables (the most of any repeat)."""
    later: Timing
    """The last of ``LATER_RUNS`` further re-runs: the ledger grows with every run."""


LATER_RUNS = 20


def measure(replay: Path, repeat: int) -> Rerun:
    firsts, reruns, laters, written = [], [], [], []
    for i in range(repeat):
        data_dir = Path(tempfile.mkdtemp(prefix="kasparro-bench-")) / "data"
        firsts.append(ingest_once(replay, data_dir, f"first-{i}"))
        before = table_rows(data_dir)
        reruns.append(ingest_once(replay, data_dir, f"rerun-{i}"))
        assert table_rows(data_dir) == before
        written.append(changed_rows(data_dir, f"rerun-{i}"))
        for n in range(1, LATER_RUNS + 1):
            later = ingest_once(replay, data_dir, f"rerun-{i}-{n:02d}")
        laters.append(later)
        shutil.rmtree(data_dir.parent)
    return Rerun(before["quotes"], Timing(firsts), Timing(reruns), max(written), Timing(laters))


def measure_synthetic(quotes: int, repeat: int) -> Rerun:
    """A recording of about ``quotes`` records (one capture), generated for the occasion."""
    replay = Path(tempfile.mkdtemp(prefix="kasparro-replay-"))
    moment = datetime(2026, 11, 24, 12, tzinfo=UTC)
    saved = dict(os.environ)
    try:
        write_recording(replay, universe_for(quotes, moment), moment)
        os.environ.update(bench_environment(pages=100_000))
        return measure(replay, repeat)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(replay)


def report(result: Rerun) -> None:
    print(f"quotes loaded:  {result.quotes}")
    print(f"first load:     {result.first}")
    print(f"re-run:         {result.rerun}")
    print(f"ratio:          re-run / first load = {result.rerun.median / result.first.median:.3f}")
    print(f"rows written by the re-run to data tables: {result.written}")
    print(f"re-run after {LATER_RUNS} more: {result.later} "
          f"({result.later.median / result.rerun.median:.2f}x the first re-run)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.incremental", description=__doc__)
    parser.add_argument("--quotes", type=int, default=1_000_000)
    parser.add_argument("--demo", action="store_true", help="use data/demo instead")
    parser.add_argument("--replay", type=Path, help="use a recording from bench.synthetic")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.demo:
        report(measure(Path("data/demo"), args.repeat))
    elif args.replay:
        os.environ.update(bench_environment(pages=100_000))
        report(measure(args.replay, args.repeat))
    else:
        report(measure_synthetic(args.quotes, args.repeat))


if __name__ == "__main__":
    main()
