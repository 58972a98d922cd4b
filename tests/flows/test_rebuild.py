"""`kasparro rebuild --from-raw` re-derives the same warehouse from the raw zone, or applies
changed resolution rules to all of history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flows.rebuild import raw_batches, rebuild_from_raw
from flows.resolution import Override, read_overrides
from flows.settings import get_ingest_settings
from kasparro.cli import main
from store.connection import open_read_only
from store.resolution import RESOLVER
from store.settings import get_store_settings
from tests.conftest import REPO
from tests.helpers import (
    assert_no_duplicates,
    checksums,
    ingest_without_prefect,
    snapshot_checksums,
)

OVERRIDES = REPO / "data" / "asset_overrides.csv"


def later_capture(demo: Path, tmp: Path) -> Path:
    replay = tmp / "later"
    shutil.copytree(demo / "coinpaprika", replay / "coinpaprika")
    path = replay / "coinpaprika" / "tickers.json"
    tickers = json.loads(path.read_text())
    for ticker in tickers:
        ticker["last_updated"] = "2026-11-24T13:00:00Z"
        ticker["quotes"]["USD"]["price"] *= 1.01
    path.write_text(json.dumps(tickers))
    return replay


def snapshot(data_dir: Path) -> tuple[dict[str, str], list[tuple[object, ...]]]:
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        assert_no_duplicates(con)
        ledger = con.execute("select run_id, status from runs order by run_id").fetchall()
        return checksums(con), ledger
    finally:
        con.close()


@pytest.fixture
def history(tmp_path: Path, demo_dir: Path) -> Path:
    """Three runs: the demo, the demo again (nothing new), and a later CoinPaprika capture."""
    data_dir = tmp_path / "data"
    overrides = read_overrides(OVERRIDES)
    ingest_without_prefect(
        demo_dir, data_dir, run_id="20261124T120000Z-aaaaaa", overrides=overrides
    )
    ingest_without_prefect(
        demo_dir, data_dir, run_id="20261124T121000Z-bbbbbb", overrides=overrides
    )
    ingest_without_prefect(
        later_capture(demo_dir, tmp_path),
        data_dir,
        run_id="20261124T130000Z-cccccc",
        sources=("coinpaprika",),
        overrides=overrides,
    )
    return data_dir


@pytest.mark.parametrize("rows_per_chunk", [1_000_000, 300])
def test_rebuilding_from_the_raw_zone_gives_the_same_warehouse(
    history: Path, rows_per_chunk: int
) -> None:
    before = snapshot(history)
    whole = snapshot_checksums(history, lineage=True)
    batches = raw_batches(history / "raw")
    assert [(b.run_id[-6:], b.source) for b in batches][:4] == [
        ("aaaaaa", "coingecko"),
        ("aaaaaa", "coinpaprika"),
        ("aaaaaa", "coincap"),
        ("aaaaaa", "csv"),
    ]
    rebuild_from_raw(history, read_overrides(OVERRIDES), rows_per_chunk=rows_per_chunk)
    assert snapshot(history) == before
    assert snapshot_checksums(history, lineage=True) == whole, "lineage and ledger included"
    assert (history / "warehouse.duckdb.bak").exists()
    assert not (history / "warehouse.rebuild.duckdb").exists()


def test_a_rebuild_applies_changed_resolution_rules_to_all_history(history: Path) -> None:
    # Today's rule: CoinPaprika's Binance Coin is a coin of its own (the same contract would
    # otherwise put it with BNB).
    split = {("coinpaprika", "bnb-binance-coin"): Override("bnb-binance-coin", "split", 2)}
    rebuild_from_raw(history, overrides=split)
    con = open_read_only(history / "serving.duckdb")
    try:
        coin = con.execute(
            "select coin_id from coin_source_ids where source_asset_id = 'bnb-binance-coin'"
        ).fetchall()[0][0]
        assert coin == "bnb-binance-coin", "with the new override, Binance Coin is its own coin"
        moved = con.execute(
            "select count(distinct observed_at) from quotes where coin_id = 'bnb-binance-coin'"
        ).fetchall()[0][0]
        assert moved == 2, "both of its CoinPaprika observations moved with it"
    finally:
        con.close()


def test_the_command_line_rebuilds_and_republishes(
    history: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KASPARRO_DATA_DIR", str(history))
    monkeypatch.setenv("KASPARRO_OVERRIDES_FILE", str(OVERRIDES))
    get_store_settings.cache_clear()
    try:
        before = snapshot(history)
        (history / "serving.duckdb").unlink()
        assert main(["rebuild"]) == 0
        assert snapshot(history) == before
        assert main(["rebuild", "--from-raw"]) == 0
        assert snapshot(history) == before
        assert "rebuilt" in capsys.readouterr().out
    finally:
        get_store_settings.cache_clear()


def test_a_configured_crosswalk_decides_before_contracts_and_names(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crosswalk = tmp_path / "crosswalk.csv"
    crosswalk.write_text("coingecko,coinpaprika\nbinancecoin,bnb-binance-coin\n")
    monkeypatch.setenv("KASPARRO_DATA_DIR", str(history))
    monkeypatch.setenv("KASPARRO_OVERRIDES_FILE", str(tmp_path / "no-overrides.csv"))
    monkeypatch.setenv("KASPARRO_CROSSWALK_FILE", str(crosswalk))
    get_store_settings.cache_clear()
    get_ingest_settings.cache_clear()
    try:
        assert main(["rebuild", "--from-raw"]) == 0
    finally:
        get_store_settings.cache_clear()
        get_ingest_settings.cache_clear()
    con = open_read_only(history / "serving.duckdb")
    try:
        linked = con.execute(
            "select coin_id, method, confidence from coin_source_ids "
            "where source = 'coinpaprika' and source_asset_id = 'bnb-binance-coin'"
        ).fetchall()
    finally:
        con.close()
    assert linked == [("bnb-bnb", "crosswalk", 0.98)]


@pytest.mark.slow
def test_a_rebuild_reproduces_the_resolvers_merges_and_their_aliases(
    tmp_path: Path, demo_dir: Path
) -> None:
    """A CSV history of Wrapped BTC from a year before CoinGecko's capture waits in review
    (similar names, no market near in time); the file grows by a row of the capture's day, the
    market corroborates, and the resolver merges it (its decision, the old coin id an alias).
    A rebuild replays the runs and reaches the same warehouse, the merge included."""
    data_dir, replay = tmp_path / "data", tmp_path / "replay"
    (replay / "csv").mkdir(parents=True)
    prices = replay / "csv" / "wrapped.csv"
    prices.write_text(
        "asset_id,symbol,name,observed_at,price_usd,market_cap_usd\n"
        "asset-17,WBTC,Wrapped BTC,2025-10-20,70000,9000000000\n"
    )
    ingest_without_prefect(demo_dir, data_dir, run_id="20261124T120000Z-aaaaaa",
                           sources=("coingecko",))  # fmt: skip
    ingest_without_prefect(replay, data_dir, run_id="20261124T121000Z-bbbbbb",
                           sources=("csv",))  # fmt: skip
    with prices.open("a") as handle:
        handle.write("asset-17,WBTC,Wrapped BTC,2026-11-24T12:00:00Z,91349.8,11730416772\n")
    ingest_without_prefect(replay, data_dir, run_id="20261124T130000Z-cccccc",
                           sources=("csv",))  # fmt: skip
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        merges = con.execute(
            "select count(*) from resolution_decisions where decided_by = ?", [RESOLVER]
        ).fetchall()[0][0]
        aliases = con.execute("select count(*) from coin_aliases").fetchall()[0][0]
    finally:
        con.close()
    assert (merges, aliases) == (1, 1), "the later row must let the resolver merge the asset"
    whole = snapshot_checksums(data_dir, lineage=True)

    rebuild_from_raw(data_dir, {})

    assert snapshot_checksums(data_dir, lineage=True) == whole
