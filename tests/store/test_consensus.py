"""The consensus price view: per source its latest snapshot, their exact median, deviation and
staleness flags; history rows never count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from store.connection import open_warehouse
from store.consensus import DEVIATION_THRESHOLD, STALE_AFTER, SourcePrice, prices_of
from store.errors import StoreError

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An empty, migrated warehouse."""
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    yield con
    con.close()


def add_quote(
    con: duckdb.DuckDBPyConnection,
    source: str,
    price: str,
    *,
    coin_id: str = "btc-bitcoin",
    observed_at: datetime = NOW,
    kind: str = "snapshot",
) -> None:
    con.execute(
        """
        insert into quotes (
            coin_id, source, observed_at, kind, source_asset_id, symbol, name, price_usd,
            run_id, raw_file, raw_record
        )
        values (?, ?, ?, ?, ?, 'BTC', 'Bitcoin', ?::decimal(38, 18), 'run-1', 'raw.json', 0)
        """,
        [coin_id, source, observed_at, kind, f"{source}:{coin_id}", price],
    )


def by_source(rows: list[SourcePrice]) -> dict[str, SourcePrice]:
    return {row.source: row for row in rows}


def consensus_of(rows: list[SourcePrice]) -> str:
    (consensus,) = {row.consensus_price_usd for row in rows}
    return consensus


def test_odd_source_count_takes_the_middle_price(warehouse: duckdb.DuckDBPyConnection) -> None:
    for source, price in (("coingecko", "100"), ("coinpaprika", "101"), ("coincap", "130")):
        add_quote(warehouse, source, price)
    rows = prices_of(warehouse, "btc-bitcoin")
    assert [row.source for row in rows] == ["coincap", "coingecko", "coinpaprika"]
    assert consensus_of(rows) == "101"
    assert {row.sources for row in rows} == {3}
    assert rows[0].spread == pytest.approx(30 / 101)
    assert by_source(rows)["coincap"].deviation == pytest.approx(29 / 101)
    assert by_source(rows)["coingecko"].deviation == pytest.approx(-1 / 101)


def test_even_source_count_averages_the_two_middle_prices_exactly(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    # Through a DOUBLE (DuckDB's median() on DECIMAL) this would come out 1.5 flat.
    add_quote(warehouse, "coingecko", "1.000000000000000001")
    add_quote(warehouse, "coinpaprika", "2.000000000000000002")
    assert consensus_of(prices_of(warehouse, "btc-bitcoin")) == "1.500000000000000002"

    for source, price in (("coincap", "0.5"), ("csv", "9")):
        add_quote(warehouse, source, price, coin_id="eth-ethereum")
    for source, price in (("coingecko", "2.5"), ("coinpaprika", "3.25")):
        add_quote(warehouse, source, price, coin_id="eth-ethereum")
    rows = prices_of(warehouse, "eth-ethereum")
    assert {row.sources for row in rows} == {4}
    assert consensus_of(rows) == "2.875"


def test_only_each_sources_latest_snapshot_counts(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_quote(warehouse, "coingecko", "50", observed_at=NOW - timedelta(hours=1))
    add_quote(warehouse, "coingecko", "100")
    add_quote(warehouse, "coinpaprika", "102", observed_at=NOW - timedelta(minutes=5))
    rows = by_source(prices_of(warehouse, "btc-bitcoin"))
    assert rows["coingecko"].price_usd == "100"
    assert rows["coingecko"].observed_at == NOW
    assert rows["coinpaprika"].price_usd == "102"
    assert rows["coinpaprika"].newest_observed_at == NOW
    assert consensus_of(list(rows.values())) == "101"


def test_a_source_beyond_the_threshold_deviates_and_one_within_does_not(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    assert DEVIATION_THRESHOLD == 0.05
    for source, price in (
        ("coingecko", "100"),
        ("coinpaprika", "100"),
        ("coincap", "105.01"),  # 5.01% above
        ("csv", "95.01"),  # 4.99% below
        ("other", "95"),  # exactly 5%: does not exceed the threshold
    ):
        add_quote(warehouse, source, price)
    rows = by_source(prices_of(warehouse, "btc-bitcoin"))
    assert consensus_of(list(rows.values())) == "100"
    assert {source for source, row in rows.items() if row.deviates} == {"coincap"}
    assert rows["coincap"].deviation == pytest.approx(0.0501)
    assert rows["csv"].deviation == pytest.approx(-0.0499)
    assert not any(row.stale for row in rows.values())


def test_a_source_a_day_behind_the_newest_is_stale_not_deviating(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    assert STALE_AFTER.total_seconds() == 24 * 3600
    add_quote(warehouse, "coingecko", "100")
    add_quote(warehouse, "coinpaprika", "100", observed_at=NOW - timedelta(hours=23, minutes=59))
    add_quote(warehouse, "coincap", "100", observed_at=NOW - timedelta(hours=24, minutes=1))
    rows = by_source(prices_of(warehouse, "btc-bitcoin"))
    assert {source for source, row in rows.items() if row.stale} == {"coincap"}
    assert not any(row.deviates for row in rows.values())
    # A stale price still counts towards the consensus; the flag says to distrust it.
    assert {row.sources for row in rows.values()} == {3}


def test_history_rows_never_count(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_quote(warehouse, "coingecko", "100", observed_at=NOW - timedelta(hours=30))
    add_quote(warehouse, "coinpaprika", "100", observed_at=NOW - timedelta(hours=30))
    # Newer than every snapshot and far off: would move the median, flag, and make the
    # snapshots look stale if it counted.
    add_quote(warehouse, "coingecko", "500", kind="history")
    add_quote(warehouse, "csv", "900", kind="history")
    rows = by_source(prices_of(warehouse, "btc-bitcoin"))
    assert set(rows) == {"coingecko", "coinpaprika"}
    assert rows["coingecko"].price_usd == "100"
    assert consensus_of(list(rows.values())) == "100"
    assert not any(row.stale or row.deviates for row in rows.values())

    add_quote(warehouse, "csv", "7", coin_id="ftc-feathercoin", kind="history")
    assert prices_of(warehouse, "ftc-feathercoin") == []


def test_a_single_source_is_the_consensus_with_nothing_flagged(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    add_quote(warehouse, "coinpaprika", "0.000000001258")
    (row,) = prices_of(warehouse, "btc-bitcoin")
    assert row.sources == 1
    assert row.consensus_price_usd == row.price_usd == "0.000000001258"
    assert row.spread == 0
    assert row.deviation == 0
    assert not row.deviates
    assert not row.stale


def test_consensus_is_per_coin(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_quote(warehouse, "coingecko", "100")
    add_quote(warehouse, "coingecko", "3000", coin_id="eth-ethereum")
    assert consensus_of(prices_of(warehouse, "btc-bitcoin")) == "100"
    assert consensus_of(prices_of(warehouse, "eth-ethereum")) == "3000"
    assert prices_of(warehouse, "no-such-coin") == []


def test_a_file_without_the_view_says_to_publish_a_new_snapshot(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    warehouse.execute("drop view coin_prices_latest")
    with pytest.raises(StoreError, match=r"no coin_prices_latest view .* run `kasparro ingest`"):
        prices_of(warehouse, "btc-bitcoin")


def test_the_view_keeps_prices_as_exact_decimals(warehouse: duckdb.DuckDBPyConnection) -> None:
    add_quote(warehouse, "coingecko", "66765.984733995988814300")
    add_quote(warehouse, "coinpaprika", "66765.984733995988814301")
    price, consensus = warehouse.execute(
        "select price_usd, consensus_price_usd from coin_prices_latest where source = 'coingecko'"
    ).fetchall()[0]
    assert price == Decimal("66765.984733995988814300")
    # The mean of the two middle prices, rounded half away from zero to 18 places.
    assert consensus == Decimal("66765.984733995988814301")
