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
    problem: str | None = None
    """Why the file cannot be loaded (not UTF-8, empty, unrecognised header); None if it can."""


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


UNREADABLE = "unreadable"
"""Layout recorded in the raw zone for a file that cannot be loaded (it is kept, not staged)."""


def _layout_problem(header: str, path: Path) -> tuple[str, str | None]:
    columns = tuple(c.strip() for c in next(csv.reader([header], delimiter=_delimiter(header)), []))
    if columns == DAILY_HISTORY_HEADER:
        return "daily_history", None
    if set(CANONICAL_REQUIRED) <= set(columns):
        return "canonical", None
    return UNREADABLE, (
        f"{path.name}: unrecognised header {list(columns)}; expected the daily-history layout "
        f"{list(DAILY_HISTORY_HEADER)} or the canonical layout (at least "
        f"{list(CANONICAL_REQUIRED)}); see the README's CSV section"
    )


def layout_of(header: str, path: Path) -> str:
    """The layout a header announces, or TerminalSourceError naming the file and the layouts."""
    layout, problem = _layout_problem(header, path)
    if problem:
        raise TerminalSourceError(SOURCE_NAME, problem, url=str(path))
    return layout


def inspect_csv_file(path: Path) -> CsvFile:
    """Read a CSV file into lines; a file that cannot be loaded says why in ``problem``."""
    data = path.read_bytes()
    problem = None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8-sig", errors="replace")
        problem = f"{path.name} is not UTF-8 ({exc}); re-save it as UTF-8"
    # Only CR/LF end a line: str.splitlines would also split on U+2028, form feeds and the like
    # inside a name, cutting a record in two and shifting every later line number.
    lines = _LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    header = lines[0] if lines else ""
    layout, header_problem = _layout_problem(header, path) if lines else (UNREADABLE, None)
    if not lines:
        problem = problem or f"{path.name} is empty"
    return CsvFile(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        layout=UNREADABLE if problem else layout,
        delimiter=_delimiter(header),
        header=header,
        lines=lines[1:],
        problem=problem or header_problem,
    )


def read_csv_file(path: Path) -> CsvFile:
    """A loadable CSV file, or TerminalSourceError naming the file and what to do."""
    file = inspect_csv_file(path)
    if file.problem:
        raise TerminalSourceError(SOURCE_NAME, file.problem, url=str(path))
    return file


def list_csv_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".csv" and p.is_file())


def header_columns(header: str) -> list[str]:
    return [c.strip() for c in next(csv.reader([header], delimiter=_delimiter(header)))]


def tokenize(header: str, lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """Split each physical line into fields (C-speed ``csv``); typing happens later, in polars.

    Lines are tokenized one by one: a stray quote must cost its own line (which then has the
    wrong number of fields), never swallow the lines after it.
    """
    delimiter = _delimiter(header)
    return header_columns(header), [
        next(csv.reader([line], delimiter=delimiter), []) for line in lines
    ]
