"""Quotes laid out for pages: a copy of a snapshot's quotes that a page reads rows of together.

DuckDB stores ``quotes`` in columns of compressed row groups, in the order loads appended them
(time, roughly). A coin's page gathers rows that lie one per capture, and each costs a block of
every column decompressed: 3-10 ms a page at 10M quotes, a few hundred pages a second at best
(docs/benchmarks.md). A layout holds the same rows as uncompressed Arrow IPC files, memory-mapped
by every reader (the kernel's page cache holds them once for all processes).

A **segment** is a directory ``seg-<id>/`` of these files:

* ``rows.arrow``: each quote as the JSON object a page lists, ordered by (coin_id, source,
  observed_at): each (coin, source) pair is a run of rows in time order, so a coin's page is a
  slice of its runs, merged, and a page's body is its rows' bytes joined.
* ``observed.arrow``: those rows' ``observed_at`` in microseconds, which runs are searched in,
  and a hash of each row's lineage (the writer's, to tell which rows a later snapshot replaced).
* ``runs.arrow``: each (coin_id, source) pair's first row, the row after its last, and a
  fingerprint of its rows' lineage (the writer's way to tell what a later snapshot changed).
* ``order.arrow``: every row's position in the page order (observed_at, coin_id, source), with
  its ``observed_at``: a newest-first page is a slice of it.

A snapshot's layout is a **base** segment, built from every quote of some snapshot, and at most
one **delta** segment: the quotes a later snapshot added or changed since that base. A base also
names the runs its quotes came from (``run_ids.arrow``). For each pair a delta holds one of

* the pair's rows after the base's last one (new quotes appended);
* the rows later runs wrote (a quote corrected, or one filled in among the base's):
  ``masked_rows.arrow`` lists the base's rows they replace, which are not read, and the pair's
  pages merge its base rows and delta rows in time order;
* all of the pair's rows: ``masked.arrow`` names the pair so that none of the base's rows of it
  are read (changed, moved or gone).

The writer lays out a delta in the time a publish allows (:mod:`store.quote_layout_build`), and a
base now and then.

A layout belongs to one published snapshot file: its **manifest** ``q3-<identity>.json`` names
the file (inode, mtime, size: :func:`store.snapshot.file_identity`) and its segments, and a reader
uses a layout only when it names the snapshot file it reads. Until the manifest is there, pages
are read from the snapshot (:mod:`store.quote_pages`).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pyarrow import ipc

from store.errors import StoreError
from store.quote_pages import Page, QuoteFilter
from store.snapshot import FileIdentity

ROWS, OBSERVED, RUNS, ORDER = "rows.arrow", "observed.arrow", "runs.arrow", "order.arrow"
MASKED, MASKED_ROWS, RUN_IDS = "masked.arrow", "masked_rows.arrow", "run_ids.arrow"
FORMAT = "q3"
"""Named in every manifest: a Kasparro that writes its files otherwise changes it, and builds its
own layout of a snapshot an older one laid out."""
_FIX = "`kasparro rebuild` publishes the snapshot again and lays it out anew"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class LayoutError(StoreError):
    """A layout's files are missing, unreadable or do not match each other."""


def layout_directory(serving_path: Path) -> Path:
    """Where the layout of the snapshot at ``serving_path`` lies: its segments and manifest."""
    return serving_path.with_name(serving_path.name + ".layout")


def snapshot_name(identity: FileIdentity) -> str:
    """The name of the layout of the snapshot file whose identity is ``identity``."""
    return "-".join([FORMAT, *(str(part) for part in identity)])


def manifest_path(serving_path: Path, identity: FileIdentity) -> Path:
    return layout_directory(serving_path) / f"{snapshot_name(identity)}.json"


@dataclass(frozen=True)
class Manifest:
    """Which segments lay out one snapshot file's quotes."""

    snapshot: str
    """The snapshot file's identity, as :func:`snapshot_name` spells it."""
    schema_version: int
    """The warehouse schema the quotes were read under: a migration may rewrite them."""
    base: str
    delta: str | None

    def encode(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            fields = json.loads(path.read_bytes())
            manifest = cls(**fields)
        except (OSError, ValueError, TypeError) as exc:
            raise LayoutError(f"{path} is unreadable ({exc}); " + _FIX) from exc
        if manifest.snapshot != path.stem:
            raise LayoutError(f"{path} names another snapshot; " + _FIX)
        return manifest

    @property
    def segments(self) -> tuple[str, ...]:
        return (self.base,) if self.delta is None else (self.base, self.delta)


def microseconds(moment: datetime) -> int:
    if moment.tzinfo is None:  # a time without a zone is UTC, as the warehouse reads it
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class Run:
    """A (coin, source) pair's rows in one segment: ``start`` to ``end``, in time order."""

    coin_id: str
    source: str
    start: int
    end: int
    fingerprint: int


def _view(array: pa.ChunkedArray, code: Literal["q", "Q", "I"]) -> Sequence[int]:
    """The values of a one-chunk numeric column without nulls, indexable at no cost."""
    if array.num_chunks == 0 or len(array) == 0:
        return ()
    if array.num_chunks != 1:
        raise LayoutError(f"an index of the layout has {array.num_chunks} chunks, not one; " + _FIX)
    chunk = array.chunk(0)
    data = chunk.buffers()[1]
    assert data is not None
    view: memoryview[int] = memoryview(data).cast(code)
    return view[chunk.offset : chunk.offset + len(chunk)]


def _read(path: Path) -> pa.Table:
    try:
        return ipc.open_file(pa.memory_map(str(path))).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise LayoutError(f"{path} is unreadable ({exc}); " + _FIX) from exc


def _column(path: Path, name: str) -> pa.ChunkedArray:
    table = _read(path)
    if name not in table.column_names:
        raise LayoutError(f"{path} has no column {name!r}; " + _FIX)
    return table.column(name)


def read_runs(directory: Path) -> list[Run]:
    return [Run(**run) for run in _read(directory / RUNS).to_pylist()]


def read_run_ids(directory: Path) -> frozenset[str] | None:
    """The runs whose quotes the base segment in ``directory`` holds; None for a segment that
    does not name them (a delta)."""
    if not (directory / RUN_IDS).exists():
        return None
    return frozenset(_column(directory / RUN_IDS, "run_id").to_pylist())


@dataclass(frozen=True)
class _Window:
    """A filter's times and cursor in microseconds, as the layout's indexes hold them: worked
    out once a page, not once for each run it reads."""

    start: int | None
    end: int | None
    after: tuple[int, str, str] | None
    descending: bool

    @classmethod
    def of(cls, flt: QuoteFilter) -> _Window:
        after = None
        if flt.after is not None:
            at, coin_id, source = flt.after
            after = (microseconds(at), coin_id, source)
        return cls(
            microseconds(flt.start) if flt.start is not None else None,
            microseconds(flt.end) if flt.end is not None else None,
            after,
            flt.descending,
        )


class Segment:
    """One segment's files, memory-mapped."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        rows = _read(directory / ROWS)
        if rows.column_names != ["quote"]:
            raise LayoutError(f"{directory / ROWS} holds other columns; " + _FIX)
        self._chunks = [_Strings(chunk) for chunk in rows.column("quote").chunks]
        self._chunk_starts = [0, *itertools.accumulate(c.length for c in self._chunks)]
        self.observed = _view(_column(directory / OBSERVED, "observed_us"), "q")
        self.lineage = _view(_column(directory / OBSERVED, "lineage"), "Q")
        self.order_positions = _view(_column(directory / ORDER, "position"), "I")
        self.order_observed = _view(_column(directory / ORDER, "observed_us"), "q")
        self.runs = read_runs(directory)
        self._run_starts = [run.start for run in self.runs]
        self.masked: frozenset[tuple[str, str]] = frozenset()
        if (directory / MASKED).exists():
            masked = _read(directory / MASKED)
            self.masked = frozenset(
                zip(
                    masked.column("coin_id").to_pylist(),
                    masked.column("source").to_pylist(),
                    strict=True,
                )
            )
        self.masked_rows: Sequence[int] = ()
        """The base's rows this delta replaces, ascending."""
        if (directory / MASKED_ROWS).exists():
            self.masked_rows = _view(_column(directory / MASKED_ROWS, "position"), "q")
        ends = self.runs[-1].end if self.runs else 0
        counts = (len(self.observed), len(self.lineage), len(self.order_positions), ends)
        if any(count != rows.num_rows for count in counts):
            raise LayoutError(f"the files of {directory} do not match; " + _FIX)

    @property
    def rows(self) -> int:
        return self._chunk_starts[-1]

    def run_index(self, position: int) -> int:
        return bisect.bisect_right(self._run_starts, position) - 1

    def coin_source(self, position: int) -> tuple[str, str]:
        run = self.runs[self.run_index(position)]
        return run.coin_id, run.source

    def key(self, position: int) -> tuple[datetime, str, str]:
        """The (observed_at, coin_id, source) of the row at ``position``: a cursor."""
        return (_EPOCH + _MICROSECOND * self.observed[position], *self.coin_source(position))

    def bounds(self, window: _Window, run: Run) -> tuple[int, int]:
        """The rows of ``run`` within the window's times and after its cursor. A run wholly
        inside or outside a bound is told by its first or last row, without a search: a page
        of a symbol of 125 coins asks this of ~750 runs."""
        observed, lo, hi = self.observed, run.start, run.end
        if lo == hi:
            return lo, hi
        if window.start is not None and observed[lo] < window.start:
            lo = bisect.bisect_left(observed, window.start, lo, hi)
        if window.end is not None and lo < hi and observed[hi - 1] >= window.end:
            hi = bisect.bisect_left(observed, window.end, lo, hi)
        if window.after is not None and lo < hi:
            moment, coin_id, source = window.after
            if window.descending:
                if observed[lo] > moment:
                    hi = lo
                elif observed[hi - 1] >= moment:
                    # Keys are (observed_at, coin_id, source); the run's coin and source are
                    # fixed, so its rows at the cursor's instant go before the cursor or after
                    # it all together.
                    before_cursor = (run.coin_id, run.source) < (coin_id, source)
                    search = bisect.bisect_right if before_cursor else bisect.bisect_left
                    hi = search(observed, moment, lo, hi)
            elif observed[hi - 1] < moment:
                lo = hi
            elif observed[lo] <= moment:
                after_cursor = (run.coin_id, run.source) > (coin_id, source)
                search = bisect.bisect_left if after_cursor else bisect.bisect_right
                lo = search(observed, moment, lo, hi)
        return lo, max(lo, hi)

    def time_bounds(self, window: _Window) -> tuple[int, int]:
        """The span of :attr:`order_positions` within the window's times and after its
        cursor."""
        observed, positions = self.order_observed, self.order_positions
        lo, hi = 0, len(positions)
        if window.start is not None:
            lo = bisect.bisect_left(observed, window.start, lo, hi)
        if window.end is not None:
            hi = max(lo, bisect.bisect_left(observed, window.end, lo, hi))
        if window.after is not None:
            moment, coin_id, source = window.after
            # The cursor's instant first, then its (coin, source) among that instant's rows.
            first = bisect.bisect_left(observed, moment, lo, hi)
            last = bisect.bisect_right(observed, moment, first, hi)
            if window.descending:
                hi = bisect.bisect_left(
                    positions, (coin_id, source), first, last, key=self.coin_source
                )
            else:
                lo = bisect.bisect_right(
                    positions, (coin_id, source), first, last, key=self.coin_source
                )
        return lo, max(lo, hi)

    def jsons(self, positions: Sequence[int]) -> list[memoryview]:
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


class _Strings:
    """A chunk of a string column read in place: the bytes of a value are a view of the
    mapped file (``take`` costs ~35 us a chunk, 60% of a page that gathers rows)."""

    def __init__(self, chunk: pa.Array) -> None:
        if chunk.null_count:
            raise LayoutError("a quote's JSON is missing; " + _FIX)
        code: Literal["q", "i"] = "q" if pa.types.is_large_string(chunk.type) else "i"
        _, offsets, data = chunk.buffers()
        self.offsets: memoryview[int] = memoryview(offsets).cast(code)[chunk.offset :]
        self.data = memoryview(data) if data is not None else memoryview(b"")
        self.length = len(chunk)


@dataclass(frozen=True)
class _Piece:
    """Some of a (coin, source) pair's rows: ``segment``'s ``run``, but for ``holes``."""

    segment: int
    run: Run
    holes: tuple[int, ...] = ()
    """The run's rows a delta replaces, ascending: not read."""

    def spans(self, segments: Sequence[Segment], window: _Window) -> list[tuple[int, int, int]]:
        """Its rows within the window, as (segment, start, end) in time order: one span, or
        several around holes."""
        lo, hi = segments[self.segment].bounds(window, self.run)
        if lo >= hi:
            return []
        if not self.holes:
            return [(self.segment, lo, hi)]
        found = []
        holes = self.holes
        for hole in holes[bisect.bisect_left(holes, lo) : bisect.bisect_left(holes, hi)]:
            if lo < hole:
                found.append((self.segment, lo, hole))
            lo = hole + 1
        if lo < hi:
            found.append((self.segment, lo, hi))
        return found


@dataclass(frozen=True)
class _Pair:
    coin_id: str
    source: str
    streams: tuple[tuple[_Piece, ...], ...]
    """Its pieces, each stream's in time order, the streams' rows interleaved: one stream
    when a delta's rows of the pair all come after the base's (appended), else the base's and
    the delta's, merged by time."""


Picked = list[tuple[int, int]]
"""Rows of a page, as (segment, position)."""


@dataclass(frozen=True)
class _Slice:
    """Rows of a page that lie together in one segment: the common page, joined at once."""

    segment: int
    positions: range


class QuoteLayout:
    """A snapshot's layout, memory-mapped, answering the pages it can (:meth:`read_page`)."""

    def __init__(self, segments: Sequence[Segment], snapshot: str = "") -> None:
        if not 1 <= len(segments) <= 2:
            raise LayoutError("a layout is a base segment and at most one delta; " + _FIX)
        self.snapshot = snapshot
        """The identity of the snapshot file it lays out, as :func:`snapshot_name` spells it."""
        self.directory = segments[0].directory.parent
        """Where its segments lie."""
        self._segments = list(segments)
        base = segments[0]
        masked = segments[1].masked if len(segments) == 2 else frozenset()
        masked_runs = frozenset(
            i for i, run in enumerate(base.runs) if (run.coin_id, run.source) in masked
        )
        holes: dict[int, list[int]] = {}
        previous = -1
        for position in segments[1].masked_rows if len(segments) == 2 else ():
            if not previous < position < base.rows:
                raise LayoutError(
                    f"the delta masks row {position} (after row {previous}) of a base of "
                    f"{base.rows} rows, where masked rows ascend within it; " + _FIX
                )
            holes.setdefault(base.run_index(position), []).append(position)
            previous = position
        self._masked_rows: bytearray | None = None
        """Whether each of the base's rows is masked, for pages in time order (none while a
        delta masks nothing, as after most publishes)."""
        if masked_runs or holes:
            self._masked_rows = bytearray(base.rows)
            for number in masked_runs:
                run = base.runs[number]
                self._masked_rows[run.start : run.end] = b"\x01" * (run.end - run.start)
            for found in holes.values():
                for position in found:
                    self._masked_rows[position] = 1
        pieces: dict[tuple[str, str], list[_Piece]] = {}
        for index, segment in enumerate(segments):
            for number, run in enumerate(segment.runs):
                if index == 0 and number in masked_runs:
                    continue
                piece = _Piece(index, run, tuple(holes.get(number, ())) if index == 0 else ())
                pieces.setdefault((run.coin_id, run.source), []).append(piece)
        self._pairs: dict[str, list[_Pair]] = {}
        self.quotes = 0
        for (coin_id, source), its in pieces.items():
            self._pairs.setdefault(coin_id, []).append(
                _Pair(coin_id, source, _streams(segments, its))
            )
            self.quotes += sum(p.run.end - p.run.start - len(p.holes) for p in its)

    @classmethod
    def open(cls, root: Path, manifest: Manifest) -> QuoteLayout:
        segments = [Segment(root / name) for name in manifest.segments]
        return cls(segments, manifest.snapshot)

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Its segments' directory names, base first."""
        return tuple(segment.directory.name for segment in self._segments)

    def read_page(
        self, flt: QuoteFilter, coin_ids: list[str] | None, *, limit: int, offset: int
    ) -> Page | None:
        """The page :func:`store.quote_pages.read_page` gives for ``flt`` (its coins resolved
        to ``coin_ids``, None for any), whole; None when this layout does not serve it: a
        source's quotes with no coin chosen lie among every other source's in time order."""
        need = offset + limit
        window = _Window.of(flt)
        picked: _Slice | Picked
        if coin_ids is None:
            if flt.source is not None:
                return None
            picked = self._time_page(window, need)
        else:
            pairs = [
                pair
                for coin in coin_ids
                for pair in self._pairs.get(coin, ())
                if flt.source is None or pair.source == flt.source
            ]
            picked = self._pairs_page(pairs, window, need)
        if isinstance(picked, _Slice):
            segment = self._segments[picked.segment]
            positions = picked.positions[offset:]
            encoded = segment.jsons(positions)
            last = segment.key(positions[-1]) if len(positions) == limit else None
        else:
            page = picked[offset:]
            encoded = self._jsons(page)
            last = self._segments[page[-1][0]].key(page[-1][1]) if len(page) == limit else None
        return Page([], None, limit, encoded=encoded, last_key=last)

    def _pairs_page(self, pairs: list[_Pair], window: _Window, need: int) -> _Slice | Picked:
        segments, descending = self._segments, window.descending
        bounded = []
        for pair in pairs:
            for stream in pair.streams:
                spans = [span for piece in stream for span in piece.spans(segments, window)]
                if spans:
                    bounded.append((pair, spans[::-1] if descending else spans))
        if len(bounded) == 1 and (
            len(bounded[0][1]) == 1 or bounded[0][1][0][2] - bounded[0][1][0][1] >= need
        ):  # one stream, and the page within one of its spans (the base's, or the delta's)
            index, lo, hi = bounded[0][1][0]
            if descending:
                return _Slice(index, range(hi - 1, max(lo, hi - need) - 1, -1))
            return _Slice(index, range(lo, min(hi, lo + need)))
        return _merged_streams(segments, bounded, descending, need)

    def _time_page(self, window: _Window, need: int) -> Picked:
        if len(self._segments) == 1:
            segment = self._segments[0]
            lo, hi = segment.time_bounds(window)
            positions = segment.order_positions
            if window.descending:
                return [(0, positions[i]) for i in range(hi - 1, max(lo, hi - need) - 1, -1)]
            return [(0, positions[i]) for i in range(lo, min(hi, lo + need))]
        base, delta = self._segments
        return _galloped(base, delta, window, need, self._masked_rows)

    def _jsons(self, picked: Picked) -> list[memoryview]:
        segments = self._segments
        found: list[memoryview] = []
        # A page's rows come from the base or the delta in stretches (newest first: the
        # delta's hours, then the base's): each stretch is joined at once.
        for index, stretch in itertools.groupby(picked, key=operator.itemgetter(0)):
            found += segments[index].jsons([position for _, position in stretch])
        return found


def _streams(segments: Sequence[Segment], pieces: list[_Piece]) -> tuple[tuple[_Piece, ...], ...]:
    """A pair's pieces (its base's, then its delta's) as streams of rows in time order: one
    when the delta's rows all come after the base's, else one a piece."""
    if len(pieces) == 2:
        base, delta = pieces
        appended = (
            not base.holes
            and segments[1].observed[delta.run.start] > segments[0].observed[base.run.end - 1]
        )
        if not appended:
            return ((base,), (delta,))
    return (tuple(pieces),)


def _galloped(
    base: Segment, delta: Segment, window: _Window, need: int, masked: bytearray | None
) -> Picked:
    """The base's rows but those ``masked`` and the delta's, merged in page order: the rows of
    one side that come before the other's next row are found by a search of its time index and
    taken at once (newest first, the delta's hours, then the base's), and only rows at the same
    instant are compared one by one."""
    walk = _newest_first if window.descending else _oldest_first
    bounds = base.time_bounds(window), delta.time_bounds(window)
    return walk(base, delta, *bounds, need=need, masked=masked)


def _base_rows(positions: Sequence[int], stretch: range, masked: bytearray | None) -> Picked:
    if masked is None:
        return [(0, positions[x]) for x in stretch]
    return [(0, p) for x in stretch if not masked[p := positions[x]]]


def _newest_first(
    base: Segment,
    delta: Segment,
    b_bounds: tuple[int, int],
    d_bounds: tuple[int, int],
    *,
    need: int,
    masked: bytearray | None,
) -> Picked:
    b_positions, b_observed = base.order_positions, base.order_observed
    d_positions, d_observed = delta.order_positions, delta.order_observed
    (b_lo, b_hi), (d_lo, d_hi) = b_bounds, d_bounds
    picked: Picked = []
    i, j = b_hi - 1, d_hi - 1  # the next rows, walked down to b_lo and d_lo
    while len(picked) < need and (i >= b_lo or j >= d_lo):
        if masked is not None and i >= b_lo and masked[b_positions[i]]:
            i -= 1
            continue
        left = need - len(picked)
        if j < d_lo or (i >= b_lo and b_observed[i] > d_observed[j]):
            until = b_lo if j < d_lo else bisect.bisect_right(b_observed, d_observed[j], b_lo, i)
            stop = max(until, i + 1 - left)
            picked += _base_rows(b_positions, range(i, stop - 1, -1), masked)
            i = stop - 1
        elif i < b_lo or d_observed[j] > b_observed[i]:
            until = d_lo if i < b_lo else bisect.bisect_right(d_observed, b_observed[i], d_lo, j)
            stop = max(until, j + 1 - left)
            picked += [(1, d_positions[x]) for x in range(j, stop - 1, -1)]
            j = stop - 1
        elif base.coin_source(b_positions[i]) > delta.coin_source(d_positions[j]):
            picked.append((0, b_positions[i]))  # the same instant: (coin, source) decides
            i -= 1
        else:
            picked.append((1, d_positions[j]))
            j -= 1
    return picked


def _oldest_first(
    base: Segment,
    delta: Segment,
    b_bounds: tuple[int, int],
    d_bounds: tuple[int, int],
    *,
    need: int,
    masked: bytearray | None,
) -> Picked:
    b_positions, b_observed = base.order_positions, base.order_observed
    d_positions, d_observed = delta.order_positions, delta.order_observed
    (b_lo, b_hi), (d_lo, d_hi) = b_bounds, d_bounds
    picked: Picked = []
    i, j = b_lo, d_lo
    while len(picked) < need and (i < b_hi or j < d_hi):
        if masked is not None and i < b_hi and masked[b_positions[i]]:
            i += 1
            continue
        left = need - len(picked)
        if j == d_hi or (i < b_hi and b_observed[i] < d_observed[j]):
            until = b_hi if j == d_hi else bisect.bisect_left(b_observed, d_observed[j], i, b_hi)
            stop = min(until, i + left)
            picked += _base_rows(b_positions, range(i, stop), masked)
            i = stop
        elif i == b_hi or d_observed[j] < b_observed[i]:
            until = d_hi if i == b_hi else bisect.bisect_left(d_observed, b_observed[i], j, d_hi)
            stop = min(until, j + left)
            picked += [(1, d_positions[x]) for x in range(j, stop)]
            j = stop
        elif base.coin_source(b_positions[i]) < delta.coin_source(d_positions[j]):
            picked.append((0, b_positions[i]))
            i += 1
        else:
            picked.append((1, d_positions[j]))
            j += 1
    return picked


def _merged_streams(
    segments: Sequence[Segment],
    bounded: list[tuple[_Pair, list[tuple[int, int, int]]]],
    descending: bool,
    need: int,
) -> Picked:
    """The first ``need`` rows of several streams' spans (each stream's in page order),
    merged in page order: (observed_at, coin_id, source). A heap holds each stream's next row,
    keyed by its time and the stream's rank (both negated for newest first) and carrying where
    the stream is: no generator a stream, as under :func:`heapq.merge`. Streams are ranked by
    their pair; a pair's two streams never hold rows of one instant (a delta's row replaces the
    base's of its instant), so their order among themselves decides nothing."""
    sign = step = -1 if descending else 1
    observed = [segment.observed for segment in segments]
    ranked = sorted(bounded, key=lambda b: (b[0].coin_id, b[0].source))
    every = [spans for _, spans in ranked]
    heap: list[tuple[int, int, int, int, int, int]] = []
    for rank, spans in enumerate(every):
        index, lo, hi = spans[0]
        position, end = (hi - 1, lo - 1) if descending else (lo, hi)
        heap.append((sign * observed[index][position], sign * rank, index, position, end, 0))
    heapq.heapify(heap)
    picked: Picked = []
    while heap and len(picked) < need:
        _, key, index, position, end, span = heap[0]
        picked.append((index, position))
        position += step
        if position == end:
            spans = every[sign * key]
            span += 1
            if span == len(spans):
                heapq.heappop(heap)
                continue
            index, lo, hi = spans[span]
            position, end = (hi - 1, lo - 1) if descending else (lo, hi)
        heapq.heapreplace(heap, (sign * observed[index][position], key, index, position, end, span))
    return picked


def open_quote_layout(serving_path: Path, identity: FileIdentity) -> QuoteLayout | None:
    """The layout of the snapshot file whose identity is ``identity``, or None while there is
    none. A writer may lay the snapshot out again meanwhile (a new base): its manifest is then
    read again."""
    path = manifest_path(serving_path, identity)
    for _ in range(3):
        if not path.exists():
            return None
        manifest = Manifest.read(path)
        try:
            return QuoteLayout.open(path.parent, manifest)
        except LayoutError:
            if path.exists() and Manifest.read(path) == manifest:
                raise
    raise LayoutError(f"{path} kept changing while it was opened; is more than one writer running?")
