"""Transforming raw files in batches: a large CSV file is staged a slice at a time, with the
same result as in one batch."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from flows import raw_zone
from flows.sources.csv_files import inspect_csv_file
from flows.transform import transform_raw_files

HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"


def daily_lines(days: int) -> list[str]:
    """Two assets, ``days`` days each, with the traps batches must not change: float noise, a
    bad date, identical and conflicting duplicates far apart in the file."""
    lines = []
    for asset in ("NEM", "XRP"):
        for day in range(days):
            when = date(2020, 1, 1) + timedelta(days=day)
            noisy = repr(struct.unpack("f", struct.pack("f", 0.0002 + day * 1e-7))[0])
            close = noisy if day % 3 else f"1.{day}"
            lines.append(f"{day},{asset},{asset},{when} 23:59:59,1,1,1,{close},0.0,1000")
    lines[5] = lines[5].replace("2020-01-06", "20-01-06")
    lines.append(lines[7])  # an identical copy, in another batch
    lines.append(lines[8].replace(",0.0,1000", ",1.0,1000"))  # a conflicting one
    return lines


def write_raw(tmp_path: Path, lines: list[str]) -> tuple[Path, list[str]]:
    source = tmp_path / "daily.csv"
    source.write_text("\n".join([HEADER, *lines, ""]))
    raw_root = tmp_path / "raw"
    written = raw_zone.write_csv(raw_root, "run-1", datetime.now(UTC), inspect_csv_file(source))
    return raw_root, [written.relative]


def test_a_csv_file_larger_than_a_batch_is_read_in_slices(tmp_path: Path) -> None:
    raw_root, files = write_raw(tmp_path, daily_lines(150))

    batches = list(raw_zone.read_raw_batches(raw_root, files, rows=100))

    assert [b.height for b in batches] == [100, 100, 100, 2]
    whole = pl.concat(batches)
    assert whole["record_index"].to_list() == list(range(2, 304)), "every line once, in order"


def test_a_file_transformed_in_several_batches_gives_what_one_batch_gives(tmp_path: Path) -> None:
    raw_root, files = write_raw(tmp_path, daily_lines(150))

    sliced = transform_raw_files(raw_root, files, batch_rows=100)
    whole = transform_raw_files(raw_root, files, batch_rows=1_000_000)

    # 300 days: one with a bad date, one delivered again with other values (neither loads).
    assert sliced.quotes.height == 300 - 1 - 1
    assert_frame_equal(sliced.quotes, whole.quotes)
    assert_frame_equal(sliced.quarantine, whole.quarantine)
    assert sorted(sliced.quarantine["reason"].to_list()) == [
        "duplicate_conflict",
        "duplicate_conflict",
        "observed_at_implausible",
    ]
    assert (sliced.duplicates, sliced.rounded) == (whole.duplicates, whole.rounded) == (1, 198)
    assert sliced.verdicts_until == whole.verdicts_until


def test_api_pages_are_read_whole_beside_csv_slices(tmp_path: Path) -> None:
    raw_root, files = write_raw(tmp_path, daily_lines(10))
    page = raw_root / "source=coingecko" / "date=2026-11-24" / "run=run-1" / "p.parquet"
    page.parent.mkdir(parents=True)
    pl.read_parquet(raw_root / files[0]).with_columns(source=pl.lit("coingecko")).write_parquet(
        page
    )

    batches = list(
        raw_zone.read_raw_batches(raw_root, [files[0], str(page.relative_to(raw_root))], rows=5)
    )

    assert batches[0]["source"].unique().to_list() == ["coingecko"]
    assert batches[0].height == 22, "a page is never sliced"
    assert [b.height for b in batches[1:]] == [5, 5, 5, 5, 2]
