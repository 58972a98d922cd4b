"""Laying out a published snapshot's quotes (:mod:`store.quote_layout`), by its writer.

Laying out every quote (a base) takes a sort of them all and each rendered as JSON: ~23 s at 10M
quotes on two cores, ten times what publishing may take (2 s per GB). After a publish the writer
lays out only what changed since the base, as a delta: each (coin, source) pair's rows is told
apart by a fingerprint of its rows' lineage (``observed_at``, ``run_id``, ``raw_file``,
``raw_record``: a load that writes a quote writes its own lineage, so a quote that changed has
other lineage). The base names the runs whose quotes it holds; the others are **fresh**. One scan
of the snapshot fingerprints each pair's rows of earlier runs and of fresh runs, and finds for
each pair

* nothing, when its rows are the base's;
* its fresh rows, when the rows of earlier runs are the base's: appended after the base's last,
  or filled in among them;
* its fresh rows, and the base's rows they replace (those of their instants) masked, when the
  rows of earlier runs are the base's less those (quotes a later run corrected): the base's
  row lineage tells;
* all its rows, when its rows changed otherwise (moved to another coin, lost, or rewritten by a
  run the base already holds): the delta holds them all and masks the base's;
* none, for a pair that is gone: the delta masks the base's.

Fresh rows are read by their run, which DuckDB checks in its scan before it reads their other
columns; only a pair laid out whole is read from a scan of every quote.

A delta grows with every publish after its base (each is laid out against the base, so a layout
is never more than two segments). The writer lays out a new base after publishing, while readers
read the base and delta, and swaps the snapshot's manifest, once the delta holds
:data:`COMPACT_SHARE` of the quotes (and at least :data:`COMPACT_MIN_ROWS`), or as soon as it
masks a whole pair, which every later publish would read from a scan of every quote again.
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl
import pyarrow as pa
from pyarrow import ipc

from store.connection import open_read_only
from store.errors import StoreError
from store.migrate import current_version
from store.quote_layout import (
    MASKED,
    MASKED_ROWS,
    OBSERVED,
    ORDER,
    ROWS,
    RUN_IDS,
    RUNS,
    LayoutError,
    Manifest,
    Run,
    Segment,
    layout_directory,
    manifest_path,
    read_run_ids,
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
    masked_rows: int = 0
    """Rows of the base a delta replaces (of pairs whose other rows are as they were)."""


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


def _as_json(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pl.Series, pl.Series]:
    """Each quote as the JSON object a page lists, its keys :data:`QUOTE_FIELDS` in order:
    money as exact text without trailing zeros (as :func:`store.queries.money_text` renders
    it), times as RFC 3339 in UTC with microseconds only when there are some (as the API's
    encoder writes them), a number that is not finite as null. polars renders them ~20 times
    faster than DuckDB's casts, and a page is then its rows' bytes joined. With the rows'
    ``observed_at`` in microseconds and their ``lineage``."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    fields = [_json_field(name, frame.schema[name]).alias(name) for name in QUOTE_FIELDS]
    rows = frame.select(pl.struct(fields).struct.json_encode().alias("quote"))
    (encoded,) = rows.to_arrow().to_batches(max_chunksize=None)
    # Computed into a buffer of its own: a view of the batch's column would keep the whole
    # batch's memory (~90 MB per 500k rows) until the last batch is written.
    times = frame.get_column("observed_at").dt.epoch("us") + 0
    return encoded, times, frame.get_column("lineage") + 0


@dataclass(frozen=True)
class _PairRows:
    """A (coin, source) pair's rows a segment holds: all, those after ``after`` (µs), or with
    ``fresh`` those the delta's fresh runs wrote."""

    coin_id: str
    source: str
    count: int
    fingerprint: int
    after: int = -(2**63)
    fresh: bool = False


def _pair_table(pairs: Sequence[_PairRows], *, after: bool = False) -> pa.Table:
    """``pairs`` as a table to join ``quotes`` with: their coin and source, and their ``after``."""
    columns = {
        "coin_id": pa.array([pair.coin_id for pair in pairs], pa.string()),
        "source": pa.array([pair.source for pair in pairs], pa.string()),
    }
    if after:
        columns["after"] = pa.array([pair.after for pair in pairs], pa.int64())
    return pa.table(columns)


def _rows_after(table: str, pairs: Sequence[_PairRows]) -> str:
    """The ``from`` of the quotes (``q``) of the pairs registered as ``table`` after each one's
    ``after``. The earliest bounds the scan: loads append quotes in time order, so the row groups
    before it are skipped by their zone maps (~0.05 s for a run's new quotes at 10M, where a
    scan of every row takes ~0.7 s)."""
    earliest = min(pair.after for pair in pairs)
    return f"""
        from quotes as q join {table} as w using (coin_id, source)
        where q.observed_at > make_timestamptz({earliest}::bigint)
            and epoch_us(q.observed_at) > w.after
    """


def _write_segment(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    relation: str,
    pairs: list[_PairRows],
    *,
    parameters: dict[str, object] | None = None,
    run_ids: list[str] | None = None,
    masked: list[tuple[str, str]] | None = None,
    masked_rows: list[int] | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the quotes of ``relation`` (those of ``pairs``, sorted by pair) as a segment
    into ``directory`` (new, empty); the rows."""
    reader = con.execute(
        f"select {', '.join(QUOTE_FIELDS)}, {_LINEAGE} as lineage from {relation} "
        "order by coin_id, source, observed_at",
        parameters,
    ).to_arrow_reader(BATCH_ROWS)
    observed: list[pl.Series] = []
    lineages: list[pl.Series] = []
    total, done = sum(pair.count for pair in pairs), 0
    with pa.OSFile(str(directory / ROWS), "wb") as sink:
        writer: ipc.RecordBatchFileWriter | None = None

        def write(encoding: Future[tuple[pa.RecordBatch, pl.Series, pl.Series]]) -> None:
            nonlocal writer, done
            encoded, times, lineage = encoding.result()
            observed.append(times)
            lineages.append(lineage)
            if writer is None:
                writer = ipc.new_file(sink, encoded.schema)
            writer.write_batch(encoded)
            done += encoded.num_rows
            if progress is not None:
                progress(done, total)

        # Batches are rendered on a thread of their own while DuckDB hands over the next ones
        # (both release the GIL), a few at a time, written in order.
        with ThreadPoolExecutor(1, thread_name_prefix="layout-json") as renderer:
            pending: deque[Future[tuple[pa.RecordBatch, pl.Series, pl.Series]]] = deque()
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
    lineage = pl.concat(lineages, rechunk=True) if lineages else pl.Series("l", [], pl.UInt64)
    _write(
        directory / OBSERVED,
        pa.table({"observed_us": times.to_arrow(), "lineage": lineage.to_arrow()}),
    )
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
    if run_ids is not None:
        _write(directory / RUN_IDS, pa.table({"run_id": pa.array(run_ids, pa.string())}))
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
    if masked_rows:
        _write(directory / MASKED_ROWS, pa.table({"position": pa.array(masked_rows, pa.int64())}))
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
    run_ids = [run for (run,) in con.execute("select distinct run_id from quotes").fetchall()]
    return _write_segment(con, directory, "quotes", pairs, run_ids=run_ids, progress=progress)


@dataclass(frozen=True)
class _Delta:
    """What a snapshot holds that its base does not: :class:`_PairRows` for the delta, and the
    base's pairs and rows it masks."""

    pairs: list[_PairRows]
    masked: list[tuple[str, str]]
    masked_rows: list[int]
    fresh_runs: list[str]
    """The runs that wrote quotes since the base."""
    quotes: int
    """Every quote of the snapshot."""

    @property
    def rows(self) -> int:
        return sum(pair.count for pair in self.pairs)


@dataclass(frozen=True)
class _Rewritten:
    """A pair of the base that fresh runs wrote rows of, among (or instead of) the base's."""

    was: Run
    """Its rows in the base."""
    kept: int
    """Its rows of earlier runs, and their fingerprint."""
    kept_print: int
    fresh: _PairRows
    """Its rows of fresh runs: the delta's, when the base's other rows are as they were."""
    whole: _PairRows
    """Else all its rows."""


def _fresh(run_id: str = "run_id") -> str:
    return f"list_contains($fresh_runs::varchar[], {run_id})"


_FRESH = _fresh()
"""Whether a quote is of a fresh run. DuckDB checks it in its scan and reads the other columns
only of the vectors where a row matches: ~0.1 s for the rows of a few runs among 10M quotes,
where ``run_id in (...)`` is checked after every column is read (~0.6-0.9 s)."""


def _delta(con: duckdb.DuckDBPyConnection, base: Segment, base_runs: frozenset[str]) -> _Delta:
    """Compare the snapshot ``con`` reads with ``base`` (whose quotes ``base_runs`` wrote),
    pair by pair: one scan of every quote, and one of the rows fresh runs wrote among the
    base's."""
    present = con.execute("select distinct run_id from quotes").fetchall()
    fresh_runs = sorted({run for (run,) in present} - base_runs)
    found = con.execute(
        f"""
        select coin_id, source, count(*), bit_xor(lineage), min(observed),
            count(*) filter (where fresh), coalesce(bit_xor(lineage) filter (where fresh), 0),
            min(observed) filter (where fresh)
        from (
            select coin_id, source, epoch_us(observed_at) as observed,
                {_LINEAGE} as lineage, {_FRESH} as fresh
            from quotes
        )
        group by coin_id, source
        """,
        {"fresh_runs": fresh_runs},
    ).fetchall()
    runs = {(run.coin_id, run.source): run for run in base.runs}
    pairs: list[_PairRows] = []
    masked: list[tuple[str, str]] = []
    rewritten: dict[tuple[str, str], _Rewritten] = {}
    unsure: list[tuple[Any, ...]] = []
    for row in found:
        coin, source, count, fingerprint, first, fresh, fresh_print, fresh_first = row
        was = runs.get((coin, source))
        kept, kept_print = count - fresh, fingerprint ^ fresh_print
        if was is not None and kept == was.end - was.start and kept_print == was.fingerprint:
            if fresh_first is None:
                continue  # as the base has it
            last = base.observed[was.end - 1]
            if fresh_first > last:  # the base's rows, and fresh ones after them
                pairs.append(_PairRows(coin, source, fresh, fresh_print, fresh=True))
                continue
        unsure.append(row)
    grown = _grown_after_the_base(con, base, runs, unsure)
    for row in unsure:
        coin, source, count, fingerprint, first, fresh, fresh_print, _ = row
        was = runs.get((coin, source))
        whole = _PairRows(coin, source, count, fingerprint, after=first - 1)
        fresh_rows = _PairRows(coin, source, fresh, fresh_print, fresh=True)
        if (coin, source) in grown:
            pairs.append(grown[coin, source])
        elif was is None:  # a new pair: of fresh runs alone, or laid out from its first row
            pairs.append(fresh_rows if fresh == count else whole)
        elif fresh:  # fresh rows filled in among the base's, or rewriting some of them?
            kept, kept_print = count - fresh, fingerprint ^ fresh_print
            rewritten[coin, source] = _Rewritten(was, kept, kept_print, fresh_rows, whole)
        else:  # its rows changed, moved or went otherwise (a merge of coins, say)
            pairs.append(whole)
            masked.append((coin, source))
    replaced = _replaced(con, base, fresh_runs, rewritten) if rewritten else {}
    masked_rows: list[int] = []
    for key, pair in rewritten.items():
        rows = replaced.get(key)
        if rows is None:
            pairs.append(pair.whole)
            masked.append(key)
        else:
            pairs.append(pair.fresh)
            masked_rows += rows
    present_pairs = {(row[0], row[1]) for row in found}
    masked += [key for key in runs if key not in present_pairs]
    pairs.sort(key=lambda pair: (pair.coin_id, pair.source))
    quotes = sum(row[2] for row in found)
    return _Delta(pairs, sorted(masked), sorted(masked_rows), fresh_runs, quotes)


def _grown_after_the_base(
    con: duckdb.DuckDBPyConnection,
    base: Segment,
    runs: dict[tuple[str, str], Run],
    unsure: list[tuple[Any, ...]],
) -> dict[tuple[str, str], _PairRows]:
    """The pairs of ``unsure`` (:func:`_delta`'s rows that its runs did not tell) that hold the
    base's rows and, after its last, rows of runs the base names: a run that published, was laid
    out into a new base, and was then retried (a retry resumes its run id). Their rows after the
    base's are the delta's, as a fresh run's would be.

    Only pairs that grew and that fresh runs wrote no earlier rows of are checked, with one scan
    bounded by the earliest of their last instants (the row groups before it are skipped)."""
    candidates: list[_PairRows] = []  # each with all its rows, after the base's last
    for coin, source, count, fingerprint, _, _, _, fresh_first in unsure:
        was = runs.get((coin, source))
        if was is None or count <= was.end - was.start:
            continue
        last = base.observed[was.end - 1]
        if fresh_first is None or fresh_first > last:
            candidates.append(_PairRows(coin, source, count, fingerprint, after=last))
    if not candidates:
        return {}
    con.register("layout_grown", _pair_table(candidates, after=True))
    try:
        after = con.execute(
            f"""
            select q.coin_id, q.source, count(*), bit_xor({_LINEAGE})
            {_rows_after("layout_grown", candidates)}
            group by q.coin_id, q.source
            """
        ).fetchall()
    finally:
        con.unregister("layout_grown")
    later = {(coin, source): (count, print_) for coin, source, count, print_ in after}
    grown: dict[tuple[str, str], _PairRows] = {}
    for pair in candidates:
        was = runs[pair.coin_id, pair.source]
        added, added_print = later.get((pair.coin_id, pair.source), (0, 0))
        if (pair.count - added, pair.fingerprint ^ added_print) == (
            was.end - was.start,
            was.fingerprint,
        ):
            grown[pair.coin_id, pair.source] = _PairRows(
                pair.coin_id, pair.source, added, added_print, after=pair.after
            )
    return grown


def _replaced(
    con: duckdb.DuckDBPyConnection,
    base: Segment,
    fresh_runs: list[str],
    rewritten: dict[tuple[str, str], _Rewritten],
) -> dict[tuple[str, str], list[int]]:
    """For each pair of ``rewritten`` whose rows the fresh runs rewrote or filled in, leaving
    the base's other rows as they were, the base's rows they replace (those of their
    instants). A pair whose other rows changed too is not named: it is laid out whole.

    The rows of earlier runs must be the base's rows less the replaced ones, which the base's
    row lineage tells."""
    con.register("layout_rewritten", _pair_table([pair.fresh for pair in rewritten.values()]))
    try:
        rows = con.execute(
            f"""
            select coin_id, source, list(epoch_us(observed_at) order by observed_at)
            from quotes semi join layout_rewritten using (coin_id, source)
            where {_FRESH}
            group by coin_id, source
            """,
            {"fresh_runs": fresh_runs},
        ).fetchall()
    finally:
        con.unregister("layout_rewritten")
    observed, lineage = base.observed, base.lineage
    replaced: dict[tuple[str, str], list[int]] = {}
    for coin, source, moments in rows:
        pair = rewritten[coin, source]
        run = pair.was
        positions = []
        for moment in moments:
            at = bisect.bisect_left(observed, moment, run.start, run.end)
            if at < run.end and observed[at] == moment:
                positions.append(at)
        remaining = run.fingerprint
        for at in positions:
            remaining ^= lineage[at]
        if pair.kept == run.end - run.start - len(positions) and pair.kept_print == remaining:
            replaced[coin, source] = positions
    return replaced


def _write_delta(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    delta: _Delta,
    progress: Progress | None,
) -> int:
    """The delta's rows: those of fresh runs, found by their run (appended to the base's
    pairs, or among their rows, or new pairs); and those after a time (:func:`_rows_after`), of
    pairs laid out whole (a scan of every row from the first) or grown by a run the base
    names."""
    timed = [pair for pair in delta.pairs if not pair.fresh]
    fresh = [pair for pair in delta.pairs if pair.fresh]
    parts = ["select * from quotes where false"]
    if timed:
        parts.append(f"select q.* {_rows_after('layout_timed', timed)}")
    if fresh:
        parts.append(
            f"""
            select q.* from quotes as q semi join layout_fresh as f using (coin_id, source)
            where {_fresh("q.run_id")}
            """
        )
    con.register("layout_timed", _pair_table(timed, after=True))
    con.register("layout_fresh", _pair_table(fresh))
    try:
        return _write_segment(
            con,
            directory,
            "(" + " union all ".join(parts) + ")",
            delta.pairs,
            parameters={"fresh_runs": delta.fresh_runs} if fresh else None,
            masked=delta.masked,
            masked_rows=delta.masked_rows,
            progress=progress,
        )
    finally:
        con.unregister("layout_timed")
        con.unregister("layout_fresh")


def _manifests(root: Path) -> list[Path]:
    """The manifests in ``root``, newest first."""
    found = [p for p in root.glob("q*.json") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


@dataclass(frozen=True)
class _Base:
    manifest: Manifest
    segment: Segment
    run_ids: frozenset[str]
    """The runs whose quotes it holds."""


def _usable_base(root: Path, version: int) -> _Base | None:
    """The base of the last snapshot's layout, when this one may be laid out as a delta of it."""
    for path in _manifests(root)[:1]:
        try:
            manifest = Manifest.read(path)
            if manifest.schema_version == version:
                segment = Segment(root / manifest.base)
                run_ids = read_run_ids(segment.directory)
                if run_ids is None:
                    raise LayoutError(f"{segment.directory} does not name the runs it holds")
                return _Base(manifest, segment, run_ids)
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
        delta = _delta(con, last.segment, last.run_ids) if last is not None else None
        if delta is not None and delta.rows > DELTA_SHARE * delta.quotes:
            delta = None
        if delta is None and not target.exists():
            # Earlier snapshots' layouts go first: the disk holds one base at a time (a reader
            # that has one open keeps its mapped files). A new base of this snapshot is laid
            # out beside the one readers use.
            for entry in root.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if delta is not None and not (delta.pairs or delta.masked or delta.masked_rows):
            # Nothing changed since the base: the snapshot is laid out by the base alone.
            assert last is not None
            manifest = Manifest(snapshot_name(identity), version, last.manifest.base, None)
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
        kind, manifest = "delta", Manifest(manifest.snapshot, version, last.manifest.base, name)
    path = _install(root, manifest)
    masked = len(delta.masked) if delta is not None else 0
    masked_rows = len(delta.masked_rows) if delta is not None else 0
    return LayoutBuilt(
        path, rows, written, kind, time.perf_counter() - started, masked, masked_rows
    )


def should_compact(built: LayoutBuilt) -> bool:
    """Whether to lay out a new base after ``built``: once its delta has grown, or when it
    masks whole pairs of the base. Each publish lays such a pair out again whole, from a scan
    of every quote (~0.7 s at 10M, where fresh rows are read by their run in ~0.1 s). Rows it
    masks (quotes corrected by later runs) cost a page little: they wait for the next base."""
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
