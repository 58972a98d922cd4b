"""MERGE upserts: idempotent, counted exactly, committed together with checkpoint and ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from store import merge, runs
from store.connection import open_warehouse, transaction
from store.schema import QUARANTINE, QUOTES
from store.settings import get_store_settings

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_warehouse(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


def quote_rows(
    n: int, *, price: str = "1.5", run_id: str = "r1", start: datetime = T0, kind: str = "snapshot"
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "coin_id": [f"coin-{i}" for i in range(n)],
            "source": ["coingecko"] * n,
            "observed_at": [start + timedelta(minutes=i) for i in range(n)],
            "kind": [kind] * n,
            "source_asset_id": [f"asset-{i}" for i in range(n)],
            "symbol": ["C"] * n,
            "name": ["Coin"] * n,
            "price_usd": [Decimal(price)] * n,
            "market_cap_usd": [None] * n,
            "volume_24h_usd": [None] * n,
            "pct_change_24h": [None] * n,
            "circulating_supply": [None] * n,
            "total_supply": [None] * n,
            "max_supply": [None] * n,
            "rank": [None] * n,
            "run_id": [run_id] * n,
            "raw_file": [f"{run_id}.parquet"] * n,
            "raw_record": list(range(n)),
        },
        schema=QUOTES,
    )


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"select count(*) from {table}").fetchall()[0][0])


def test_first_load_inserts_every_row(con: duckdb.DuckDBPyConnection) -> None:
    assert merge.merge_quotes(con, quote_rows(5)) == merge.MergeCounts(5, 0, 0)
    assert count(con, "quotes") == 5


def test_loading_the_same_batch_twice_changes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    merge.merge_quotes(con, quote_rows(5))
    before = con.sql("select * from quotes order by coin_id").fetchall()
    assert merge.merge_quotes(con, quote_rows(5, run_id="r2")) == merge.MergeCounts(0, 0, 5)
    after = con.sql("select * from quotes order by coin_id").fetchall()
    assert after == before, "lineage alone (a new run id) does not rewrite a row"


def test_a_changed_value_is_one_update(con: duckdb.DuckDBPyConnection) -> None:
    merge.merge_quotes(con, quote_rows(3))
    changed = quote_rows(3, run_id="r2").with_columns(
        pl.when(pl.col("coin_id") == "coin-1")
        .then(pl.lit(Decimal("2.25")).cast(QUOTES["price_usd"]))
        .otherwise(pl.col("price_usd"))
        .alias("price_usd")
    )
    assert merge.merge_quotes(con, changed) == merge.MergeCounts(0, 1, 2)
    price, run_id = con.execute(
        "select price_usd, run_id from quotes where coin_id = 'coin-1'"
    ).fetchall()[0]
    assert (price, run_id) == (Decimal("2.25"), "r2")


def test_a_history_row_never_overwrites_a_snapshot_row(con: duckdb.DuckDBPyConnection) -> None:
    merge.merge_quotes(con, quote_rows(2))
    history = quote_rows(2, price="9.99", run_id="r2", kind="history")
    assert merge.merge_quotes(con, history) == merge.MergeCounts(0, 0, 2)
    assert con.execute("select distinct price_usd, kind from quotes").fetchall() == [
        (Decimal("1.5"), "snapshot")
    ]


def test_a_snapshot_row_replaces_a_history_row(con: duckdb.DuckDBPyConnection) -> None:
    merge.merge_quotes(con, quote_rows(1, price="9.99", kind="history"))
    assert merge.merge_quotes(con, quote_rows(1, run_id="r2")) == merge.MergeCounts(0, 1, 0)
    assert con.execute("select price_usd, kind from quotes").fetchall() == [
        (Decimal("1.5"), "snapshot")
    ]


def test_prices_are_stored_without_rounding(con: duckdb.DuckDBPyConnection) -> None:
    merge.merge_quotes(con, quote_rows(1, price="66765.984733995988814312"))
    assert con.execute("select price_usd from quotes").fetchall()[0][0] == Decimal(
        "66765.984733995988814312"
    )


def test_a_batch_with_the_wrong_schema_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(TypeError, match="expected schema"):
        merge.merge_quotes(con, quote_rows(1).drop("rank"))


def test_quarantine_rows_are_added_once(con: duckdb.DuckDBPyConnection) -> None:
    rows = pl.DataFrame(
        {
            "source": ["coincap"],
            "record_sha256": ["abc"],
            "reason": ["not_a_number"],
            "detail": ["priceUsd is not a number: 'n/a'"],
            "source_asset_id": ["x"],
            "record": ['{"id": "x"}'],
            "raw_file": ["f.parquet"],
            "raw_record": [3],
            "first_run_id": ["r1"],
        },
        schema=QUARANTINE,
    )
    assert merge.merge_quarantine(con, rows) == 1
    assert merge.merge_quarantine(con, rows.with_columns(first_run_id=pl.lit("r2"))) == 0
    assert con.execute("select first_run_id from quarantine").fetchall() == [("r1",)]


def test_a_checkpoint_only_moves_forward(con: duckdb.DuckDBPyConnection) -> None:
    for position in ("2026-11-24T12:00:00", "2026-11-24T11:00:00", "2026-11-24T13:00:00"):
        runs.advance_checkpoint(
            con, source="coingecko", stream="quotes", position=position, run_id="r"
        )
    assert runs.checkpoint(con, "coingecko", "quotes") == "2026-11-24T13:00:00"


def test_data_and_checkpoint_roll_back_together(con: duckdb.DuckDBPyConnection) -> None:
    class Crash(Exception):
        pass

    def load_then_crash() -> None:
        with transaction(con):
            merge.merge_quotes(con, quote_rows(3))
            runs.advance_checkpoint(
                con, source="coingecko", stream="quotes", position="z", run_id="r1"
            )
            raise Crash

    with pytest.raises(Crash):
        load_then_crash()
    assert count(con, "quotes") == 0
    assert runs.checkpoint(con, "coingecko", "quotes") is None


def daily_histories(rows: int, days: int = 2_000) -> pl.DataFrame:
    """``rows`` daily history rows, ``days`` per coin, as a large CSV file delivers them."""
    index = pl.int_range(rows, eager=True)
    return quote_rows(rows, kind="history").with_columns(
        coin_id=pl.format("coin-{}", index // days),
        observed_at=pl.lit(T0) - pl.duration(days=index % days),
    )


def merge_in_parts(
    con: duckdb.DuckDBPyConnection, quotes: pl.DataFrame, part: int
) -> list[merge.MergeCounts]:
    """One load of ``quotes`` in parts of ``part`` rows, each of whole coins, in one
    transaction, as flows.load merges a large file."""
    with transaction(con), merge.quotes_merge(con) as merging:
        return [merging.merge(quotes.slice(at, part)) for at in range(0, quotes.height, part)]


def merge_memory_limit(monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    monkeypatch.setenv("KASPARRO_DUCKDB_MERGE_MEMORY_LIMIT", limit)
    get_store_settings.cache_clear()


def memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("select current_setting('memory_limit')").fetchall()[0][0])


def test_quotes_merge_under_their_own_memory_limit_and_the_writers_comes_back(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The merge grows with a file's size; DuckDB fills whatever limit it has with blocks the
    # merge writes once (a 500 MB file: 618 MiB peak under 256 MiB, 437 MiB with the merge
    # under 64 MiB).
    merge_memory_limit(monkeypatch, "32MiB")
    writers = memory_limit(con)
    quotes = quote_rows(10)
    with transaction(con), merge.quotes_merge(con) as merging:
        merging.merge(quotes)
        assert memory_limit(con) == "32.0 MiB"
    assert memory_limit(con) == writers == "256.0 MiB"
    assert count(con, "quotes") == 10


def test_a_failed_merge_gives_the_writer_its_memory_limit_back_after_the_rollback(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB takes no SET in an aborted transaction: the rollback puts the limit back.
    merge_memory_limit(monkeypatch, "32MiB")
    quotes = quote_rows(10)

    def a_part_that_fails(con: duckdb.DuckDBPyConnection) -> None:
        with transaction(con), merge.quotes_merge(con) as merging:
            merging.merge(quotes)
            con.execute("select error('a part that fails')").fetchall()

    with pytest.raises(duckdb.Error, match="a part that fails"):
        a_part_that_fails(con)
    assert memory_limit(con) == "256.0 MiB"
    assert count(con, "quotes") == 0


def test_a_failed_merge_leaves_neither_rows_nor_staged_files(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # A part's rows wait in a file beside the warehouse until the merge finishes.
    quotes = daily_histories(merge.STAGE_ON_DISK_ROWS + 1)
    staged = merge.staging_directory(tmp_path / "warehouse.duckdb")
    waiting: list[str] = []

    def a_load_that_fails(con: duckdb.DuckDBPyConnection) -> None:
        with transaction(con), merge.quotes_merge(con) as merging:
            merging.merge(quotes)
            waiting.extend(p.suffix for p in staged.rglob("*.parquet"))
            con.execute("select error('a load that fails')").fetchall()

    with pytest.raises(duckdb.Error, match="a load that fails"):
        a_load_that_fails(con)
    assert waiting == [".parquet"]
    assert count(con, "quotes") == 0
    assert list(staged.rglob("*")) == []


def test_the_rows_many_small_parts_will_write_wait_on_disk_not_all_in_memory(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    part = merge.STAGE_ON_DISK_ROWS // 4
    quotes = daily_histories(part * 8, days=part)
    staged = merge.staging_directory(tmp_path / "warehouse.duckdb")
    on_disk: list[int] = []
    with transaction(con), merge.quotes_merge(con) as merging:
        for at in range(0, quotes.height, part):
            merging.merge(quotes.slice(at, part))
        on_disk.append(len(list(staged.rglob("*.parquet"))))
    assert on_disk == [5], "at most STAGE_ON_DISK_ROWS rows wait in memory"
    assert count(con, "quotes") == quotes.height


def test_a_merge_failing_between_its_deletes_and_its_inserts_keeps_every_stored_row(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replaced versions are deleted before the parts' rows are appended, in the caller's
    # transaction: a failure in between must leave the stored rows as they were.
    stored = daily_histories(60, days=3)
    merge.merge_quotes(con, stored)
    changed = stored.with_columns(
        price_usd=pl.lit(Decimal("9")).cast(QUOTES["price_usd"]), run_id=pl.lit("r2")
    )
    executed: list[str] = []
    real_execute = duckdb.DuckDBPyConnection.execute

    def execute(self: duckdb.DuckDBPyConnection, sql: str, *args: object) -> object:
        if sql.lstrip().startswith("insert into quotes") and executed:
            raise duckdb.IOException("the disk went away between the deletes and the inserts")
        if sql.lstrip().startswith("delete from quotes"):
            executed.append(sql)
        return real_execute(self, sql, *args)

    before = con.execute("select * from quotes order by all").fetchall()
    monkeypatch.setattr(duckdb.DuckDBPyConnection, "execute", execute)
    with pytest.raises(duckdb.IOException, match="the disk went away"):
        merge_in_parts(con, changed, 30)
    monkeypatch.undo()
    assert executed, "the deletes ran before the failure"
    assert con.execute("select * from quotes order by all").fetchall() == before


@pytest.mark.slow
def test_a_load_may_change_more_rows_than_duckdbs_memory_holds(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reloading a changed daily history rewrites every row in one transaction, in parts of a
    # few coins each. DuckDB cannot spill a MERGE's updated values: with a MERGE this ran out
    # of memory below 64 MiB at 400k rows; comparing each part with a copy of the stored rows
    # ran out at 24 MiB with 1M (and a 500 MB file's 4.2M at 64 MiB). One thread, so that
    # the measure does not vary.
    rows = 1_000_000
    histories = daily_histories(rows)
    merge.merge_quotes(con, histories)
    con.execute("checkpoint")  # the stored rows on disk, as a later run finds them
    changed = histories.with_columns(
        price_usd=pl.lit(Decimal("2.5")).cast(QUOTES["price_usd"]),
        market_cap_usd=pl.lit(Decimal("123456789.123456789")).cast(QUOTES["market_cap_usd"]),
        run_id=pl.lit("r2"),
        raw_file=pl.lit("source=csv/date=2026-12-04/run=r2/daily_history-0001.parquet"),
    )
    con.execute("set threads = 1")
    merge_memory_limit(monkeypatch, "24MiB")
    counts = merge_in_parts(con, changed, 50_000)
    assert sum(c.updated for c in counts) == rows
    assert con.execute(
        "select count(*), min(price_usd), max(price_usd), min(run_id) from quotes"
    ).fetchall() == [(rows, Decimal("2.5"), Decimal("2.5"), "r2")]


@pytest.mark.slow
def test_a_large_first_load_does_not_compare_each_part_with_the_parts_before_it(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compared with the table itself, each part scanned the rows the parts before it had
    # appended in the transaction, which DuckDB holds apart until the commit: a 500 MB file
    # ran out of memory after 3.4M rows at 64 MiB; here 1M rows at 16 MiB did.
    rows = 1_000_000
    con.execute("set threads = 1")
    merge_memory_limit(monkeypatch, "16MiB")
    counts = merge_in_parts(con, daily_histories(rows), 50_000)
    assert sum(c.inserted for c in counts) == rows
    assert count(con, "quotes") == rows


def captures(coins: int, hours: int, source: str, *, start: datetime = T0) -> pl.DataFrame:
    """``hours`` hourly captures of ``coins`` coins by ``source``, as an API run delivers them."""
    index = pl.int_range(coins * hours, eager=True)
    return quote_rows(coins * hours).with_columns(
        coin_id=pl.format("coin-{}", index % coins),
        source=pl.lit(source),
        observed_at=pl.lit(start) + pl.duration(hours=index // coins),
    )


@pytest.mark.slow
def test_a_part_of_new_quotes_is_compared_by_key_not_carried_whole_into_a_join(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebuild at 10M quotes ran out of its 64 MiB merging a 160k-row capture of which
    # nothing was stored: the comparison joined the part's wide rows with the stored ones, and
    # DuckDB built its hash table from the part. Here that ran out at 40 MiB; a join of the
    # keys alone passes at 20 (and runs out at 16). Two threads, as CI has.
    coins, hours = 9_000, 18
    older = captures(coins, 120, "coinpaprika", start=T0 - timedelta(days=30))
    for at in range(0, older.height, 500_000):
        merge.merge_quotes(con, older.slice(at, 500_000))
    merge.merge_quotes(con, captures(coins, hours, "coincap"))
    con.execute("set threads = 2")
    merge_memory_limit(monkeypatch, "32MiB")
    (counts,) = merge_in_parts(con, captures(coins, hours, "coingecko"), coins * hours)
    assert counts == merge.MergeCounts(inserted=coins * hours)
    assert count(con, "quotes") == older.height + 2 * coins * hours


def test_a_part_replaces_only_what_changed_and_counts_it(con: duckdb.DuckDBPyConnection) -> None:
    stored = daily_histories(6, days=3)  # coin-0 and coin-1, three days each
    merge.merge_quotes(con, stored)
    snapshot = (
        stored.filter(pl.col("coin_id") == "coin-0").head(1).with_columns(kind=pl.lit("snapshot"))
    )
    merge.merge_quotes(con, snapshot)  # coin-0's first day is now a snapshot
    later = stored.with_columns(
        price_usd=pl.when(pl.col("raw_record") % 2 == 0)
        .then(pl.lit(Decimal("7")).cast(QUOTES["price_usd"]))
        .otherwise(pl.col("price_usd")),
        run_id=pl.lit("r2"),
    )
    extra = daily_histories(9, days=3).slice(6, 3)  # coin-2, new
    counts = merge_in_parts(con, pl.concat([later, extra]), 3)
    # coin-0: its first row is a snapshot a history row never replaces, its third changed;
    # coin-1: its second row changed; coin-2 is new.
    assert counts == [
        merge.MergeCounts(0, 1, 2),
        merge.MergeCounts(0, 1, 2),
        merge.MergeCounts(3, 0, 0),
    ]
    assert count(con, "quotes") == 9
    assert (
        con.execute(
            "select coin_id, count(*) from quotes group by all having count(*) > 3"
        ).fetchall()
        == []
    ), "a replaced row is gone, not kept beside its replacement"
    changed = con.execute(
        "select coin_id, raw_record, run_id from quotes where price_usd = 7 order by all"
    ).fetchall()
    assert changed == [("coin-0", 2, "r2"), ("coin-1", 4, "r2")]
