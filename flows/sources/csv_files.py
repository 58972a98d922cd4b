"""Legacy CSV files: daily history, one row per asset per day (not snapshots).

Two layouts are recognised by their header:

* ``daily_history``, the widespread dataset layout
  ``SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap``: the close is the price and
  ``Date`` (no zone) is read as UTC. It has no asset id, so the id is ``SYMBOL:Name``: a symbol
  alone would merge distinct assets.
* ``canonical``, Kasparro's own layout: ``asset_id,symbol,name,observed_at,price_usd`` plus any of
  ``market_cap_usd,volume_24h_usd,pct_change_24h,circulating_supply,total_supply,max_supply,rank``.

Commas or semicolons separate fields. Numbers are read exactly (exponents included); anything
ambiguous (``14.748.800.659``, two-digit years) is quarantined with a reason, never guessed.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from flows.errors import TerminalSourceError
from flows.sources.spec import SourceSpec

SOURCE_NAME = "csv"
_LINE_END = re.compile(r"\r\n|\r|\n")

DAILY_HISTORY = SourceSpec(
    name=SOURCE_NAME,
    title="Legacy CSV (daily history)",
    natural_key=("Symbol", "Name", "Date"),
    checkpoint_field="file sha256",
    columns={
        "source_asset_id": "asset_id",
        "symbol": "Symbol",
        "name": "Name",
        "price_usd": "Close",
        "market_cap_usd": "Marketcap",
        "volume_24h_usd": "Volume",
        "observed_at": "Date",
    },
    time_format="csv_datetime",
    record_format="csv",
)
DAILY_HISTORY_HEADER = ("SNo", "Name", "Symbol", "Date", "High", "Low", "Open", "Close",
                        "Volume", "Marketcap")  # fmt: skip

CANONICAL_REQUIRED = ("asset_id", "symbol", "name", "observed_at", "price_usd")
CANONICAL_OPTIONAL = ("market_cap_usd", "volume_24h_usd", "pct_change_24h", "circulating_supply",
                      "total_supply", "max_supply", "rank")  # fmt: skip
CANONICAL = SourceSpec(
    name=SOURCE_NAME,
    title="Legacy CSV (canonical layout)",
    natural_key=("asset_id", "observed_at"),
    checkpoint_field="file sha256",
    columns={
        "source_asset_id": "asset_id",
        **{field: field for field in CANONICAL_REQUIRED[1:] + CANONICAL_OPTIONAL},
    },
    time_format="csv_datetime",
    record_format="csv",
)

LAYOUTS = {"daily_history": DAILY_HISTORY, "canonical": CANONICAL}


@dataclass(frozen=True)
class CsvFile:
    """One CSV file as read from disk, split into physical lines."""

    path: Path
    sha256: str
    layout: str
    delimiter: str
    header: str
    lines: list[str]
    """Data lines; ``lines[i]`` is line ``i + 2`` of the file (line 1 is the header)."""


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def layout_of(header: str, path: Path) -> str:
    columns = tuple(next(csv.reader([header], delimiter=_delimiter(header))))
    columns = tuple(c.strip() for c in columns)
    if columns == DAILY_HISTORY_HEADER:
        return "daily_history"
    if set(CANONICAL_REQUIRED) <= set(columns):
        return "canonical"
    raise TerminalSourceError(
        SOURCE_NAME,
        f"{path.name}: unrecognised header {list(columns)}; expected the daily-history layout "
        f"{list(DAILY_HISTORY_HEADER)} or the canonical layout (at least "
        f"{list(CANONICAL_REQUIRED)}); see the README's CSV section",
        url=str(path),
    )


def read_csv_file(path: Path) -> CsvFile:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TerminalSourceError(
            SOURCE_NAME, f"{path.name} is not UTF-8 ({exc}); re-save it as UTF-8", url=str(path)
        ) from exc
    # Only CR/LF end a line: str.splitlines would also split on U+2028, form feeds and the like
    # inside a name, cutting a record in two and shifting every later line number.
    lines = _LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise TerminalSourceError(SOURCE_NAME, f"{path.name} is empty", url=str(path))
    header = lines[0]
    return CsvFile(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        layout=layout_of(header, path),
        delimiter=_delimiter(header),
        header=header,
        lines=lines[1:],
    )


def list_csv_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".csv" and p.is_file())


def header_columns(header: str) -> list[str]:
    return [c.strip() for c in next(csv.reader([header], delimiter=_delimiter(header)))]


def tokenize(header: str, lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """Split data lines into fields (C-speed ``csv``); typing happens later, in polars."""
    delimiter = _delimiter(header)
    return header_columns(header), list(csv.reader(lines, delimiter=delimiter))
