"""Laying out a published snapshot's quotes (:mod:`store.quote_layout`), by its writer.

Laying out every quote (a base) takes a sort of them all and each rendered as JSON: ~23 s at 10M
quotes on two cores, ten times what publishing may take (2 s per GB). After a publish the writer
lays out only what changed since the base, as a delta: each (coin, source) pair's rows is told
apart by a fingerprint of its rows' lineage (``observed_at``, ``run_id``, ``raw_file``,
``raw_record``: a load that writes a quote writes its own lineage, so a quote that changed has
other lineage), and one scan of the snapshot finds, for each pair,

* its rows after the base's last, when the rows up to there are the base's (new quotes of a
  pair): the delta holds those;
* all its rows, when the rows up to there are not (a quote changed, moved to another coin or
  went): the delta holds them all and masks the base's;
* none, for a pair that is gone: the delta masks the base's.

A delta grows with every publish after its base (each is laid out against the base, so a layout
is never more than two segments). The writer lays out a new base after publishing, while readers
read the base and delta, and swaps the snapshot's manifest, once the delta holds
:data:`COMPACT_SHARE` of the quotes (and at least :data:`COMPACT_MIN_ROWS`), or as soon as it
masks a pair: a pair laid out again whole is read from a scan of every quote, where new quotes
are read from the last row groups alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl
import pyarrow as pa
from pyarrow import ipc

from store.connection import open_read_only
from store.errors import StoreError
from store.migrate import current_version
from store.quote_layout import (
    MASKED,
    OBSERVED,
    ORDER,
    ROWS,
    RUNS,
    LayoutError,
    Manifest,
    Segment,
    layout_directory,
    manifest_path,
    snapshot_name,
)
from store.quote_pages import QUOTE_FIELDS
from store.settings import get_store_settings
from store.snapshot import file_identity, fsync_path

logger = logging.getLogger(__name__)

BATCH_ROWS = 100_000
"""Rows read from the sort, rendered and written at a time."""
IN_FLIGHT = 2
"""Batches read ahead of the one being written."""
COMPACT_SHARE = 0.02
"""A delta that holds this share of the quotes is laid into a new base after publishing: a
delta of 2% of 10M quotes takes ~0.4 s to lay out at each publish."""
COMPACT_MIN_ROWS = 100_000
"""Nor is a delta of fewer quotes than this (a fraction of a second to lay out)."""
DELTA_SHARE = 0.5
"""A snapshot that changed more than this share of the quotes is laid out as a base at once."""
_LINEAGE = "hash(observed_at, run_id, raw_file, raw_record)"
_MONEY = ("price_usd", "market_cap_usd", "volume_24h_usd")


@dataclass(frozen=True)
class LayoutBuilt:
    path: Path
    """The manifest."""
    rows: int
    """The quotes the layout holds."""
    written: int
    """The quotes laid out this time: the delta's, or the base's."""
    kind: Literal["base", "delta"]
    seconds: float
    masked: int = 0
    """Pairs of the base a delta lays out again whole, or that are gone."""


Progress = Callable[[int, int], None]
"""Told the quotes laid out so far and how many there are, after each batch."""


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


@dataclass(frozen=True)
class _PairRows:
    """A (coin, source) pair's rows a segment holds: all, or those after ``after`` (µs)."""

    coin_id: str
    source: str
    count: int
    fingerprint: int
    after: int = -(2**63)


def _write_segment(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    relation: str,
    pairs: list[_PairRows],
    *,
    masked: list[tuple[str, str]] | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the quotes of ``relation`` (those of ``pairs``, sorted by pair) as a segment
    into ``directory`` (new, empty); the rows."""
    reader = con.execute(
        f"select {', '.join(QUOTE_FIELDS)} from {relation} order by coin_id, source, observed_at"
    ).to_arrow_reader(BATCH_ROWS)
    observed: list[pl.Series] = []
    total, done = sum(pair.count for pair in pairs), 0
    with pa.OSFile(str(directory / ROWS), "wb") as sink:
        writer: ipc.RecordBatchFileWriter | None = None

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
    if len(times) != total:
        raise LayoutError(f"quotes changed while their layout was written into {directory}")
    _write(directory / OBSERVED, pa.table({"observed_us": times.to_arrow()}))
    ends, end = [], 0
    for pair in pairs:
        end += pair.count
        ends.append(end)
    _write(
        directory / RUNS,
        pa.table(
            {
                "coin_id": pa.array([p.coin_id for p in pairs], pa.string()),
                "source": pa.array([p.source for p in pairs], pa.string()),
                "start": pa.array(
                    [e - p.count for p, e in zip(pairs, ends, strict=True)], pa.int64()
                ),
                "end": pa.array(ends, pa.int64()),
                "fingerprint": pa.array([p.fingerprint for p in pairs], pa.uint64()),
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
    if masked is not None:
        _write(
            directory / MASKED,
            pa.table(
                {
                    "coin_id": pa.array([c for c, _ in masked], pa.string()),
                    "source": pa.array([s for _, s in masked], pa.string()),
                }
            ),
        )
    return total


def write_quote_layout(
    con: duckdb.DuckDBPyConnection, directory: Path, *, progress: Progress | None = None
) -> int:
    """Write every quote ``con`` reads as a base segment into ``directory`` (new, empty); the
    rows."""
    pairs = [
        _PairRows(coin_id, source, count, fingerprint)
        for coin_id, source, count, fingerprint in con.execute(
            f"select coin_id, source, count(*), bit_xor({_LINEAGE}) from quotes "
            "group by coin_id, source order by coin_id, source"
        ).fetchall()
    ]
    return _write_segment(con, directory, "quotes", pairs, progress=progress)


@dataclass(frozen=True)
class _Delta:
    """What a snapshot holds that its base does not: :class:`_PairRows` for the delta, and the
    base's pairs it masks."""

    pairs: list[_PairRows]
    masked: list[tuple[str, str]]
    quotes: int
    """Every quote of the snapshot."""

    @property
    def rows(self) -> int:
        return sum(pair.count for pair in self.pairs)


def _delta(con: duckdb.DuckDBPyConnection, base: Segment) -> _Delta:
    """Compare the snapshot ``con`` reads with ``base``, pair by pair (one scan)."""
    runs = base.runs
    known = pa.table(
        {
            "coin_id": pa.array([r.coin_id for r in runs], pa.string()),
            "source": pa.array([r.source for r in runs], pa.string()),
            "base_count": pa.array([r.end - r.start for r in runs], pa.int64()),
            "base_last": pa.array([base.observed[r.end - 1] for r in runs], pa.int64()),
            "base_fingerprint": pa.array([r.fingerprint for r in runs], pa.uint64()),
        }
    )
    con.register("layout_base", known)
    try:
        found = con.execute(
            f"""
            select q.coin_id, q.source, count(*), bit_xor(q.lineage), min(q.observed),
                count(*) filter (where q.observed > b.base_last),
                coalesce(bit_xor(q.lineage) filter (where q.observed > b.base_last), 0),
                any_value(b.base_count), any_value(b.base_last), any_value(b.base_fingerprint)
            from (
                select coin_id, source, epoch_us(observed_at) as observed, {_LINEAGE} as lineage
                from quotes
            ) as q
            left join layout_base as b using (coin_id, source)
            group by q.coin_id, q.source
            order by q.coin_id, q.source
            """
        ).fetchall()
    finally:
        con.unregister("layout_base")
    pairs: list[_PairRows] = []
    masked: list[tuple[str, str]] = []
    quotes = 0
    for coin, source, count, fingerprint, first, later, later_print, was, last, was_print in found:
        quotes += count
        if was is not None and count - later == was and fingerprint ^ later_print == was_print:
            if later:  # the base's rows, and some after them
                pairs.append(_PairRows(coin, source, later, later_print, after=last))
            continue
        # A pair the base does not hold, or whose rows there changed or went: all its rows.
        pairs.append(_PairRows(coin, source, count, fingerprint, after=first - 1))
        if was is not None:
            masked.append((coin, source))
    present = {(pair[0], pair[1]) for pair in found}
    masked += [(r.coin_id, r.source) for r in runs if (r.coin_id, r.source) not in present]
    return _Delta(pairs, sorted(masked), quotes)


def _write_delta(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    delta: _Delta,
    progress: Progress | None,
) -> int:
    wanted = pa.table(
        {
            "coin_id": pa.array([p.coin_id for p in delta.pairs], pa.string()),
            "source": pa.array([p.source for p in delta.pairs], pa.string()),
            "after": pa.array([p.after for p in delta.pairs], pa.int64()),
        }
    )
    # The earliest row wanted bounds the scan: loads append quotes in time order, so the row
    # groups before it are skipped by their zone maps (~0.05 s for a run's new quotes at 10M,
    # where a scan of every row takes ~0.7 s: a pair laid out again whole costs that).
    earliest = min((p.after for p in delta.pairs), default=0)
    con.register("layout_wanted", wanted)
    try:
        return _write_segment(
            con,
            directory,
            f"""(
                select q.* from quotes as q join layout_wanted as w using (coin_id, source)
                where q.observed_at > make_timestamptz({earliest}::bigint)
                    and epoch_us(q.observed_at) > w.after
            )""",
            delta.pairs,
            masked=delta.masked,
            progress=progress,
        )
    finally:
        con.unregister("layout_wanted")


def _manifests(root: Path) -> list[Path]:
    """The manifests in ``root``, newest first."""
    found = [p for p in root.glob("q*.json") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _usable_base(root: Path, version: int) -> tuple[Manifest, Segment] | None:
    """The base of the last snapshot's layout, when this one may be laid out as a delta of it."""
    for path in _manifests(root)[:1]:
        try:
            manifest = Manifest.read(path)
            if manifest.schema_version == version:
                return manifest, Segment(root / manifest.base)
        except LayoutError as exc:
            logger.info("the last quote layout is not used (%s): a new one is laid out", exc)
    return None


def _segment(
    con: duckdb.DuckDBPyConnection, root: Path, write: Callable[[Path], int]
) -> tuple[str, int]:
    """A new segment in ``root``, which ``write`` writes into the directory it is given (its
    sort spilling beside it): written, fsynced and renamed into place. Its name and rows."""
    name = f"seg-{uuid.uuid4().hex}"
    tmp, spill = root / f".{name}.tmp", root / f".{name}.spill"
    try:
        tmp.mkdir()
        spill.mkdir()
        quoted = str(spill).replace("'", "''")  # SET takes no bound parameters
        con.execute(f"set temp_directory = '{quoted}'")
        rows = write(tmp)
        shutil.rmtree(spill)
        for entry in os.listdir(tmp):
            fsync_path(tmp / entry)
        fsync_path(tmp)
        os.rename(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return name, rows


def _install(root: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` durably into place, then remove every other manifest and segment.
    A reader that has the old ones open keeps their mapped files."""
    target = root / f"{manifest.snapshot}.json"
    tmp = root / f".{target.name}.{uuid.uuid4().hex}.tmp"
    tmp.write_bytes(manifest.encode())
    fsync_path(tmp)
    os.rename(tmp, target)
    fsync_path(root)
    keep = {target.name, *manifest.segments}
    for entry in root.iterdir():
        if entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return target


def build_quote_layout(
    serving_path: Path, progress: Progress | None = None, *, base: bool = False
) -> LayoutBuilt:
    """Lay out the snapshot published at ``serving_path``: as a delta of the last snapshot's
    base when there is one, else (or with ``base``) as a new base. The caller keeps others from
    publishing meanwhile (the writer's lock).

    A segment is written into a temporary directory, fsynced and renamed into place, then the
    manifest likewise: a reader sees a whole layout or none. A kill leaves files the next build
    removes."""
    started = time.perf_counter()
    identity = file_identity(serving_path)
    root = layout_directory(serving_path)
    target = manifest_path(serving_path, identity)
    if target.exists() and not base:
        manifest = Manifest.read(target)
        segments = [Segment(root / name) for name in manifest.segments]
        rows = sum(s.rows for s in segments)  # an estimate is enough for a no-op
        return LayoutBuilt(target, rows, 0, "base", time.perf_counter() - started)
    root.mkdir(exist_ok=True)
    con = open_read_only(serving_path)
    try:
        if file_identity(serving_path) != identity:
            raise LayoutError(
                f"{serving_path} was published again while it was laid out; "
                "publish from one writer at a time"
            )
        con.execute(f"set memory_limit = '{get_store_settings().duckdb_memory_limit}'")
        version = current_version(con)
        last = None if base else _usable_base(root, version)
        delta = _delta(con, last[1]) if last is not None else None
        if delta is not None and delta.rows > DELTA_SHARE * delta.quotes:
            delta = None
        if delta is None and not target.exists():
            # Earlier snapshots' layouts go first: the disk holds one base at a time (a reader
            # that has one open keeps its mapped files). A new base of this snapshot is laid
            # out beside the one readers use.
            for entry in root.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if delta is not None and not delta.pairs and not delta.masked:
            # Nothing changed since the base: the snapshot is laid out by the base alone.
            assert last is not None
            manifest = Manifest(snapshot_name(identity), version, last[0].base, None)
            path = _install(root, manifest)
            return LayoutBuilt(path, delta.quotes, 0, "delta", time.perf_counter() - started)
        if delta is None:
            name, written = _segment(
                con, root, lambda tmp: write_quote_layout(con, tmp, progress=progress)
            )
            rows = written
        else:
            name, written = _segment(con, root, lambda tmp: _write_delta(con, tmp, delta, progress))
            rows = delta.quotes
    finally:
        con.close()
    kind: Literal["base", "delta"] = "base"
    manifest = Manifest(snapshot_name(identity), version, name, None)
    if last is not None and delta is not None:
        kind, manifest = "delta", Manifest(manifest.snapshot, version, last[0].base, name)
    path = _install(root, manifest)
    masked = len(delta.masked) if delta is not None else 0
    return LayoutBuilt(path, rows, written, kind, time.perf_counter() - started, masked)


def should_compact(built: LayoutBuilt) -> bool:
    """Whether to lay out a new base after ``built``: once its delta has grown, or when it
    masks pairs of the base. Each publish lays such a pair out again whole, from a scan of
    every quote (~0.7 s at 10M, where a delta of new quotes reads only the last row groups)."""
    return built.kind == "delta" and (
        built.masked > 0 or built.written >= max(COMPACT_MIN_ROWS, COMPACT_SHARE * built.rows)
    )


def build_after_publish(
    serving_path: Path, progress: Progress | None = None, *, base: bool = False
) -> LayoutBuilt | None:
    """:func:`build_quote_layout`, for a writer that has just published, then a new base when
    the delta has grown (:data:`COMPACT_SHARE`): a layout that cannot be built is said, not
    raised (the snapshot is published, and pages are read from it). None also when layouts are
    turned off (``KASPARRO_QUOTE_LAYOUT=false``).

    ``base`` after a rebuild or a republish: their quotes may differ from the last snapshot's
    with the same lineage (a rebuild transforms the raw zone again), which a delta cannot tell."""
    if not get_store_settings().quote_layout:
        shutil.rmtree(layout_directory(serving_path), ignore_errors=True)
        return None
    built = _said(serving_path, lambda: build_quote_layout(serving_path, progress, base=base))
    if built is not None:
        logger.info(
            "laid out %d of %d quotes (%s) in %.2fs",
            built.written,
            built.rows,
            built.kind,
            built.seconds,
        )
        if should_compact(built):
            # Readers have the delta meanwhile: the run waits, pages do not.
            again = _said(
                serving_path, lambda: build_quote_layout(serving_path, progress, base=True)
            )
            if again is not None:
                logger.info("laid out a new base of %d quotes in %.2fs", again.rows, again.seconds)
    return built


def _said(serving_path: Path, build: Callable[[], LayoutBuilt]) -> LayoutBuilt | None:
    try:
        return build()
    except (
        StoreError,
        duckdb.Error,
        OSError,
        pa.ArrowException,
        pl.exceptions.PolarsError,
        MemoryError,
    ) as exc:
        logger.warning(
            "the quote layout of %s was not built (%s: %s): pages are read from the snapshot, "
            "slower, until the next publish builds one; `kasparro rebuild` publishes again now",
            serving_path,
            type(exc).__name__,
            exc,
        )
        return None
