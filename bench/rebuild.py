"""Rebuild throughput: raw zone (records as received) -> validated, resolved, merged warehouse.

Beside it, in the same run: a bare DuckDB ``MERGE`` of the same quotes pre-typed in Parquet
(50% of the keys already in the target, no primary key): the floor any loader of this table
pays; and dlt fed the same JSON records as Python dicts, merging into DuckDB (on a sample: it is
slow), as an off-the-shelf pipeline would.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.harness import CACHE, Timing, timed
from bench.rawzone import write_raw_zone
from flows.raw_zone import read_raw
from flows.rebuild import chunks, raw_batches, rebuild_from_raw
from store.connection import open_read_only


def raw_zone(quotes: int) -> Path:
    """A cached data dir holding a raw zone of about ``quotes`` records."""
    data_dir = CACHE / f"rawzone-{quotes}"
    if not (data_dir / "raw").is_dir():
        clock = time.perf_counter()
        tmp = CACHE / f".rawzone-{quotes}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        write_raw_zone(tmp / "raw", quotes=quotes)
        tmp.rename(data_dir)
        print(f"generated a raw zone of {quotes} quotes in {time.perf_counter() - clock:.0f} s")
    return data_dir


def _clear(data_dir: Path) -> None:
    for name in (
        "warehouse.duckdb",
        "warehouse.duckdb.wal",
        "warehouse.duckdb.bak",
        "serving.duckdb",
    ):
        (data_dir / name).unlink(missing_ok=True)


def measure_rebuild(data_dir: Path, repeat: int) -> tuple[int, Timing]:
    rows = sum(c.rows for c in chunks(data_dir / "raw", raw_batches(data_dir / "raw"), 1 << 62))
    timing = timed(
        lambda: rebuild_from_raw(data_dir, {}, recover=True),
        setup=lambda: _clear(data_dir),
        repeat=repeat,
    )
    return rows, timing


def measure_bare_merge(data_dir: Path, repeat: int) -> tuple[int, Timing]:
    """MERGE every rebuilt quote, pre-typed in Parquet, into a table holding half of them."""
    parquet = data_dir / "quotes.parquet"
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        con.execute(f"copy (select * from quotes) to '{parquet}' (format parquet)")
        rows = int(con.execute("select count(*) from quotes").fetchall()[0][0])
    finally:
        con.close()
    work = duckdb.connect()
    work.execute(f"create table source as select * from read_parquet('{parquet}')")

    def setup() -> None:
        work.execute("drop table if exists target")
        work.execute(
            "create table target as select * from source where hash(coin_id, observed_at) % 2 = 0"
        )

    def merge() -> None:
        work.execute(
            f"""
            merge into target as t
            using read_parquet('{parquet}') as s
                on t.coin_id = s.coin_id and t.source = s.source and t.observed_at = s.observed_at
            when matched then update set price_usd = s.price_usd, market_cap_usd = s.market_cap_usd,
                volume_24h_usd = s.volume_24h_usd, run_id = s.run_id
            when not matched then insert by name
            """
        )

    timing = timed(merge, setup=setup, repeat=repeat)
    work.close()
    return rows, timing


def measure_dlt(data_dir: Path, sample: int) -> tuple[int, Timing] | None:
    """dlt merging the same records, parsed to dicts as they come from a JSON API."""
    try:
        import dlt  # noqa: PLC0415 - benchmark-only dependency, optional
    except ImportError:
        return None
    files = [
        p.relative_to(data_dir / "raw").as_posix()
        for p in sorted((data_dir / "raw").rglob("*.parquet"))
    ]
    raw = read_raw(data_dir / "raw", files).head(sample)
    by_source: dict[str, list[dict[str, Any]]] = {}
    for source, record in raw.select("source", "record").iter_rows():
        by_source.setdefault(source, []).append(json.loads(record))
    keys = {
        "coingecko": ("id", "last_updated"),
        "coinpaprika": ("id", "last_updated"),
        "coincap": ("id", "rank"),
    }
    workdir = Path(tempfile.mkdtemp(prefix="dlt-bench-"))
    try:
        pipeline = dlt.pipeline(
            pipeline_name="bench",
            destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
            pipelines_dir=str(workdir / "pipelines"),
            dataset_name="bench",
        )

        def run() -> None:
            for source, records in by_source.items():
                pipeline.run(
                    records, table_name=source, write_disposition="merge", primary_key=keys[source]
                )

        timing = timed(run, repeat=1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return raw.height, timing
