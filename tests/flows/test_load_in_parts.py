"""A batch too large to hold loads in parts (flows.transform.transformed) and is staged through
files (store.merge): the warehouse ends exactly as when it loads whole."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.resolution import Override
from flows.transform import batch
from store import merge
from store.connection import warehouse
from tests.helpers import ingest_without_prefect

HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n"
TABLES = {
    "quotes": "coin_id, source, observed_at, price_usd, market_cap_usd, volume_24h_usd, raw_record",
    "quarantine": "source, record_sha256, reason, detail, raw_record",
    "coins": "coin_id, symbol, name, first_seen_at",
    "coin_source_ids": "coin_id, source, source_asset_id, symbol, name, first_seen_at, "
    "last_seen_at, method",
    "run_sources": "source, status, fetched, valid, quarantined, duplicates, inserted, updated, "
    "unchanged, rounded",
    "checkpoints": "source, stream, position",
}


def write_history(path: Path, seed: int) -> None:
    """Daily rows of 60 assets interleaved, with what settles across rows: identical and
    conflicting duplicates of one asset and day far apart in the file, float noise, bad rows,
    two names sharing a symbol."""
    rng = random.Random(seed)
    lines = []
    for day in range(1, 29):
        for asset in range(60):
            symbol = f"S{asset % 45}"  # 15 symbols shared by two names
            price = rng.choice([f"{rng.uniform(0.001, 900):.6f}", repr(rng.uniform(1e-5, 1e-3))])
            cap = "" if asset % 17 == 0 else f"{rng.uniform(1e6, 1e9):.2f}"
            close = "-1" if (asset * day) % 97 == 0 else price
            lines.append(
                f"0,Coin {asset},{symbol},2021-02-{day:02d} 23:59:59,{price},{price},{price},"
                f"{close},{rng.uniform(1, 1e6):.1f},{cap}"
            )
    lines.append(lines[5])  # identical again, far from the first
    conflicting = lines[70].split(",")
    conflicting[7] = "123.5"
    lines.append(",".join(conflicting))
    lines.append("not,a,row")
    rng.shuffle(lines)
    path.write_text(HEADER + "\n".join(lines) + "\n")


def table_rows(data_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return {
            table: con.execute(f"select {columns} from {table} order by all").fetchall()
            for table, columns in TABLES.items()
        }
    finally:
        con.close()


def load_twice(tmp_path: Path, data_dir: Path) -> None:
    replay = tmp_path / "replay"
    ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("csv",))
    # A changed file is loaded again as a new version: the second load MERGEs over the first.
    prices = replay / "csv" / "history.csv"
    prices.write_text(prices.read_text().replace(",Coin 3,", ",Coin Three,"))
    ingest_without_prefect(replay, data_dir, run_id="run-2", sources=("csv",))


def test_a_batch_loaded_in_parts_through_staged_files_ends_as_one_loaded_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "replay" / "csv").mkdir(parents=True)
    write_history(tmp_path / "replay" / "csv" / "history.csv", seed=3)
    load_twice(tmp_path, tmp_path / "whole")

    parts_seen: list[int] = []
    real_spill = batch._spill

    def spill(*args: object, **kwargs: object) -> batch.Parts:
        parts = real_spill(*args, **kwargs)  # type: ignore[arg-type]
        parts_seen.append(len(parts))
        return parts

    monkeypatch.setattr(batch, "PART_ROWS", 300)
    monkeypatch.setattr(batch, "_spill", spill)
    monkeypatch.setattr(merge, "STAGE_ON_DISK_ROWS", 50)
    (tmp_path / "replay" / "csv" / "history.csv").unlink()
    write_history(tmp_path / "replay" / "csv" / "history.csv", seed=3)
    stale = tmp_path / "parts" / f"{batch.SPILL_PREFIX}left-by-a-killed-load"
    stale.mkdir(parents=True)
    load_twice(tmp_path, tmp_path / "parts")

    assert min(parts_seen, default=0) >= 5, "the file was not loaded in parts"
    whole, parts = table_rows(tmp_path / "whole"), table_rows(tmp_path / "parts")
    assert whole["quarantine"], "the file must hold rows to quarantine"
    assert any("delivered 2 times" in str(row) for row in whole["quarantine"])
    for table in TABLES:
        assert parts[table] == whole[table], table
    leftovers = [p.name for p in (tmp_path / "parts").iterdir() if p.name.startswith(".")]
    assert leftovers == [], "spilled parts, and those a killed load left, must be removed"
    staged = merge.staging_directory(tmp_path / "parts" / "warehouse.duckdb")
    assert list(staged.glob("*")) == [], "staged files must be removed"


def test_files_a_killed_load_staged_are_removed_when_the_warehouse_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warehouse.duckdb"
    with warehouse(path):
        pass
    staged = merge.staging_directory(path)
    staged.mkdir()
    (staged / "stage_quotes-x.parquet").write_bytes(b"half")

    with warehouse(path):
        assert not staged.exists()


def test_a_statement_failing_on_a_staged_file_raises_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed statement aborts the transaction; dropping the staged view after it must not
    replace the failure (an out-of-memory, say) with DuckDB's "transaction is aborted"."""
    monkeypatch.setattr(merge, "STAGE_ON_DISK_ROWS", 1)
    frame = pl.DataFrame({"a": [1, 2, 3]})
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute("begin transaction")
        with pytest.raises(duckdb.BinderException), merge._staged(con, "s", frame, frame.schema):
            con.execute("select no_such_column from s")
        con.execute("rollback")
    finally:
        con.close()


def test_two_assets_an_override_puts_on_one_coin_load_in_parts_as_they_load_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their rows of one day meet on one key from two parts: the parts are merged as one, and
    the later record of the key is kept, as when the file loads whole."""
    replay = tmp_path / "replay"
    (replay / "csv").mkdir(parents=True)
    write_history(replay / "csv" / "history.csv", seed=5)
    ingest_without_prefect(replay, tmp_path / "probe", run_id="run-0", sources=("csv",))
    con = duckdb.connect(str(tmp_path / "probe" / "warehouse.duckdb"), read_only=True)
    assets = [
        row[0]
        for row in con.execute(
            "select source_asset_id from coin_source_ids order by source_asset_id limit 40"
        ).fetchall()
    ]
    con.close()
    overrides = {
        ("csv", asset): Override(coin_id="one-coin", note="the same coin", line=line)
        for line, asset in enumerate(assets, start=2)
    }
    ingest_without_prefect(replay, tmp_path / "whole", run_id="run-1", sources=("csv",),
                           overrides=overrides)  # fmt: skip
    monkeypatch.setattr(batch, "PART_ROWS", 300)
    monkeypatch.setattr(merge, "STAGE_ON_DISK_ROWS", 50)
    ingest_without_prefect(replay, tmp_path / "parts", run_id="run-1", sources=("csv",),
                           overrides=overrides)  # fmt: skip

    whole, parts = table_rows(tmp_path / "whole"), table_rows(tmp_path / "parts")
    one_coin = [row for row in whole["quotes"] if row[0] == "one-coin"]
    assert len(one_coin) == 28, "one row a day for the coin forty assets map to"
    assert parts["quotes"] == whole["quotes"]
