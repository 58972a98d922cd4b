"""Quotes laid out for pages: a copy of a snapshot's quotes that a page reads rows of together.

DuckDB stores ``quotes`` in columns of compressed row groups, in the order loads appended them
(time, roughly). A coin's page gathers rows that lie one per capture, and each costs a block of
every column decompressed: 3-10 ms a page at 10M quotes, a few hundred pages a second at best
(docs/benchmarks.md). This layout is the same rows as uncompressed Arrow IPC files, memory-mapped
by every reader (the kernel's page cache holds them once for all processes), ~1.6 times the
snapshot's size:

* ``rows.arrow``: each quote as the JSON object a page lists, ordered by (coin_id, source,
  observed_at): each (coin, source) pair is a run of rows in time order, so a coin's page is a
  slice of its runs, merged, and a page's body is its rows' bytes joined.
* ``observed.arrow``: those rows' ``observed_at`` in microseconds, one contiguous array, which
  runs are searched in.
* ``runs.arrow``: each (coin_id, source) pair's first row and the row after its last.
* ``order.arrow``: every row's position in the page order (observed_at, coin_id, source), with
  its ``observed_at``: a newest-first page is a slice of it.

It belongs to one published snapshot file: the files lie in ``<serving>.layout/<identity>/``,
named by the file's identity (inode, mtime, size: :func:`store.snapshot.file_identity`), and a
reader uses a layout only when it names the snapshot file it reads. Building it takes a sort of
every quote (~24 s at 10M on two cores), too long for publishing's 2 s per GB: the writer builds
it after the snapshot is published, and until it is there, pages are read from the snapshot
(:mod:`store.quote_pages`), as before.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl
import pyarrow as pa
from pyarrow import ipc

from store.connection import open_read_only
from store.errors import StoreError
from store.quote_pages import QUOTE_FIELDS, Page, QuoteFilter
from store.settings import get_store_settings
from store.snapshot import FileIdentity, file_identity, fsync_path

logger = logging.getLogger(__name__)

ROWS, OBSERVED, RUNS, ORDER = "rows.arrow", "observed.arrow", "runs.arrow", "order.arrow"
FILES = (ROWS, OBSERVED, RUNS, ORDER)
BATCH_ROWS = 100_000
"""Rows read from the sort, rendered and written at a time while building."""
IN_FLIGHT = 2
"""Batches read ahead of the one being written while building."""
_MONEY = ("price_usd", "market_cap_usd", "volume_24h_usd")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class LayoutError(StoreError):
    """A layout's files are missing, unreadable or do not match each other."""


def layout_directory(serving_path: Path) -> Path:
    """Where the layouts of the snapshot at ``serving_path`` lie, one directory per snapshot."""
    return serving_path.with_name(serving_path.name + ".layout")


@dataclass(frozen=True)
class LayoutBuilt:
    path: Path
    rows: int
    seconds: float


def _microseconds(moment: datetime) -> int:
    if moment.tzinfo is None:  # a time without a zone is UTC, as the warehouse reads it
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def _write(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _json_field(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if name in _MONEY:
        return column.cast(pl.String).str.strip_chars_end("0").str.strip_chars_end(".")
    if name == "observed_at":
        return (
            pl.when(column.dt.microsecond() == 0)
            .then(column.dt.to_string("%Y-%m-%dT%H:%M:%SZ"))
            .otherwise(column.dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ"))
        )
    if dtype.is_float():
        return pl.when(column.is_finite()).then(column)
    return column


def _as_json(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pl.Series]:
    """Each quote as the JSON object a page lists, its keys :data:`QUOTE_FIELDS` in order:
    money as exact text without trailing zeros (as :func:`store.queries.money_text` renders
    it), times as RFC 3339 in UTC with microseconds only when there are some (as the API's
    encoder writes them), a number that is not finite as null. polars renders them ~20 times
    faster than DuckDB's casts, and a page is then its rows' bytes joined. With the rows'
    ``observed_at`` in microseconds."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    fields = [_json_field(name, frame.schema[name]).alias(name) for name in QUOTE_FIELDS]
    rows = frame.select(pl.struct(fields).struct.json_encode().alias("quote"))
    (encoded,) = rows.to_arrow().to_batches(max_chunksize=None)
    # Computed into a buffer of its own: a view of the batch's column would keep the whole
    # batch's memory (~90 MB per 500k rows) until the last batch is written.
    times = frame.get_column("observed_at").dt.epoch("us") + 0
    return encoded, times


Progress = Callable[[int, int], None]
"""Told the quotes laid out so far and how many there are, after each batch."""


def write_quote_layout(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    *,
    temp_directory: Path | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the layout of the quotes ``con`` reads into ``directory`` (new, empty); the rows."""
    if temp_directory is not None:
        quoted = str(temp_directory).replace("'", "''")  # SET takes no bound parameters
        con.execute(f"set temp_directory = '{quoted}'")
    runs = con.execute(
        "select coin_id, source, count(*) from quotes group by coin_id, source "
        "order by coin_id, source"
    ).fetchall()
    reader = con.execute(
        f"select {', '.join(QUOTE_FIELDS)} from quotes order by coin_id, source, observed_at"
    ).to_arrow_reader(BATCH_ROWS)
    observed: list[pl.Series] = []
    with pa.OSFile(str(directory / ROWS), "wb") as sink:
        writer: ipc.RecordBatchFileWriter | None = None

        total, done = sum(n for _, _, n in runs), 0

        def write(encoding: Future[tuple[pa.RecordBatch, pl.Series]]) -> None:
            nonlocal writer, done
            encoded, times = encoding.result()
            observed.append(times)
            if writer is None:
                writer = ipc.new_file(sink, encoded.schema)
            writer.write_batch(encoded)
            done += encoded.num_rows
            if progress is not None:
                progress(done, total)

        # Batches are rendered on a thread of their own while DuckDB hands over the next ones
        # (both release the GIL), a few at a time, written in order.
        with ThreadPoolExecutor(1, thread_name_prefix="layout-json") as renderer:
            pending: deque[Future[tuple[pa.RecordBatch, pl.Series]]] = deque()
            for batch in reader:
                pending.append(renderer.submit(_as_json, batch))
                if len(pending) > IN_FLIGHT:
                    write(pending.popleft())
            while pending:
                write(pending.popleft())
        if writer is None:  # no quotes
            writer = ipc.new_file(sink, pa.schema([("quote", pa.large_string())]))
        writer.close()
    times = pl.concat(observed, rechunk=True) if observed else pl.Series("t", [], pl.Int64)
    rows = len(times)
    ends = list(itertools.accumulate(n for _, _, n in runs))
    if (ends[-1] if ends else 0) != rows:
        raise LayoutError(f"quotes changed while their layout was written into {directory}")
    _write(directory / OBSERVED, pa.table({"observed_us": times.to_arrow()}))
    _write(
        directory / RUNS,
        pa.table(
            {
                "coin_id": [c for c, _, _ in runs],
                "source": [s for _, s, _ in runs],
                "start": pa.array([e - n for (_, _, n), e in zip(runs, ends, strict=True)]),
                "end": pa.array(ends, pa.int64()),
            }
        ),
    )
    # Rows are in (coin, source, time) order: a stable sort by time alone leaves each instant's
    # rows in (coin, source) order, the page order's tie-break.
    order = (
        pl.DataFrame({"observed_us": times})
        .with_row_index("position")
        .sort("observed_us", maintain_order=True)
        .rechunk()
    )
    _write(directory / ORDER, order.to_arrow())
    return rows


FORMAT = "q1"
"""Named in every layout's directory: a Kasparro that writes its files otherwise changes it, and
builds its own layout of a snapshot an older one laid out."""


def snapshot_name(identity: FileIdentity) -> str:
    """The name of the layout of the snapshot file whose identity is ``identity``."""
    return "-".join([FORMAT, *(str(part) for part in identity)])


def build_quote_layout(serving_path: Path, progress: Progress | None = None) -> LayoutBuilt:
    """Build the layout of the snapshot published at ``serving_path`` beside it, and remove
    the layouts of earlier snapshots. The caller keeps others from publishing meanwhile (the
    writer's lock).

    Files are written into a temporary directory, fsynced, and the directory renamed into
    place: a reader sees a whole layout or none. A kill leaves the temporary directory, which
    the next build removes."""
    started = time.perf_counter()
    identity = file_identity(serving_path)
    root = layout_directory(serving_path)
    target = root / snapshot_name(identity)
    if target.exists():
        return LayoutBuilt(target, _rows_of(target), time.perf_counter() - started)
    root.mkdir(exist_ok=True)
    # Earlier snapshots' layouts go first: no reader opens them again (a reader that has one
    # open keeps its mapped files), and the disk holds one layout at a time.
    for entry in root.iterdir():
        shutil.rmtree(entry, ignore_errors=True)
    tmp = root / f".{target.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        con = open_read_only(serving_path)
        try:
            if file_identity(serving_path) != identity:
                raise LayoutError(
                    f"{serving_path} was published again while its layout was built; "
                    "publish from one writer at a time"
                )
            con.execute(f"set memory_limit = '{get_store_settings().duckdb_memory_limit}'")
            (tmp / "spill").mkdir()
            rows = write_quote_layout(con, tmp, temp_directory=tmp / "spill", progress=progress)
        finally:
            con.close()
        shutil.rmtree(tmp / "spill")
        for name in FILES:
            fsync_path(tmp / name)
        fsync_path(tmp)
        os.rename(tmp, target)
        fsync_path(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return LayoutBuilt(target, rows, time.perf_counter() - started)


def build_after_publish(serving_path: Path, progress: Progress | None = None) -> LayoutBuilt | None:
    """:func:`build_quote_layout`, for a writer that has just published: a layout that cannot
    be built is said, not raised (the snapshot is published, and pages are read from it).
    None also when layouts are turned off (``KASPARRO_QUOTE_LAYOUT=false``)."""
    if not get_store_settings().quote_layout:
        shutil.rmtree(layout_directory(serving_path), ignore_errors=True)
        return None
    try:
        built = build_quote_layout(serving_path, progress)
    except (StoreError, duckdb.Error, OSError, pa.ArrowException) as exc:
        logger.warning(
            "the quote layout of %s was not built (%s: %s): pages are read from the snapshot, "
            "slower, until the next publish builds one; `kasparro rebuild` publishes again now",
            serving_path,
            type(exc).__name__,
            exc,
        )
        return None
    logger.info("built the quote layout of %d quotes in %.2fs", built.rows, built.seconds)
    return built


def _rows_of(directory: Path) -> int:
    with pa.memory_map(str(directory / OBSERVED)) as source:
        return int(ipc.open_file(source).read_all().num_rows)


@dataclass(frozen=True)
class _Run:
    coin_id: str
    source: str
    start: int
    end: int


def _view(array: pa.ChunkedArray, code: Literal["q", "I"]) -> Sequence[int]:
    """The values of a one-chunk numeric column without nulls, indexable at no cost."""
    if array.num_chunks == 0 or len(array) == 0:
        return ()
    if array.num_chunks != 1:
        raise LayoutError(
            f"an index of the layout has {array.num_chunks} chunks, not one; build it again"
        )
    chunk = array.chunk(0)
    data = chunk.buffers()[1]
    assert data is not None
    view: memoryview[int] = memoryview(data).cast(code)
    return view[chunk.offset : chunk.offset + len(chunk)]


def _read(path: Path) -> pa.Table:
    try:
        return ipc.open_file(pa.memory_map(str(path))).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise LayoutError(f"{path} is unreadable ({exc}); build the layout again") from exc


class QuoteLayout:
    """A built layout, memory-mapped, answering the pages it can (:meth:`read_page`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.snapshot = directory.name
        """The identity of the snapshot file it was built from, as :func:`snapshot_name`
        spells it."""
        rows = _read(directory / ROWS)
        if rows.column_names != ["quote"]:
            raise LayoutError(f"{directory / ROWS} holds other columns; build the layout again")
        self._chunks = [_Strings(chunk) for chunk in rows.column("quote").chunks]
        self._chunk_starts = [0, *itertools.accumulate(c.length for c in self._chunks)]
        self._observed = _view(_read(directory / OBSERVED).column("observed_us"), "q")
        order = _read(directory / ORDER)
        self._order_positions = _view(order.column("position"), "I")
        self._order_observed = _view(order.column("observed_us"), "q")
        runs = _read(directory / RUNS).to_pylist()
        self._run_list = [_Run(r["coin_id"], r["source"], r["start"], r["end"]) for r in runs]
        self._run_starts = [run.start for run in self._run_list]
        self._runs: dict[str, list[_Run]] = {}
        for run in self._run_list:
            self._runs.setdefault(run.coin_id, []).append(run)
        count = rows.num_rows
        ends = self._run_list[-1].end if self._run_list else 0
        if not (count == len(self._observed) == len(self._order_positions) == ends):
            raise LayoutError(f"the files of {directory} do not match; build the layout again")

    @property
    def quotes(self) -> int:
        return self._chunk_starts[-1]

    def read_page(
        self, flt: QuoteFilter, coin_ids: list[str] | None, *, limit: int, offset: int
    ) -> Page | None:
        """The page :func:`store.quote_pages.read_page` gives for ``flt`` (its coins resolved
        to ``coin_ids``, None for any), whole; None when this layout does not serve it: a
        source's quotes with no coin chosen lie among every other source's in time order."""
        need = offset + limit
        positions: Sequence[int]
        if coin_ids is None:
            if flt.source is not None:
                return None
            positions = self._time_page(flt, need)
        else:
            runs = [
                run
                for coin in coin_ids
                for run in self._runs.get(coin, ())
                if flt.source is None or run.source == flt.source
            ]
            positions = self._runs_page(runs, flt, need)
        page = positions[offset:]
        last_key = self._key(page[-1]) if len(page) == limit else None
        return Page([], None, limit, encoded=self._jsons(page), last_key=last_key)

    def _bounds(self, flt: QuoteFilter, run: _Run) -> tuple[int, int]:
        """The rows of ``run`` within the filter's times and after its cursor."""
        observed, lo, hi = self._observed, run.start, run.end
        if flt.start is not None:
            lo = bisect.bisect_left(observed, _microseconds(flt.start), lo, hi)
        if flt.end is not None:
            hi = bisect.bisect_left(observed, _microseconds(flt.end), lo, hi)
        if flt.after is not None:
            at, coin_id, source = flt.after
            moment = _microseconds(at)
            # Keys are (observed_at, coin_id, source); the run's coin and source are fixed, so
            # its rows at the cursor's instant go before the cursor or after it all together.
            before_cursor = (run.coin_id, run.source) < (coin_id, source)
            if flt.descending:
                search = bisect.bisect_right if before_cursor else bisect.bisect_left
                hi = search(observed, moment, lo, hi)
            else:
                after_cursor = (run.coin_id, run.source) > (coin_id, source)
                search = bisect.bisect_left if after_cursor else bisect.bisect_right
                lo = search(observed, moment, lo, hi)
        return lo, max(lo, hi)

    def _runs_page(self, runs: list[_Run], flt: QuoteFilter, need: int) -> Sequence[int]:
        bounded = [(run, *self._bounds(flt, run)) for run in runs]
        bounded = [(run, lo, hi) for run, lo, hi in bounded if lo < hi]
        if len(bounded) == 1:
            _, lo, hi = bounded[0]
            if flt.descending:
                return range(hi - 1, max(lo, hi - need) - 1, -1)
            return range(lo, min(hi, lo + need))
        observed = self._observed

        def keys(run: _Run, lo: int, hi: int) -> Iterator[tuple[int, str, str, int]]:
            steps = range(hi - 1, lo - 1, -1) if flt.descending else range(lo, hi)
            for i in steps:
                yield (observed[i], run.coin_id, run.source, i)

        merged = heapq.merge(*(keys(*b) for b in bounded), reverse=flt.descending)
        return [key[3] for key in itertools.islice(merged, need)]

    def _coin_source(self, position: int) -> tuple[str, str]:
        run = self._run_list[bisect.bisect_right(self._run_starts, position) - 1]
        return run.coin_id, run.source

    def _time_page(self, flt: QuoteFilter, need: int) -> list[int]:
        observed, positions = self._order_observed, self._order_positions
        lo, hi = 0, len(positions)
        if flt.start is not None:
            lo = bisect.bisect_left(observed, _microseconds(flt.start), lo, hi)
        if flt.end is not None:
            hi = max(lo, bisect.bisect_left(observed, _microseconds(flt.end), lo, hi))
        if flt.after is not None:
            at, coin_id, source = flt.after
            moment = _microseconds(at)
            # The cursor's instant first, then its (coin, source) among that instant's rows.
            first = bisect.bisect_left(observed, moment, lo, hi)
            last = bisect.bisect_right(observed, moment, first, hi)
            if flt.descending:
                hi = bisect.bisect_left(
                    positions, (coin_id, source), first, last, key=self._coin_source
                )
            else:
                lo = bisect.bisect_right(
                    positions, (coin_id, source), first, last, key=self._coin_source
                )
        if lo >= hi:
            return []
        if flt.descending:
            return [positions[i] for i in range(hi - 1, max(lo, hi - need) - 1, -1)]
        return [positions[i] for i in range(lo, min(hi, lo + need))]

    def _jsons(self, positions: Sequence[int]) -> list[memoryview]:
        """The JSON of the rows at ``positions``, in that order (inlined: the per-row calls
        were an eighth of a page request)."""
        starts, chunks = self._chunk_starts, self._chunks
        if isinstance(positions, range) and positions:
            first, last = min(positions[0], positions[-1]), max(positions[0], positions[-1])
            index = bisect.bisect_right(starts, first) - 1
            if last < starts[index + 1]:  # a run's slice in one chunk: its offsets at once
                chunk, base = chunks[index], starts[index]
                offsets, data = chunk.offsets[first - base : last - base + 2].tolist(), chunk.data
                found = [data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
                return found[::-1] if positions.step < 0 else found
        found = []
        for position in positions:
            index = bisect.bisect_right(starts, position) - 1
            chunk, row = chunks[index], position - starts[index]
            found.append(chunk.data[chunk.offsets[row] : chunk.offsets[row + 1]])
        return found

    def _key(self, position: int) -> tuple[datetime, str, str]:
        """The (observed_at, coin_id, source) of the row at ``position``: a cursor."""
        return (_EPOCH + _MICROSECOND * self._observed[position], *self._coin_source(position))


class _Strings:
    """A chunk of a string column read in place: the bytes of a value are a view of the
    mapped file (``take`` costs ~35 us a chunk, 60% of a page that gathers rows)."""

    def __init__(self, chunk: pa.Array) -> None:
        if chunk.null_count:
            raise LayoutError("a quote's JSON is missing; build the layout again")
        code: Literal["q", "i"] = "q" if pa.types.is_large_string(chunk.type) else "i"
        _, offsets, data = chunk.buffers()
        self.offsets: memoryview[int] = memoryview(offsets).cast(code)[chunk.offset :]
        self.data = memoryview(data) if data is not None else memoryview(b"")
        self.length = len(chunk)


def open_quote_layout(serving_path: Path, identity: FileIdentity) -> QuoteLayout | None:
    """The layout of the snapshot file whose identity is ``identity``, or None while it is not
    built."""
    directory = layout_directory(serving_path) / snapshot_name(identity)
    if not directory.is_dir():
        return None
    return QuoteLayout(directory)
