"""The raw zone: every payload kept as received, as Parquet, one row per record, with lineage.

Layout: ``<data>/raw/source=<s>/date=<YYYY-MM-DD>/run=<run_id>/<endpoint>-page-NNNN.parquet``
for API pages and ``.../csv-<file name>-<sha8>.parquet`` for CSV files. ``date`` is the run's start
day (UTC) so a run's files stay together. Files are written to a temporary name and linked into
place, so a crash never leaves half a file, and never over an existing file (a retried extract
adds ``...-page-0001.2.parquet``): the raw zone is only ever added to.

Each row holds the record's text exactly as served (``record``), the response with its record
array emptied (``envelope``: CoinCap's ``timestamp`` lives there; for CSV it is the header line),
and the lineage: run, source, endpoint, page, URL without secrets, fetch time, HTTP status and the
sha256 of the whole payload. A response with no records, or one that could not be split, is kept
as a single row with ``record`` null and the whole body in ``envelope``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import polars as pl
import pyarrow.parquet as pq

from flows.sources.csv_files import CsvFile
from flows.sources.http import Page
from flows.sources.records import SplitBody
from flows.sources.spec import Endpoint

RAW_SCHEMA = pl.Schema(
    {
        "run_id": pl.String(),
        "source": pl.String(),
        "endpoint": pl.String(),
        "page": pl.Int32(),
        "request_url": pl.String(),
        "file_name": pl.String(),
        "fetched_at": pl.Datetime("us", "UTC"),
        "http_status": pl.Int16(),
        "payload_sha256": pl.String(),
        "envelope": pl.String(),
        "record_index": pl.Int32(),
        "record": pl.String(),
        "record_sha256": pl.String(),
        "subject": pl.String(),
    }
)


@dataclass(frozen=True)
class RawFile:
    relative: str
    """Path below the raw root; quotes and quarantine rows point here."""
    records: int


def run_directory(raw_root: Path, source: str, run_id: str, started_at: datetime) -> Path:
    day = started_at.astimezone(UTC).date().isoformat()
    return raw_root / f"source={source}" / f"date={day}" / f"run={run_id}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sha256_of_each(texts: pl.Series, chunk: int = 50_000) -> pl.Series:
    """sha256 of each text, hashed ``chunk`` at a time: only a chunk's texts are ever Python
    strings at once."""
    parts = [
        pl.Series([_sha256(t) for t in texts.slice(start, chunk).to_list()], dtype=pl.String())
        for start in range(0, len(texts), chunk)
    ]
    return pl.concat(parts) if parts else pl.Series([], dtype=pl.String())


def _write_atomically(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` under ``path``, or ``<stem>.2.parquet``... if a retry already wrote it:
    a file is published whole (link of a fsynced temporary file) and never replaced."""
    with _Publishing(path) as publishing:
        publishing.write(frame)
    return publishing.published


class _Publishing:
    """A raw file written in parts (row groups) to a temporary file, then published whole
    under ``path``, or ``<stem>.2.parquet``... if a retry already wrote it: a link of the
    fsynced temporary file, never a replacement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        self.writer: pq.ParquetWriter | None = None
        self.published = path

    def __enter__(self) -> _Publishing:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self.writer is None:
            # zstd level 1, not polars' default 3: on a capture of 30k records (18.8 MB of JSON)
            # it wrote in 88 ms instead of 125 ms, and the files came out 2% smaller.
            self.writer = pq.ParquetWriter(
                self.tmp, table.schema, compression="zstd", compression_level=1
            )
        self.writer.write_table(table)

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
            if kind is None:
                self.published = self._publish()
        finally:
            self.tmp.unlink(missing_ok=True)

    def _publish(self) -> Path:
        with self.tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        for attempt in range(1, 10_000):
            target = (
                self.path
                if attempt == 1
                else self.path.with_name(f"{self.path.stem}.{attempt}{self.path.suffix}")
            )
            try:
                os.link(self.tmp, target)
            except FileExistsError:
                continue
            return target
        raise FileExistsError(f"{self.path}: too many attempts already in the raw zone")


def _frame(
    per_record: Mapping[str, Sequence[object] | pl.Series], shared: Mapping[str, object]
) -> pl.DataFrame:
    """A raw-zone frame: columns that vary by record, and lineage every record shares (given
    once, not as a list per record: a page holds thousands of records)."""
    varying = pl.DataFrame(
        {c: pl.Series(c, v) for c, v in per_record.items()},
        schema={c: RAW_SCHEMA[c] for c in per_record},
    )
    return varying.with_columns(
        pl.lit(value, RAW_SCHEMA[column]).alias(column) for column, value in shared.items()
    ).select(RAW_SCHEMA.names())


def write_page(raw_root: Path, run_id: str, started_at: datetime, page: Page) -> RawFile:
    records = page.records
    if page.split is not None and records:
        texts: list[str | None] = list(records)
        indexes: list[int | None] = list(range(len(records)))
        envelope = page.split.envelope
    else:
        texts, indexes = [None], [None]
        envelope = page.body.decode("utf-8", errors="replace")
    subject_id = json.loads(page.subject)[page.endpoint.subject_key] if page.subject else None
    directory = run_directory(raw_root, page.source, run_id, started_at)
    path = directory / f"{file_stem(page.endpoint, page.page, subject_id)}.parquet"
    frame = _frame(
        {
            "record_index": indexes,
            "record": texts,
            "record_sha256": [_sha256(t) if t is not None else None for t in texts],
        },
        {
            "run_id": run_id,
            "source": page.source,
            "endpoint": page.endpoint.name,
            "page": page.page,
            "request_url": page.url,
            "file_name": None,
            "fetched_at": page.fetched_at,
            "http_status": page.status,
            "payload_sha256": page.sha256,
            "envelope": envelope,
            "subject": page.subject,
        },
    )
    written = _write_atomically(frame, path)
    return RawFile(str(written.relative_to(raw_root)), len(records))


def write_csv(raw_root: Path, run_id: str, started_at: datetime, file: CsvFile) -> RawFile:
    """Keep the lines of ``file`` still to load, one record per line, written a chunk at a time
    (a row group each): a file of any size is never held whole."""
    directory = run_directory(raw_root, "csv", run_id, started_at)
    path = directory / f"csv-{file.path.stem}-{file.sha256[:8]}.parquet"
    shared = {
        "run_id": run_id,
        "source": "csv",
        "endpoint": file.layout,
        "page": None,
        "request_url": None,
        "file_name": file.path.name,
        "fetched_at": datetime.now(UTC),
        "http_status": None,
        "payload_sha256": file.sha256,
        "envelope": file.header,
        "subject": None,
    }
    written, first = 0, file.first_line
    with _Publishing(path) as publishing:
        for lines in file.chunks():
            frame = _frame(
                {
                    # Line numbers as an editor shows them: the header is line 1.
                    "record_index": pl.int_range(first, first + len(lines), eager=True),
                    "record": lines,
                    "record_sha256": _sha256_of_each(lines),
                },
                shared,
            )
            publishing.write(frame)
            first, written = first + len(lines), written + len(lines)
        if not written:
            empty: dict[str, list[object]] = {"record_index": [], "record": [], "record_sha256": []}
            publishing.write(_frame(empty, shared))
    return RawFile(str(publishing.published.relative_to(raw_root)), written)


_ATTEMPT = re.compile(r"^(?P<stem>.+?)(?:\.(?P<attempt>\d+))?\.parquet$")


def file_stem(endpoint: Endpoint, page: int | None, subject_id: str | None) -> str:
    """A page's file name without attempt and suffix: ``coins_markets-page-0001``,
    ``coins_market_chart_range-bitcoin``, ``tickers``."""
    if subject_id is not None:
        return f"{endpoint.name}-{quote(subject_id, safe='').replace('.', '%2E')}"
    if page is not None:
        return f"{endpoint.name}-page-{page:04d}"
    return endpoint.name


def attempt_of(file_name: str) -> tuple[str, int] | None:
    """(stem, attempt) of a raw file name: a retried fetch adds ``.2``, ``.3``... files."""
    match = _ATTEMPT.match(file_name)
    return (match["stem"], int(match["attempt"] or 1)) if match else None


class StoredPages:
    """The pages a run already wrote, listed once: a resumed run takes each from here instead of
    fetching it again. Listing the run's directory per page would cost quadratically (a run of
    CoinGecko's listings has thousands of pages)."""

    def __init__(self, raw_root: Path, source: str, run_id: str, started_at: datetime) -> None:
        self.raw_root, self.source = raw_root, source
        self.latest: dict[str, tuple[int, Path]] = {}
        directory = run_directory(raw_root, source, run_id, started_at)
        for path in directory.glob("*.parquet") if directory.is_dir() else ():
            parsed = attempt_of(path.name)
            if parsed and parsed[1] > self.latest.get(parsed[0], (0, path))[0]:
                self.latest[parsed[0]] = (parsed[1], path)

    def __call__(self, endpoint: Endpoint, page: int | None, subject_id: str | None) -> Page | None:
        """The page's last attempt, if it holds records. A page kept whole (unsplittable) is
        fetched again."""
        found = self.latest.get(file_stem(endpoint, page, subject_id))
        return _read_page(self.raw_root, self.source, endpoint, page, found[1]) if found else None


def _read_page(
    raw_root: Path, source: str, endpoint: Endpoint, page: int | None, last: Path
) -> Page | None:
    frame = pl.read_parquet(last)
    if frame["record"].null_count():
        return None
    records = frame["record"].to_list()
    first = frame.row(0, named=True)
    keys: set[str] = set()
    for record in records:
        value = json.loads(record)
        if isinstance(value, dict):
            keys.update(value)
    return Page(
        source=source,
        endpoint=endpoint,
        page=page,
        url=first["request_url"],
        status=first["http_status"],
        fetched_at=first["fetched_at"],
        body=b"",
        split=SplitBody(records, first["envelope"], frozenset(keys)),
        reused_from=str(last.relative_to(raw_root)),
        stored_sha256=first["payload_sha256"],
        subject=first["subject"],
    )


def _scan_raw(raw_root: Path, relative: list[str]) -> pl.LazyFrame:
    prefix = f"{raw_root.resolve()}/"
    frame = pl.scan_parquet(
        [raw_root.resolve() / f for f in relative],
        schema=RAW_SCHEMA,
        missing_columns="insert",
        include_file_paths="raw_file",
        hive_partitioning=False,
    )
    return frame.with_columns(pl.col("raw_file").str.strip_prefix(prefix))


def read_raw(raw_root: Path, files: Iterable[str]) -> pl.DataFrame:
    """Rows of the given raw files, each tagged with ``raw_file`` (its relative path). Files
    written before a column was added read as null in it."""
    relative = list(files)
    if not relative:
        return pl.DataFrame(schema={**RAW_SCHEMA, "raw_file": pl.String()})
    return _scan_raw(raw_root, relative).collect()


def count_records(raw_root: Path, files: Iterable[str]) -> int:
    """How many records the raw files hold, from their metadata."""
    relative = list(files)
    return _scan_raw(raw_root, relative).select(pl.len()).collect().item() if relative else 0


def records_at(raw_root: Path, wanted: pl.DataFrame) -> pl.DataFrame:
    """``record`` and ``record_sha256`` of the (``raw_file``, ``raw_record``) rows in ``wanted``,
    without holding the rest of their files."""
    files = wanted["raw_file"].unique().to_list()
    if not files:
        return wanted.clear().select(
            "raw_file",
            "raw_record",
            record=pl.lit(None, pl.String()),
            record_sha256=pl.lit(None, pl.String()),
        )
    return (
        _scan_raw(raw_root, files)
        .select("raw_file", pl.col("record_index").alias("raw_record"), "record", "record_sha256")
        .join(
            wanted.lazy().select("raw_file", "raw_record").unique(),
            on=["raw_file", "raw_record"],
        )
        .collect()
    )


def read_raw_batches(raw_root: Path, files: Iterable[str], rows: int) -> Iterator[pl.DataFrame]:
    """:func:`read_raw` in batches of about ``rows`` records, so that what is derived from them
    stays bounded however large one file is. CSV files (``source=csv``) are read in slices of
    ``rows`` lines (several small files share a batch); every other file is read whole, all in
    one batch as before: an API page holds at most a few thousand records, and a daily series'
    points must stay together to be folded into their day."""
    relative = list(files)
    whole = [f for f in relative if not _is_csv(f)]
    if whole or not relative:
        yield read_raw(raw_root, whole)
    pending: list[pl.LazyFrame] = []
    pending_rows = 0
    for file in (f for f in relative if _is_csv(f)):
        scan = _scan_raw(raw_root, [file])
        total = scan.select(pl.len()).collect().item()
        for offset in range(0, max(total, 1), rows):
            length = min(rows, total - offset)
            pending.append(scan.slice(offset, rows))
            pending_rows += length
            if pending_rows >= rows:
                yield pl.concat(pl.collect_all(pending))
                pending, pending_rows = [], 0
    if pending:
        yield pl.concat(pl.collect_all(pending))


def _is_csv(relative: str) -> bool:
    return relative.startswith("source=csv/")
