"""Loading the demo: the same coins and links whatever order sources arrive or fail in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from flows.resolution import read_overrides
from store import runs
from store.connection import open_read_only
from tests.conftest import REPO
from tests.helpers import assert_no_duplicates, ingest_without_prefect

ALL = ("coingecko", "coinpaprika", "coincap", "csv")
OVERRIDES = REPO / "data" / "asset_overrides.csv"
Identity = tuple[list[tuple[object, ...]], list[tuple[object, ...]]]


@pytest.fixture(scope="module")
def demo() -> Path:
    return REPO / "data" / "demo"


def identity(data_dir: Path) -> Identity:
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        assert_no_duplicates(con)
        coins = con.execute(
            "select coin_id, symbol, name, first_seen_at from coins order by coin_id"
        ).fetchall()
        links = con.execute(
            "select source, source_asset_id, coin_id from coin_source_ids order by all"
        ).fetchall()
        return coins, links
    finally:
        con.close()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, demo: Path) -> Identity:
    data_dir = tmp_path_factory.mktemp("clean") / "data"
    ingest_without_prefect(demo, data_dir, run_id="clean", overrides=read_overrides(OVERRIDES))
    return identity(data_dir)


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param([ALL[::-1]], id="reversed-source-order"),
        pytest.param([("coinpaprika", "coincap", "csv"), ALL], id="coingecko-failed-first"),
        pytest.param(
            [("csv",), ("coincap",), ("coinpaprika",), ("coingecko",)], id="one-source-per-run"
        ),
    ],
)
def test_coins_and_links_do_not_depend_on_load_order(
    tmp_path: Path,
    demo: Path,
    clean: Identity,
    runs: list[tuple[str, ...]],
) -> None:
    data_dir = tmp_path / "data"
    for i, sources in enumerate(runs):
        ingest_without_prefect(
            demo, data_dir, run_id=f"run-{i}", sources=sources, overrides=read_overrides(OVERRIDES)
        )
    coins, links = identity(data_dir)
    assert len(coins) == len(clean[0])
    assert coins == clean[0]
    assert links == clean[1]


def test_the_demo_resolves_renamed_and_colliding_assets(
    clean: Identity,
) -> None:
    coins, links = clean
    coin_of = {(source, asset): coin for source, asset, coin in links}
    assert coin_of[("coingecko", "binancecoin")] == coin_of[("coinpaprika", "bnb-binance-coin")]
    assert coin_of[("coingecko", "havven")] == coin_of[("coinpaprika", "hav-havven")]
    assert coin_of[("coinpaprika", "hav-havven")] == coin_of[("coincap", "synthetix-network-token")]
    assert coin_of[("coingecko", "uniswap")] != coin_of[("coingecko", "universe-token")]
    assert coin_of[("coincap", "cardano")] == coin_of[("coingecko", "cardano")], "zero-width space"
    assert coin_of[("coinpaprika", "doge-dogecoin")] == coin_of[("csv", "DOGE:Dogecoin")], "NBSP"
    names = {coin: name for coin, _, name, _ in coins}
    assert names["btc-bitcoin"] == "Bitcoin"


def csv_run(replay: Path, data_dir: Path, run_id: str) -> runs.SourceResult:
    return ingest_without_prefect(replay, data_dir, run_id=run_id, sources=("csv",))["csv"]


HEADER = "asset_id,symbol,name,observed_at,price_usd\n"


def test_csv_files_load_incrementally(tmp_path: Path) -> None:
    replay, data_dir = tmp_path / "replay", tmp_path / "data"
    (replay / "csv").mkdir(parents=True)
    prices = replay / "csv" / "prices.csv"
    prices.write_text(
        HEADER + "btc,BTC,Bitcoin,2026-11-01,70000\nbtc,BTC,Bitcoin,2026-11-02,71000\n"
    )
    first = csv_run(replay, data_dir, "run-1")
    assert (first.fetched, first.inserted) == (2, 2)

    same = csv_run(replay, data_dir, "run-2")
    assert (same.fetched, same.inserted, same.updated) == (0, 0, 0), "same sha256: skipped"

    with prices.open("a") as handle:
        handle.write("btc,BTC,Bitcoin,2026-11-03,72000\n")
    grown = csv_run(replay, data_dir, "run-3")
    assert (grown.fetched, grown.inserted, grown.updated) == (1, 1, 0), "only the new line"
    assert grown.warnings == []

    prices.write_text(prices.read_text().replace("71000", "71500"))
    changed = csv_run(replay, data_dir, "run-4")
    assert (changed.fetched, changed.inserted, changed.updated) == (3, 0, 1)
    assert "prices.csv changed since it was loaded" in changed.warnings[0]

    con = open_read_only(data_dir / "serving.duckdb")
    try:
        lines = con.execute(
            "select raw_record, price_usd::varchar from quotes order by observed_at"
        ).fetchall()
        assert [price for _, price in lines] == [
            "70000.000000000000000000",
            "71500.000000000000000000",
            "72000.000000000000000000",
        ]
        warnings = con.execute(
            "select warnings from run_sources where run_id = 'run-4'"
        ).fetchall()[0][0]
        assert "changed since it was loaded" in warnings[0]
    finally:
        con.close()


def test_a_snapshot_record_not_newer_than_the_stored_one_is_written_nowhere(
    tmp_path: Path, demo: Path
) -> None:
    replay, data_dir = tmp_path / "replay", tmp_path / "data"
    shutil.copytree(demo / "coinpaprika", replay / "coinpaprika")
    ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coinpaprika",))
    tickers_path = replay / "coinpaprika" / "tickers.json"
    tickers = json.loads(tickers_path.read_text())
    for ticker in tickers:
        if ticker["id"] == "btc-bitcoin":
            ticker["quotes"]["USD"]["price"] = 1.0  # a correction without a newer last_updated
    tickers_path.write_text(json.dumps(tickers))

    result = ingest_without_prefect(replay, data_dir, run_id="run-2", sources=("coinpaprika",))[
        "coinpaprika"
    ]
    assert (result.inserted, result.updated) == (0, 0)
    assert result.unchanged == result.valid
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        price = con.execute(
            "select price_usd from quotes where source_asset_id = 'btc-bitcoin'"
        ).fetchall()
        assert price[0][0] != 1
        assert con.execute("select count(*) from quotes where run_id = 'run-2'").fetchall() == [
            (0,)
        ]
    finally:
        con.close()


def test_a_malformed_contract_listing_is_a_ledger_warning_and_the_quotes_still_load(
    demo: Path, tmp_path: Path
) -> None:
    """A listing of another shape costs only its evidence: the source loads, the run ledger
    (``run_sources.warnings``) says so, and the payload stays in the raw zone."""
    replay = tmp_path / "replay"
    shutil.copytree(demo / "coingecko", replay / "coingecko")
    body = b'{"status": {"error_code": 10002, "error_message": "API Key Missing"}}'
    (replay / "coingecko" / "coins_list.json").write_bytes(body)
    data_dir = tmp_path / "data"

    results = ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coingecko",))

    assert results["coingecko"].status == "loaded"
    assert results["coingecko"].inserted > 0
    con = open_read_only(data_dir / "warehouse.duckdb")
    try:
        ((status, warnings),) = con.execute(
            "select status, warnings from run_sources where source = 'coingecko'"
        ).fetchall()
        quotes = con.execute("select count(*) from quotes").fetchone()
    finally:
        con.close()
    assert status == "loaded"
    (warning,) = warnings
    assert "contract listing unusable" in warning
    assert "coins_list.parquet" in warning
    assert quotes == (results["coingecko"].inserted,)
    (kept,) = (data_dir / "raw").glob("source=coingecko/date=*/run=run-1/coins_list.parquet")
    assert pl.read_parquet(kept)["envelope"].to_list() == [body.decode()]
