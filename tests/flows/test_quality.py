"""The quality checks each load runs (store.quality): stored per run, per source."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from store.connection import open_read_only
from tests.conftest import DEMO_DIR, REPO
from tests.drifted import Record, chained, drifted_coingecko, later
from tests.helpers import ingest_without_prefect

SHARED = Path(os.environ.get("KASPARRO_SHARED_DIR", REPO.parent / "shared"))
EUR_CAPTURE = SHARED / "realdata" / "coingecko" / "coins_markets_2025-03-04.json"


def findings(data_dir: Path, run_id: str, source: str) -> dict[str, list[tuple[object, ...]]]:
    """check name -> (severity, coin_id, observed, expected) of the run's findings."""
    con = open_read_only(data_dir / "warehouse.duckdb")
    try:
        rows = con.execute(
            "select check_name, severity, coin_id, observed, expected from quality_checks "
            "where run_id = ? and source = ? order by coin_id",
            [run_id, source],
        ).fetchall()
    finally:
        con.close()
    found: dict[str, list[tuple[object, ...]]] = {}
    for name, *rest in rows:
        found.setdefault(str(name), []).append(tuple(rest))
    return found


def test_the_real_eur_capture_is_flagged_as_another_currency(
    tmp_path: Path, data_dir: Path, overrides: None
) -> None:
    assert EUR_CAPTURE.is_file(), f"set KASPARRO_SHARED_DIR: {EUR_CAPTURE} is missing"
    replay = tmp_path / "replay"
    shutil.copytree(DEMO_DIR, replay)
    ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coinpaprika", "coincap"))
    markets = replay / "coingecko" / "coins_markets"
    shutil.rmtree(markets)
    markets.mkdir()
    shutil.copy(EUR_CAPTURE, markets / "page-0001.json")
    result = ingest_without_prefect(replay, data_dir, run_id="run-2", sources=("coingecko",))
    assert result["coingecko"].status == "loaded"
    found = findings(data_dir, "run-2", "coingecko")
    assert found["stablecoin_off_peg"] == [
        ("error", "usdc-usd-coin", "0.949885", "1"),
        ("error", "usdt-tether", "0.949312", "1"),
    ]
    tether = [f for f in found["consensus_deviation"] if f[1] == "usdt-tether"]
    assert tether, "USDT deviates from the USD sources' consensus"
    assert [f[0] for f in found["consensus_outlier_source"]] == ["error"]
    assert "coinpaprika" not in str(
        findings(data_dir, "run-1", "coinpaprika").get("stablecoin_off_peg")
    )


def test_checks_across_runs_and_per_field(tmp_path: Path, data_dir: Path, overrides: None) -> None:
    replay = drifted_coingecko(tmp_path / "replay", lambda n, r: r)
    ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coingecko",))
    assert "price_jump" not in findings(data_dir, "run-1", "coingecko")

    def change(number: int, record: Record) -> Record | None:
        if number % 3 and record["id"] not in {"bitcoin", "ethereum", "tether"}:
            return None  # two records in three of the others are gone
        if record["id"] == "bitcoin":
            record["current_price"] *= 3
            record["market_cap"] *= 3
        if record["id"] == "ethereum":
            record["market_cap"] *= 10
        if record["id"] == "tether":
            record["circulating_supply"] = 2 * (record["max_supply"] or 1e9)
            record["max_supply"] = record["max_supply"] or 1e9
        return record

    drifted_coingecko(tmp_path / "replay", chained(later(5), change))
    ingest_without_prefect(replay, data_dir, run_id="run-2", sources=("coingecko",))
    found = findings(data_dir, "run-2", "coingecko")
    assert [f[1] for f in found["price_jump"]] == ["btc-bitcoin"]
    # Tether's doubled supply no longer matches its market cap either.
    assert [f[1] for f in found["market_cap_mismatch"]] == ["eth-ethereum", "usdt-tether"]
    assert [f[1] for f in found["supply_above_max"]] == ["usdt-tether"]
    assert [f[0] for f in found["count_drop"]] == ["error"]
    gone = {f[1] for f in found["disappeared"]}
    assert "eth-ethereum" not in gone
    assert len(gone) > 50, "two in three of the top 100"


@pytest.fixture
def overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASPARRO_OVERRIDES_FILE", str(REPO / "data" / "asset_overrides.csv"))
