"""The market lookup resolution relies on, against a real warehouse: the candidate coin's quote
nearest in time, from another source, chosen the same way whatever order rows were stored in."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from store.connection import open_warehouse
from store.resolution import MARKET_LOOKUP, evidence, nearest_quotes

T0 = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_warehouse(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


def store(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, datetime, float]]) -> None:
    for coin, source, at, price in rows:
        con.execute(
            "insert into quotes (coin_id, source, observed_at, kind, source_asset_id, symbol, "
            "name, price_usd, run_id, raw_file, raw_record) "
            "values (?, ?, ?, 'history', ?, 'X', 'X', ?, 'r1', 'f', 0)",
            [coin, source, at, coin, price],
        )


def ask(con: duckdb.DuckDBPyConnection, source: str, coin: str, at: datetime) -> list[object]:
    pairs = pl.DataFrame([(source, "asset", coin, at)], schema=MARKET_LOOKUP, orient="row")
    return nearest_quotes(con, pairs).select("quote_source", "observed_at", "price_usd").rows()


@pytest.mark.parametrize("seed", range(5))
def test_of_quotes_equally_near_the_first_source_wins_whatever_the_storage_order(
    con: duckdb.DuckDBPyConnection, seed: int
) -> None:
    rows = [
        ("btc", "coingecko", T0, 100.0),
        ("btc", "coincap", T0, 130.0),
        ("btc", "coincap", T0 - timedelta(days=2), 90.0),
    ]
    random.Random(seed).shuffle(rows)
    store(con, rows)
    assert ask(con, "csv", "btc", T0 + timedelta(hours=1)) == [("coincap", T0, 130.0)]


def test_the_asking_source_and_quotes_beyond_the_window_are_no_evidence(
    con: duckdb.DuckDBPyConnection,
) -> None:
    store(
        con,
        [
            ("btc", "csv", T0, 1.0),  # the asking source's own quote
            ("btc", "coingecko", T0 - timedelta(days=3), 100.0),
            ("eth", "coingecko", T0 - timedelta(days=30), 3000.0),
        ],
    )
    assert ask(con, "csv", "btc", T0) == [("coingecko", T0 - timedelta(days=3), 100.0)]
    assert ask(con, "csv", "eth", T0) == []


def test_pairs_asked_in_several_queries_find_what_one_query_finds(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first load asks for hundreds of thousands of pairs: one query for all of them ran out
    # of a 64 MiB limit, so they are asked a slice at a time, by coin.
    rng = random.Random(7)
    coins = [f"coin-{i}" for i in range(40)]
    stored = [
        (coin, rng.choice(["coingecko", "coincap"]), T0 + timedelta(hours=rng.randrange(-200, 200)))
        for coin in rng.choices(coins, k=400)
    ]
    store(con, [(coin, source, at, float(i)) for i, (coin, source, at) in enumerate(stored)])
    pairs = pl.DataFrame(
        [
            (source, f"{source}-{coin}-{k}", coin, T0 + timedelta(hours=rng.randrange(-300, 300)))
            for source in ("csv", "coinpaprika", "coincap")
            for coin in coins
            for k in range(3)
        ],
        schema=MARKET_LOOKUP,
        orient="row",
    )
    whole = nearest_quotes(con, pairs)
    monkeypatch.setattr(evidence, "PAIRS_PER_QUERY", 7)
    sliced = nearest_quotes(con, pairs.sample(fraction=1.0, shuffle=True, seed=3))
    assert whole.height > 200
    order = ["source", "source_asset_id", "coin_id"]
    assert sliced.sort(order).equals(whole.sort(order))
