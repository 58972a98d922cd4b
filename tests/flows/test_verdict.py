"""A source that delivered records but loaded none is failed; one whose valid share is below
the floor is degraded (flows.verdict), in the ledger row its load commits."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.connection import open_read_only
from tests.conftest import _clear_settings
from tests.drifted import drifted_coingecko, renamed, replaced
from tests.helpers import ingest_without_prefect


def quotes_of(data_dir: Path, source: str) -> int:
    con = open_read_only(data_dir / "warehouse.duckdb")
    try:
        return int(
            con.execute("select count(*) from quotes where source = ?", [source]).fetchall()[0][0]
        )
    finally:
        con.close()


def test_records_delivered_and_none_valid_fail_the_source_not_loaded(
    tmp_path: Path, data_dir: Path
) -> None:
    # Every price zero: the payload's shape is right (no drift), every record is quarantined.
    replay = drifted_coingecko(tmp_path / "replay", replaced("current_price", 0))
    result = ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coingecko",))[
        "coingecko"
    ]
    assert result.status == "failed"
    assert result.valid == 0
    assert result.quarantined > 0
    assert result.error is not None
    assert "none valid" in result.error
    assert "price_not_positive" in result.error
    assert quotes_of(data_dir, "coingecko") == 0
    con = open_read_only(data_dir / "warehouse.duckdb")
    try:
        row = con.execute("select status, error from run_sources").fetchall()
        assert row == [("failed", result.error)]
    finally:
        con.close()


def test_a_valid_share_below_the_floor_is_degraded_and_the_valid_rows_load(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_MIN_VALID_SHARE", "0.8")
    _clear_settings()
    replay = drifted_coingecko(tmp_path / "replay", renamed("current_price", "price", every=3))
    result = ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coingecko",))[
        "coingecko"
    ]
    assert result.status == "degraded"
    assert result.error is not None
    assert "below the floor 80%" in result.error
    assert result.valid > 0
    assert quotes_of(data_dir, "coingecko") == result.inserted == result.valid


def test_a_valid_share_at_the_floor_is_loaded(tmp_path: Path, data_dir: Path) -> None:
    # A third of the records quarantined is above the default floor (50%).
    replay = drifted_coingecko(tmp_path / "replay", renamed("current_price", "price", every=3))
    result = ingest_without_prefect(replay, data_dir, run_id="run-1", sources=("coingecko",))[
        "coingecko"
    ]
    assert result.status == "loaded"
    assert result.error is None
