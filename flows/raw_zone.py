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
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

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


def _write_atomically(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` under ``path``, or ``<stem>.2.parquet``... if a retry already wrote it:
    a file is published whole (link of a fsynced temporary file) and never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.write_parquet(tmp, compression="zstd", statistics=True)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    try:
        for attempt in range(1, 10_000):
            target = path if attempt == 1 else path.with_name(f"{path.stem}.{attempt}{path.suffix}")
            try:
                os.link(tmp, target)
            except FileExistsError:
                continue
            return target
        raise FileExistsError(f"{path}: too many attempts already in the raw zone")
    finally:
        tmp.unlink()


def _frame(rows: Mapping[str, Sequence[object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=RAW_SCHEMA)


def write_page(raw_root: Path, run_id: str, started_at: datetime, page: Page) -> RawFile:
    records = page.records
    if page.split is not None and records:
        texts: list[str | None] = list(records)
        indexes: list[int | None] = list(range(len(records)))
        envelope = page.split.envelope
    else:
        texts, indexes = [None], [None]
        envelope = page.body.decode("utf-8", errors="replace")
    n = len(texts)
    suffix = f"-page-{page.page:04d}" if page.page is not None else ""
    directory = run_directory(raw_root, page.source, run_id, started_at)
    path = directory / f"{page.endpoint.name}{suffix}.parquet"
    frame = _frame(
        {
            "run_id": [run_id] * n,
            "source": [page.source] * n,
            "endpoint": [page.endpoint.name] * n,
            "page": [page.page] * n,
            "request_url": [page.url] * n,
            "file_name": [None] * n,
            "fetched_at": [page.fetched_at] * n,
            "http_status": [page.status] * n,
            "payload_sha256": [page.sha256] * n,
            "envelope": [envelope] * n,
            "record_index": indexes,
            "record": texts,
            "record_sha256": [_sha256(t) if t is not None else None for t in texts],
        }
    )
    written = _write_atomically(frame, path)
    return RawFile(str(written.relative_to(raw_root)), len(records))


def write_csv(raw_root: Path, run_id: str, started_at: datetime, file: CsvFile) -> RawFile:
    n = len(file.lines)
    directory = run_directory(raw_root, "csv", run_id, started_at)
    path = directory / f"csv-{file.path.stem}-{file.sha256[:8]}.parquet"
    fetched_at = datetime.now(UTC)
    frame = _frame(
        {
            "run_id": [run_id] * n,
            "source": ["csv"] * n,
            "endpoint": [file.layout] * n,
            "page": [None] * n,
            "request_url": [None] * n,
            "file_name": [file.path.name] * n,
            "fetched_at": [fetched_at] * n,
            "http_status": [None] * n,
            "payload_sha256": [file.sha256] * n,
            "envelope": [file.header] * n,
            # Line numbers as an editor shows them: the header is line 1.
            "record_index": list(range(file.first_line, file.first_line + n)),
            "record": list(file.lines),
            "record_sha256": [_sha256(line) for line in file.lines],
        }
    )
    written = _write_atomically(frame, path)
    return RawFile(str(written.relative_to(raw_root)), n)


def stored_page(
    endpoint: Endpoint,
    page: int | None,
    *,
    raw_root: Path,
    source: str,
    run_id: str,
    started_at: datetime,
) -> Page | None:
    """The page a run already wrote (its last attempt), if it holds records: a resumed run takes
    it from here instead of fetching it again. A page kept whole (unsplittable) is fetched again."""
    directory = run_directory(raw_root, source, run_id, started_at)
    stem = f"{endpoint.name}-page-{page:04d}" if page is not None else endpoint.name
    attempts = sorted(
        directory.glob(f"{stem}*.parquet"),
        key=lambda p: int(p.suffixes[0][1:]) if len(p.suffixes) > 1 else 1,
    )
    attempts = [p for p in attempts if p.name == f"{stem}.parquet" or p.name.startswith(f"{stem}.")]
    if not attempts:
        return None
    frame = pl.read_parquet(attempts[-1])
    if frame["record"].null_count():
        return None
    records = frame["record"].to_list()
    first = frame.row(0, named=True)
    keys: set[str] = set()
    for record in records:
        keys.update(json.loads(record))
    return Page(
        source=source,
        endpoint=endpoint,
        page=page,
        url=first["request_url"],
        status=first["http_status"],
        fetched_at=first["fetched_at"],
        body=b"",
        split=SplitBody(records, first["envelope"], frozenset(keys)),
        reused_from=str(attempts[-1].relative_to(raw_root)),
        stored_sha256=first["payload_sha256"],
    )


def read_raw(raw_root: Path, files: Iterable[str]) -> pl.DataFrame:
    """Rows of the given raw files, each tagged with ``raw_file`` (its relative path)."""
    frames = [
        pl.read_parquet(raw_root / relative).with_columns(raw_file=pl.lit(relative))
        for relative in files
    ]
    if not frames:
        return pl.DataFrame(schema={**RAW_SCHEMA, "raw_file": pl.String()})
    return pl.concat(frames, how="vertical")
