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

import codecs
import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import polars as pl

from flows.errors import TerminalSourceError, TransientSourceError
from flows.sources.spec import SourceSpec

SOURCE_NAME = "csv"
_LINE_END = re.compile(r"\r\n|\r|\n")

DAILY_HISTORY = SourceSpec(
    name=SOURCE_NAME,
    title="Legacy CSV (daily history)",
    id_style="symbol_colon_name",
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
    kind="history",
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
    kind="history",
)

LAYOUTS = {"daily_history": DAILY_HISTORY, "canonical": CANONICAL}


@dataclass(frozen=True)
class CsvFile:
    """One CSV file as inspected on disk: what it holds, and which of its lines are to load.
    The lines themselves are read again, a chunk at a time, when they are written to the raw
    zone (:meth:`chunks`): a large file is never held whole."""

    path: Path
    sha256: str
    layout: str
    delimiter: str
    header: str
    line_count: int
    """Data lines to load: lines ``first_line`` .. ``first_line + line_count - 1``."""
    problem: str | None = None
    """Why the file cannot be loaded (not UTF-8, empty, unrecognised header); None if it can."""
    first_line: int = 2
    """Line number of the first line to load (line 1 is the header; a grown file starts after
    the rows loaded before)."""
    progress: CsvProgress | None = None
    """The checkpoint to commit once the lines are loaded: the whole file as inspected."""
    change: Literal["new", "unchanged", "grown", "changed"] = "new"
    errors: Literal["strict", "replace"] = "strict"
    """How its bytes decode: a file that is not UTF-8 is kept with replacement characters."""

    def chunks(self) -> Iterator[pl.Series]:
        """The lines to load, a few MB at a time (String series named ``line``), read from the
        bytes as inspected. Raises :class:`~flows.errors.TransientSourceError` when the file
        changed on disk since (being written, say): the next run reads it again."""
        assert self.progress is not None
        skip, left = self.first_line - 1, self.line_count
        read = _Read(self.path, None, limit=self.progress.bytes)
        for lines in read.lines(self.errors):
            if skip >= len(lines):
                skip -= len(lines)
                continue
            taken = lines.slice(skip, left)
            skip, left = 0, left - len(taken)
            if len(taken):
                yield taken
        if read.sha256 != self.sha256:
            raise TransientSourceError(
                SOURCE_NAME,
                f"{self.path.name} changed while it was read; run again once it is written whole",
                url=str(self.path),
            )

    def read_lines(self) -> pl.Series:
        """Every line to load at once: for small files and tests."""
        return pl.concat([pl.Series("line", [], dtype=pl.String()), *self.chunks()])


@dataclass(frozen=True)
class CsvProgress:
    """How much of a CSV file is loaded: its sha256, size and data-line count at that moment."""

    sha256: str
    bytes: int
    lines: int

    def position(self) -> str:
        return json.dumps({"sha256": self.sha256, "bytes": self.bytes, "lines": self.lines})

    @classmethod
    def from_position(cls, position: str) -> CsvProgress:
        fields = json.loads(position)
        return cls(str(fields["sha256"]), int(fields["bytes"]), int(fields["lines"]))


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


def inspect_csv_file(path: Path, loaded: CsvProgress | None = None) -> CsvFile:
    """Inspect a CSV file: which lines are still to load; a file that cannot be loaded says why
    in ``problem``. Against ``loaded`` (its checkpoint): the same bytes are ``unchanged``
    (nothing to load), bytes appended after a complete last line are ``grown`` (only the new
    lines load), any other difference is ``changed`` (the whole file loads again as a new
    version)."""
    read = _Read(path, loaded.bytes if loaded else None)
    file = read.file()
    if file.problem or loaded is None:
        return file
    if loaded.sha256 == file.sha256:
        return replace(file, line_count=0, change="unchanged")
    if read.size > loaded.bytes and read.prefix_ends_line and read.prefix_sha256 == loaded.sha256:
        return replace(
            file,
            line_count=max(file.line_count - loaded.lines, 0),
            first_line=loaded.lines + 2,
            change="grown",
        )
    return replace(file, change="changed")


READ_CHUNK = 4 * 1024 * 1024
"""Bytes read, hashed and split into lines at a time: a file's bytes, its text and its lines are
never held whole (a 150 MB file peaked ~470 MB above the process when they were)."""


class _Read:
    """One pass over a file's bytes (its first ``limit`` bytes, if given): its sha256 (and that
    of its first ``prefix`` bytes, to tell a grown file), its size, and its lines, decoded as
    UTF-8 (a BOM dropped)."""

    def __init__(self, path: Path, prefix: int | None, *, limit: int | None = None) -> None:
        self.path, self.prefix, self.limit = path, prefix, limit
        self.size = 0
        self.prefix_sha256: str | None = None
        self.prefix_ends_line = False
        self.sha256 = ""
        self._ended_line = False

    def file(self) -> CsvFile:
        errors: Literal["strict", "replace"] = "strict"
        try:
            header, count = self._count("strict")
            problem = None
        except UnicodeDecodeError as exc:
            errors = "replace"
            header, count = self._count("replace")
            problem = f"{self.path.name} is not UTF-8 ({exc}); re-save it as UTF-8"
        layout, header_problem = _layout_problem(header, self.path) if count else (UNREADABLE, None)
        if not count:
            problem = problem or f"{self.path.name} is empty"
        return CsvFile(
            path=self.path,
            sha256=self.sha256,
            layout=UNREADABLE if problem else layout,
            delimiter=_delimiter(header),
            header=header,
            line_count=max(count - 1, 0),
            problem=problem or header_problem,
            progress=CsvProgress(self.sha256, self.size, max(count - 1, 0)),
            errors=errors,
        )

    def _count(self, errors: Literal["strict", "replace"]) -> tuple[str, int]:
        """The first line and how many lines there are."""
        header, count = "", 0
        for lines in self.lines(errors):
            if not count and len(lines):
                header = lines[0]
            count += len(lines)
        return header, count

    def lines(self, errors: Literal["strict", "replace"]) -> Iterator[pl.Series]:
        digest = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors=errors)
        pending, size = "", 0
        with self.path.open("rb") as handle:
            while chunk := handle.read(
                READ_CHUNK if self.limit is None else min(READ_CHUNK, self.limit - size)
            ):
                if self.prefix is not None and size <= self.prefix < size + len(chunk):
                    head = chunk[: self.prefix - size]
                    before = digest.copy()
                    before.update(head)
                    self.prefix_sha256 = before.hexdigest()
                    self.prefix_ends_line = head.endswith(b"\n") if head else self._ended_line
                digest.update(chunk)
                size += len(chunk)
                self._ended_line = chunk.endswith(b"\n")
                pending += decoder.decode(chunk)
                # Split up to the last LF only: a CRLF is never cut between two chunks.
                cut = pending.rfind("\n") + 1
                if cut:
                    yield split_lines(pending[:cut])
                    pending = pending[cut:]
            pending += decoder.decode(b"", final=True)
        self.size, self.sha256 = size, digest.hexdigest()
        yield split_lines(pending)


SPLIT_CHUNK = 4_000_000
"""Characters split into lines at a time: only a chunk's lines are ever Python strings at once
(a str costs ~50 bytes more than its text; a 50 MB file of 428k lines peaked 60 MB higher when
split whole)."""


def split_lines(text: str) -> pl.Series:
    """A text's lines, without their ends and without an empty last line after the final end.
    Only CR/LF end a line: str.splitlines would also split on U+2028, form feeds and the like
    inside a name, cutting a record in two and shifting every later line number."""
    parts: list[pl.Series] = [pl.Series("line", [], dtype=pl.String())]
    start = 0
    while start < len(text):
        # Cut after a LF, so that a CRLF is never split between two chunks.
        cut = text.find("\n", start + SPLIT_CHUNK)
        end = len(text) if cut < 0 else cut + 1
        lines = _LINE_END.split(text[start:end])
        if lines[-1] == "":
            lines.pop()  # what followed the chunk's last line end
        parts.append(pl.Series("line", lines, dtype=pl.String()))
        start = end
    return pl.concat(parts)


def read_csv_file(path: Path) -> CsvFile:
    """A loadable CSV file, or TerminalSourceError naming the file and what to do."""
    file = inspect_csv_file(path)
    if file.problem:
        raise TerminalSourceError(SOURCE_NAME, file.problem, url=str(path))
    return file


def _csv_entries(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".csv")


def list_csv_files(directory: Path) -> list[Path]:
    return [p for p in _csv_entries(directory) if p.is_file()]


def unreadable_entries(directory: Path) -> list[str]:
    """What is wrong with each ``*.csv`` entry of ``directory`` that is not a file to read: a
    link to nothing, a directory. They are named rather than passed over, so that a delivery
    whose file went missing fails instead of loading nothing."""
    problems = []
    for path in _csv_entries(directory):
        if path.is_file():
            continue
        if path.is_symlink() and not path.exists():
            problems.append(
                f"{path.name}: a symbolic link to {os.readlink(path)}, which does not exist; "
                "restore the file it names, or remove the link"
            )
        else:
            problems.append(f"{path.name}: not a file; move it out of {directory.name}/")
    return problems


def header_columns(header: str) -> list[str]:
    return [c.strip() for c in next(csv.reader([header], delimiter=_delimiter(header)))]


def split_fields(header: str, lines: pl.Series) -> tuple[list[str], pl.Series]:
    """The header's columns, and each line's fields (a List(String) Series aligned with
    ``lines``). A line without a quote character is split on the delimiter by polars, which is
    what the ``csv`` module does with it, without a Python string per field; a line with one is
    tokenized by :func:`tokenize`."""
    columns = header_columns(header)
    quoted = lines.str.contains('"', literal=True)
    fields = lines.str.split(_delimiter(header))
    if quoted.any():
        _, special = tokenize(header, lines.filter(quoted).to_list())
        aligned: list[list[str] | None] = [None] * len(lines)
        for position, tokens in zip(quoted.arg_true().to_list(), special, strict=True):
            aligned[position] = tokens
        tokenized = pl.Series(aligned, dtype=pl.List(pl.String()))
        fields = pl.select(pl.when(quoted).then(tokenized).otherwise(fields)).to_series()
    return columns, fields


def tokenize(header: str, lines: Iterable[str]) -> tuple[list[str], list[list[str]]]:
    """Split each physical line into fields (C-speed ``csv``); typing happens later, in polars.

    Lines are tokenized one by one: a stray quote must cost its own line (which then has the
    wrong number of fields), never swallow the lines after it.
    """
    delimiter = _delimiter(header)
    return header_columns(header), [
        next(csv.reader([line], delimiter=delimiter), []) for line in lines
    ]
