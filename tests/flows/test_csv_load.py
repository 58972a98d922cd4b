"""The csv source end to end (extract, transform, load): blank lines, real daily histories."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path

import pytest

from bench import realcaptures
from bench.realcaptures import SHARED_ENV
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


# --- real files ------------------------------------------------------------------------------


def shared_dir() -> Path:
    """The real captures (../shared beside the clone, as in CI; or $KASPARRO_SHARED_DIR)."""
    path = realcaptures.shared_dir()
    if not (path / "realdata" / "csv").is_dir():
        pytest.skip(f"no real captures at {path}/realdata/csv: set {SHARED_ENV} to the shared dir")
    return path / "realdata" / "csv"


MONEY = ("Close", "Volume", "Marketcap")
ONE_E_20 = Decimal("1e20")


def _wide_round(value: Decimal) -> Decimal:
    wide = Context(prec=60)
    return value.quantize(Decimal("1e-18"), rounding=ROUND_HALF_EVEN, context=wide)


def clean_rows(path: Path, today: date) -> dict[tuple[str, str], dict[str, Decimal]]:
    """The file's clean rows by (asset id, day), read with the csv module and Decimal, apart
    from the pipeline. Clean: ten fields; ``Date`` is ``YYYY-MM-DD HH:MM:SS`` of a day after
    Bitcoin's genesis and before today; ``Close``, ``Volume`` and ``Marketcap`` are finite
    numbers below 1e20, ``Close`` positive, the others not negative; no other row of the same
    asset and date says otherwise."""
    rows: dict[tuple[str, str], dict[str, Decimal]] = {}
    conflicting: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line in csv.DictReader(handle):
            if None in line or None in line.values():
                continue
            try:
                when = datetime.strptime(line["Date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                values = {field: Decimal(line[field]) for field in MONEY}
            except (ValueError, ArithmeticError):
                continue
            if not date(2009, 1, 3) <= when.date() < today:
                continue
            if not all(v.is_finite() and abs(v) < ONE_E_20 for v in values.values()):
                continue
            if values["Close"] <= 0 or values["Volume"] < 0 or values["Marketcap"] < 0:
                continue
            key = (f"{line['Symbol']}:{line['Name']}", line["Date"])
            if rows.setdefault(key, values) != values:
                conflicting.add(key)
    return {key: values for key, values in rows.items() if key not in conflicting}


def test_every_clean_row_of_the_real_daily_history_files_loads(tmp_path: Path) -> None:
    """The 13 daily_history files of the Kaggle dataset (shared/realdata/csv). NEM, Stellar,
    Tron and XRP write prices as float32 values printed as doubles (0.00020473099721129984):
    1,236 of their rows were quarantined as not_representable."""
    files = sorted(shared_dir().glob("daily_history_*.csv"))
    assert len(files) == 13, [f.name for f in files]
    replay, data_dir = tmp_path / "replay", tmp_path / "data"
    (replay / "csv").mkdir(parents=True)
    for path in files:
        (replay / "csv" / path.name).symlink_to(path)

    result = csv_run(replay, data_dir, "run-1")

    clean = {}
    for path in files:
        clean.update(clean_rows(path, datetime.now(UTC).date()))
    noisy = sum(v != _wide_round(v) for values in clean.values() for v in values.values())
    assert (result.status, result.error) == ("loaded", None)
    assert result.fetched == 21_449
    assert (result.valid, result.inserted) == (len(clean), len(clean))
    assert result.quarantined == result.fetched - len(clean)
    assert noisy > 1_000, "the files hold float noise"
    assert result.rounded == noisy
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        stored = con.execute(
            "select source_asset_id, strftime(observed_at, '%Y-%m-%d %H:%M:%S'), price_usd, "
            "volume_24h_usd, market_cap_usd from quotes"
        ).fetchall()
        ledger = con.execute("select rounded from run_sources where run_id = 'run-1'").fetchall()
    finally:
        con.close()
    assert ledger == [(noisy,)]
    assert {
        (asset, day): {"Close": price, "Volume": volume, "Marketcap": cap}
        for asset, day, price, volume, cap in stored
    } == {key: {f: _wide_round(v) for f, v in values.items()} for key, values in clean.items()}


def test_the_excel_mangled_file_loads_no_row(tmp_path: Path) -> None:
    """The same dataset after an Excel round trip: dates in DD-MM-YYYY shifted by three years,
    values rounded. No date in it is read (day and month cannot be told apart): every row is
    quarantined with its reason, none is guessed."""
    path = shared_dir() / "excel_dateshifted_Dogecoin.csv"
    replay, data_dir = tmp_path / "replay", tmp_path / "data"
    (replay / "csv").mkdir(parents=True)
    (replay / "csv" / path.name).symlink_to(path)

    result = csv_run(replay, data_dir, "run-1")

    assert (result.fetched, result.valid, result.quarantined) == (2_760, 0, 2_760)
    con = open_read_only(data_dir / "serving.duckdb")
    try:
        reasons = con.execute("select reason, count(*) from quarantine group by all").fetchall()
    finally:
        con.close()
    assert reasons == [("bad_observed_at", 2_760)]
