"""Loading the demo: the same coins and links whatever order sources arrive or fail in."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.resolution import read_overrides
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
