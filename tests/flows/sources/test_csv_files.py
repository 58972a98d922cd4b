"""Legacy CSV files: layout detection, encoding, and one data line per physical line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.errors import TerminalSourceError, TransientSourceError
from flows.sources import csv_files
from flows.sources.csv_files import (
    CANONICAL_REQUIRED,
    DAILY_HISTORY_HEADER,
    CsvProgress,
    inspect_csv_file,
    layout_of,
    list_csv_files,
    read_csv_file,
    split_lines,
    tokenize,
)

DAILY_HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"
DAILY_ROW = "1,Dogecoin,DOGE,2013-12-16 23:59:59,0.00086,0.00015,0.00029,9.8e-05,0.0,1509085.15965"
CANONICAL_HEADER = "asset_id,symbol,name,observed_at,price_usd"


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# --- layouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "layout"),
    [
        (DAILY_HEADER, "daily_history"),
        (DAILY_HEADER.replace(",", ";"), "daily_history"),
        (" SNo , Name , Symbol , Date , High , Low , Open , Close , Volume , Marketcap ",
         "daily_history"),
        (CANONICAL_HEADER, "canonical"),
        ("price_usd,observed_at,name,symbol,asset_id", "canonical"),
        (CANONICAL_HEADER + ",market_cap_usd,rank,source_note", "canonical"),
        (CANONICAL_HEADER.replace(",", ";"), "canonical"),
    ],
    ids=["daily", "daily-semicolon", "daily-padded", "canonical", "canonical-reordered",
         "canonical-extra-columns", "canonical-semicolon"],
)  # fmt: skip
def test_layout_is_recognised_from_the_header(header: str, layout: str, tmp_path: Path) -> None:
    assert layout_of(header, tmp_path / "prices.csv") == layout


@pytest.mark.parametrize(
    "header",
    [
        "date,coin,close",
        "asset_id,symbol,name,observed_at",  # canonical without price_usd
        "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume",  # daily history missing Marketcap
        "sno,name,symbol,date,high,low,open,close,volume,marketcap",  # wrong case
    ],
)
def test_unrecognised_header_is_terminal_naming_the_file_and_both_layouts(
    header: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "exports-2021.csv", f"{header}\n1,2,3\n".encode())

    with pytest.raises(TerminalSourceError) as caught:
        read_csv_file(path)

    message = str(caught.value)
    assert caught.value.source == "csv"
    assert "exports-2021.csv" in message
    assert "unrecognised header" in message
    assert str(list(DAILY_HISTORY_HEADER)) in message
    assert str(list(CANONICAL_REQUIRED)) in message


def test_daily_history_file_is_read_with_comma_delimiter(tmp_path: Path) -> None:
    content = f"{DAILY_HEADER}\n{DAILY_ROW}\n".encode()
    path = write(tmp_path, "doge.csv", content)

    file = read_csv_file(path)

    assert file.layout == "daily_history"
    assert file.delimiter == ","
    assert file.header == DAILY_HEADER
    assert file.read_lines().to_list() == [DAILY_ROW]
    assert file.sha256 == hashlib.sha256(content).hexdigest()


def test_semicolon_file_is_read_with_semicolon_delimiter(tmp_path: Path) -> None:
    header = CANONICAL_HEADER.replace(",", ";")
    row = "bitcoin;BTC;Bitcoin;2021-07-06;34235,19"  # decimal comma stays inside the field
    path = write(tmp_path, "eu.csv", f"{header}\n{row}\n".encode())

    file = read_csv_file(path)

    assert file.layout == "canonical"
    assert file.delimiter == ";"
    columns, rows = tokenize(file.header, file.read_lines())
    assert columns == ["asset_id", "symbol", "name", "observed_at", "price_usd"]
    assert rows == [["bitcoin", "BTC", "Bitcoin", "2021-07-06", "34235,19"]]


# --- encoding --------------------------------------------------------------------------------


def test_file_that_is_not_utf8_is_terminal_naming_the_file(tmp_path: Path) -> None:
    content = f"{CANONICAL_HEADER}\ncafe,CAFE,Caf\u00e9 Coin,2021-07-06,1.0\n".encode("latin-1")
    path = write(tmp_path, "latin1.csv", content)

    with pytest.raises(TerminalSourceError) as caught:
        read_csv_file(path)

    message = str(caught.value)
    assert "latin1.csv is not UTF-8" in message
    assert "re-save it as UTF-8" in message
    assert caught.value.url == str(path)


def test_byte_order_mark_is_stripped_from_the_header(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbf" + f"{DAILY_HEADER}\r\n{DAILY_ROW}\r\n".encode()
    path = write(tmp_path, "excel.csv", content)

    file = read_csv_file(path)

    assert file.layout == "daily_history"
    assert file.header == DAILY_HEADER
    assert not file.header.startswith("\ufeff")
    assert file.sha256 == hashlib.sha256(content).hexdigest()  # of the file as stored


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"], ids=["empty", "bom-only"])
def test_empty_file_is_terminal(content: bytes, tmp_path: Path) -> None:
    path = write(tmp_path, "empty.csv", content)

    with pytest.raises(TerminalSourceError, match=r"empty\.csv is empty"):
        read_csv_file(path)


# --- lines -----------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_data_lines_are_split_on_any_line_ending_without_a_trailing_empty_line(
    newline: str, tmp_path: Path
) -> None:
    rows = [DAILY_ROW, DAILY_ROW.replace("1,", "2,", 1)]
    path = write(tmp_path, "d.csv", newline.join([DAILY_HEADER, *rows, ""]).encode())

    assert read_csv_file(path).read_lines().to_list() == rows


def test_blank_lines_are_kept_so_lines_keep_their_file_line_numbers(tmp_path: Path) -> None:
    text = f"{CANONICAL_HEADER}\nbtc,BTC,Bitcoin,2021-07-05,1\n\neth,ETH,Ether,2021-07-05,2\n"
    path = write(tmp_path, "gap.csv", text.encode())

    lines = read_csv_file(path).read_lines().to_list()

    # lines[i] is line i + 2 of the file: "eth" is on line 4.
    assert lines[4 - 2].startswith("eth,")
    assert lines[1] == ""


def test_final_line_without_a_newline_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", f"{DAILY_HEADER}\n{DAILY_ROW}".encode())

    assert read_csv_file(path).read_lines().to_list() == [DAILY_ROW]


@pytest.mark.parametrize(
    "separator",
    ["\u2028", "\x85", "\x0c"],
    ids=["line-separator", "next-line", "form-feed"],
)
def test_unicode_line_separators_inside_a_field_do_not_split_the_record(
    separator: str, tmp_path: Path
) -> None:
    # Names carry unicode traps. Only CR and LF end a CSV line (as for the csv module, polars
    # and every editor line count); str.splitlines also breaks on these characters.
    row = f"odd,ODD,Odd{separator}Coin,2021-07-06,1.5"
    after = "btc,BTC,Bitcoin,2021-07-06,34235.19"
    path = write(tmp_path, "odd.csv", f"{CANONICAL_HEADER}\n{row}\n{after}\n".encode())

    file = read_csv_file(path)

    assert file.read_lines().to_list() == [row, after]
    _, rows = tokenize(file.header, file.read_lines())
    assert rows[0] == ["odd", "ODD", f"Odd{separator}Coin", "2021-07-06", "1.5"]


def test_tokenize_honours_quoted_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        f'{CANONICAL_HEADER}\nx,X,"Coin, the ""Original""",2021-07-06,1\n'.encode(),
    )
    file = read_csv_file(path)

    _, rows = tokenize(file.header, file.read_lines())

    assert rows == [["x", "X", 'Coin, the "Original"', "2021-07-06", "1"]]


# --- listing ---------------------------------------------------------------------------------


def test_list_csv_files_returns_only_csv_files_sorted(tmp_path: Path) -> None:
    for name in ["b.csv", "a.CSV", "notes.txt", "c.csv.bak"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir.csv").mkdir()

    assert [p.name for p in list_csv_files(tmp_path)] == ["a.CSV", "b.csv"]


def test_list_csv_files_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert list_csv_files(tmp_path / "missing") == []


# --- read in chunks --------------------------------------------------------------------------

_LINE_TEXT = st.text(alphabet=st.sampled_from(list("ab,é€😀 \u2028")), max_size=6)
_END = st.sampled_from(["\n", "\r\n", "\r"])


@given(
    lines=st.lists(st.tuples(_LINE_TEXT, _END), min_size=1, max_size=12),
    bom=st.booleans(),
    last_end=st.booleans(),
    chunk=st.integers(min_value=1, max_value=9),
    prefix=st.integers(min_value=0, max_value=200),
)
def test_a_file_read_in_chunks_reads_as_it_does_whole(
    lines: list[tuple[str, str]],
    bom: bool,
    last_end: bool,
    chunk: int,
    prefix: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Chunk boundaries fall inside CRLFs, inside multi-byte characters and inside the BOM:
    the lines, the sha256 and what tells a grown file are those of the whole bytes."""
    text = "asset_id,symbol,name,observed_at,price_usd\n" + "".join(t + e for t, e in lines)
    if not last_end:
        text = text.rstrip("\r\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    path = tmp_path_factory.mktemp("chunks") / "f.csv"
    path.write_bytes(data)
    prefix = min(prefix, len(data) - 1)
    whole = inspect_csv_file(path)
    loaded = CsvProgress(hashlib.sha256(data[:prefix]).hexdigest(), prefix, 0)
    with patch.object(csv_files, "READ_CHUNK", chunk):
        chunked = inspect_csv_file(path)
        grown = inspect_csv_file(path, loaded)

    assert chunked.read_lines().to_list() == split_lines(data.decode("utf-8-sig")).to_list()[1:]
    assert chunked.read_lines().to_list() == whole.read_lines().to_list()
    assert (chunked.sha256, chunked.progress) == (hashlib.sha256(data).hexdigest(), whole.progress)
    expected = "grown" if data[:prefix].endswith(b"\n") else "changed"
    assert grown.change == expected


def test_a_file_rewritten_between_inspection_and_reading_is_not_loaded_half_and_half(
    tmp_path: Path,
) -> None:
    """Its lines are read again when they are written to the raw zone: bytes that are no longer
    the ones inspected fail the source for this run (the next run reads the file anew)."""
    path = tmp_path / "prices.csv"
    path.write_text("asset_id,symbol,name,observed_at,price_usd\nbtc,BTC,Bitcoin,2026-11-01,1\n")
    file = inspect_csv_file(path)
    path.write_text("asset_id,symbol,name,observed_at,price_usd\nbtc,BTC,Bitcoin,2026-11-01,2\n")

    with pytest.raises(TransientSourceError, match="changed while it was read"):
        file.read_lines()
