"""The csv source end to end (extract, transform, load): blank lines, real daily histories."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import runs
from store.connection import open_read_only
from tests.helpers import ingest_without_prefect

HEADER = "asset_id,symbol,name,observed_at,price_usd\n"


def csv_run(replay: Path, data_dir: Path, run_id: str) -> runs.SourceResult:
    return ingest_without_prefect(replay, data_dir, run_id=run_id, sources=("csv",))["csv"]


def quote_count(data_dir: Path) -> int:
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        return int(con.execute("select count(*) from quotes").fetchall()[0][0])
    finally:
        con.close()


@pytest.mark.parametrize(
    "appended", ["\n", "\n\n", "\r\n", "  \n"], ids=["lf", "two", "crlf", "spaces"]
)
def test_a_blank_line_appended_to_a_loaded_file_does_not_break_later_runs(
    appended: str, tmp_path: Path
) -> None:
    replay, data_dir = tmp_path / "replay", tmp_path / "data"
    (replay / "csv").mkdir(parents=True)
    prices = replay / "csv" / "prices.csv"
    prices.write_text(HEADER + "btc,BTC,Bitcoin,2026-11-01,70000\n")
    assert csv_run(replay, data_dir, "run-1").inserted == 1

    with prices.open("a", newline="") as handle:
        handle.write(appended)
    grown = csv_run(replay, data_dir, "run-2")
    assert (grown.status, grown.error) == ("loaded", None)
    assert (grown.valid, grown.quarantined, grown.inserted) == (0, 0, 0), "a blank line is no row"

    with prices.open("a") as handle:
        handle.write("btc,BTC,Bitcoin,2026-11-02,71000\n")
    later = csv_run(replay, data_dir, "run-3")
    assert (later.status, later.inserted) == ("loaded", 1)
    assert quote_count(data_dir) == 2


def test_a_file_whose_data_lines_are_all_blank_loads_nothing_and_fails_nothing(
    tmp_path: Path,
) -> None:
    replay, data_dir = tmp_path / "replay", tmp_path / "data"
    (replay / "csv").mkdir(parents=True)
    (replay / "csv" / "blank.csv").write_text(HEADER + "\n\n \n")

    result = csv_run(replay, data_dir, "run-1")

    assert (result.status, result.error) == ("loaded", None)
    assert (result.fetched, result.valid, result.quarantined) == (3, 0, 0)

    (replay / "csv" / "prices.csv").write_text(HEADER + "eth,ETH,Ether,2026-11-01,3000\n")
    later = csv_run(replay, data_dir, "run-2")
    assert (later.status, later.inserted) == ("loaded", 1)
