"""``kasparro rebuild --from-raw``: re-derive the warehouse from the raw zone.

The loads the run ledger says committed (``run_files``: each load's raw files, written with its
data) are replayed through the same staging, validation, resolution and loads as the flow, with
today's rules and overrides: the way to apply a changed resolution rule to all history. What no
committed load read stays in the raw zone and out of the rebuild: the pages of a source that
failed (rolled back), of a run that died before a source committed, and of a repeated delivery
(``repeat_of``: the earlier run's files are the lineage, as they are in the warehouse). So with
unchanged rules the rebuilt tables equal the warehouse, lineage included. ``recover=True``
(``--recover``) also loads the raw files of every (run, source) no load committed and no ledger
row calls a repeat, and records each as a load the rebuild recovered (store.runs.record_recovered):
the way back from a lost warehouse, or to data a failed run left behind.

For speed, consecutive runs are loaded together, a window of up to ``rows_per_chunk`` raw rows
at a time (memory stays bounded however long the history), each source of the window in source
order as a run loads them: the loader decides as those runs did one after the other (a snapshot
record counts only if newer than what earlier runs delivered). Resolution decides an asset the
first time a run delivers it, from what the warehouse holds then (market quotes, contracts): a run
that delivers an asset not mapped yet is loaded on its own, after every earlier run and before any
later one, so the tables come out as run-by-run loading made them, evidence included. Windows keep
``quotes`` stored roughly in time order, as ingest appends it, which the API's newest-first reads
rely on. The next window is read and validated (polars, off the GIL) while the current one is
resolved and merged.

The operator's decisions are applied again where the ledger says they were: those a run applied
(``applied_by_run``) before that run's loads (a window starts there), in the order taken, so
later loads resolve against them as they did (see :mod:`store.resolution`); refused and pending
ones are carried over as they are.

The new warehouse is built beside the old one and swapped in atomically (the old one is kept as
``warehouse.duckdb.bak``); the old one stays locked meanwhile, so no ingest writes during the
rebuild. The run ledger and every checkpoint but the ``quotes`` high-water marks are carried over.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from flows import raw_zone
from flows.errors import IngestError
from flows.load import load_source
from flows.resolution import Crosswalk, Override
from flows.sources import SOURCE_NAMES
from flows.transform import Validated, transform_raw_files
from store import runs
from store.connection import open_warehouse, transaction
from store.quote_layout_build import Progress, build_after_publish
from store.resolution import RESOLVER, apply_pending
from store.snapshot import Published, publish_snapshot

_RAW_PATH = re.compile(r"^source=(?P<source>[^/]+)/date=[^/]+/run=(?P<run>[^/]+)/(?P<file>[^/]+)$")
ROWS_PER_CHUNK = 500_000
"""Raw rows of a window. Two windows are in memory at once (one loading, the next being read):
at 500k a 10M-quote rebuild peaks at 1.36 GiB with the default KASPARRO_DUCKDB_MEMORY_LIMIT."""


class RebuildError(IngestError):
    """The raw zone lacks a file the ledger says a load read: the rebuild cannot reproduce it."""


@dataclass(frozen=True)
class RawBatch:
    run_id: str
    source: str
    files: list[str]


@dataclass(frozen=True)
class Replay:
    """What a rebuild loads, in order, and what of the raw zone it leaves out."""

    batches: list[RawBatch]
    recovered: list[RawBatch] = field(default_factory=list)
    """Among ``batches``: loads no run committed, recovered from the raw zone."""
    left_out: list[RawBatch] = field(default_factory=list)
    """Raw files no replayed load reads (of failed sources, runs that died, repeated deliveries,
    unloadable files), last attempts only, by (run, source)."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive runs of one source, loaded together."""

    source: str
    run_ids: list[str]
    files: list[str]
    rows: int
    window: int = 0
    """The window it belongs to: a window's chunks are read together, then loaded in order."""


def raw_batches(raw_root: Path) -> list[RawBatch]:
    """The raw zone as (run, source) batches in replay order, last attempt of each page only."""
    latest: dict[tuple[str, str, str], tuple[int, str]] = {}
    for path in raw_root.rglob("*.parquet"):
        relative = path.relative_to(raw_root).as_posix()
        where, name = _RAW_PATH.match(relative), raw_zone.attempt_of(path.name)
        if not where or not name:
            continue
        key = (where["run"], where["source"], name[0])
        if key not in latest or latest[key][0] < name[1]:
            latest[key] = (name[1], relative)
    grouped: dict[tuple[str, str], list[str]] = {}
    for (run_id, source, _), (_, relative) in latest.items():
        grouped.setdefault((run_id, source), []).append(relative)
    return _in_replay_order(RawBatch(r, s, sorted(files)) for (r, s), files in grouped.items())


def _in_replay_order(batches: Iterable[RawBatch]) -> list[RawBatch]:
    order = {name: i for i, name in enumerate(SOURCE_NAMES)}
    return sorted(batches, key=lambda b: (b.run_id, order.get(b.source, len(order)), b.source))


def replay_plan(con: duckdb.DuckDBPyConnection, raw_root: Path, *, recover: bool = False) -> Replay:
    """The loads the ledger says committed, each with the raw files it read, in replay order
    (run id, then source order); with ``recover``, also every (run, source) of the raw zone
    that no load committed and no ledger row calls a repeat."""
    zone = {(b.run_id, b.source): b for b in raw_batches(raw_root)}
    replayed: list[RawBatch] = []
    for load in runs.committed_loads(con):
        files, key = set(load.files), (load.run_id, load.source)
        if load.unlisted and key in zone:  # committed before files were listed: last attempts
            files.update(zone[key].files)
        missing = sorted(f for f in files if not (raw_root / f).is_file())
        if missing:
            raise RebuildError(
                f"run {load.run_id} loaded {len(missing)} {load.source} raw file(s) missing from "
                f"the raw zone {raw_root}, e.g. {missing[0]}: restore them from a backup of the "
                "raw zone and rebuild again (the warehouse was left as it was)"
            )
        if files:
            replayed.append(RawBatch(load.run_id, load.source, sorted(files)))
    done = {(b.run_id, b.source) for b in replayed}
    read = {f for b in replayed for f in b.files}
    unread = [
        RawBatch(b.run_id, b.source, [f for f in b.files if f not in read])
        for b in zone.values()
        if not read.issuperset(b.files)
    ]
    recovered: list[RawBatch] = []
    if recover:  # whole (run, source) pairs no load committed and no repeat stands for
        repeats = runs.recorded_repeats(con) | done
        recovered = [b for b in unread if (b.run_id, b.source) not in repeats]
        unread = [b for b in unread if (b.run_id, b.source) in repeats]
    return Replay(_in_replay_order([*replayed, *recovered]), recovered, _in_replay_order(unread))


def chunks(
    raw_root: Path,
    batches: list[RawBatch],
    rows_per_chunk: int,
    *,
    window_starts: frozenset[str] = frozenset(),
) -> list[Chunk]:
    """Windows of consecutive runs holding up to ``rows_per_chunk`` raw rows (a run is never
    split), each window one chunk per source, in source order. A run of ``window_starts``
    starts a window (operator decisions are applied before it)."""
    order = {name: i for i, name in enumerate(SOURCE_NAMES)}
    planned: list[Chunk] = []
    window: dict[str, Chunk] = {}

    def close_window() -> None:
        number = planned[-1].window + 1 if planned else 0
        planned.extend(
            dataclasses.replace(c, window=number)
            for c in sorted(
                window.values(), key=lambda c: (order.get(c.source, len(order)), c.source)
            )
        )
        window.clear()

    sized = [(b, sum(pq.read_metadata(raw_root / f).num_rows for f in b.files)) for b in batches]
    run_rows: dict[str, int] = defaultdict(int)
    for batch, rows in sized:
        run_rows[batch.run_id] += rows
    window_rows, current_run = 0, None
    for batch, rows in sized:  # a run's batches are consecutive
        if batch.run_id != current_run:
            current_run = batch.run_id
            too_big = window_rows + run_rows[current_run] > rows_per_chunk
            if window and (too_big or current_run in window_starts):
                close_window()
                window_rows = 0
            window_rows += run_rows[current_run]
        current = window.get(batch.source, Chunk(batch.source, [], [], 0))
        window[batch.source] = Chunk(
            batch.source,
            [*current.run_ids, batch.run_id],
            [*current.files, *batch.files],
            current.rows + rows,
        )
    close_window()
    return planned


@dataclass(frozen=True)
class Rebuilt:
    published: Published
    replay: Replay
    chunks: list[Chunk]


def rebuild_from_raw(
    data_dir: Path,
    overrides: dict[tuple[str, str], Override],
    *,
    crosswalk: Crosswalk | None = None,
    rows_per_chunk: int = ROWS_PER_CHUNK,
    recover: bool = False,
    on_plan: Callable[[Replay, list[Chunk]], None] | None = None,
    on_chunk: Callable[[Chunk, runs.SourceResult], None] | None = None,
    on_layout: Progress | None = None,
) -> Rebuilt:
    """Rebuild ``data_dir/warehouse.duckdb`` from ``data_dir/raw`` and publish the snapshot
    (then its quote layout, telling ``on_layout`` how far it got)."""
    warehouse_path, raw_root = data_dir / "warehouse.duckdb", data_dir / "raw"
    fresh_path = data_dir / "warehouse.rebuild.duckdb"
    fresh_path.unlink(missing_ok=True)
    # One row per asset per source per run: streamed through a file, not held in memory.
    seen_file = data_dir / "warehouse.rebuild.run_seen.parquet"
    old = open_warehouse(warehouse_path)  # held: no ingest may write while we rebuild
    try:
        replay = replay_plan(old, raw_root, recover=recover)
        ledger = {
            t: old.sql(f"select * from {t}").pl()
            for t in ("runs", "run_sources", "resolution_decisions", *_OBSERVED)
        }
        kept_checkpoints = old.sql("select * from checkpoints where stream <> 'quotes'").pl()
        quoted = str(seen_file).replace("'", "''")  # COPY takes no bound parameters
        old.execute(f"copy run_seen to '{quoted}' (format parquet)")
        due = _decisions_due(ledger["resolution_decisions"], ledger["runs"], replay.batches)
        plan = chunks(raw_root, replay.batches, rows_per_chunk, window_starts=frozenset(due))
        if on_plan:
            on_plan(replay, plan)
        fresh = open_warehouse(fresh_path)
        try:
            _seed_runs(fresh, ledger["runs"])
            windows = [list(w) for _, w in groupby(plan, key=lambda c: c.window)]
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebuild-read") as reader:
                reads = [reader.submit(_read, raw_root, w) for w in windows[:1]]
                for window, following in zip(windows, [*windows[1:], None], strict=True):
                    validated = reads.pop().result()
                    if following is not None:
                        reads.append(reader.submit(_read, raw_root, following))
                    first = min(r for c in window for r in c.run_ids)
                    for run_id in sorted(r for r in due if r <= first):
                        _reapply(fresh, due.pop(run_id))
                    _load_window(
                        fresh,
                        window,
                        validated,
                        overrides=overrides,
                        crosswalk=crosswalk,
                        on_chunk=on_chunk,
                    )
                    del validated  # two windows in memory at most: this one and the next
            for run_id in sorted(due):  # applied by no run the rebuild replays: at the end
                _reapply(fresh, due.pop(run_id))
            with transaction(fresh):
                _carry_over(fresh, ledger, kept_checkpoints, seen_file)
                _record_replayed(fresh, replay)
            fresh.execute("checkpoint")
        finally:
            fresh.close()
        backup = warehouse_path.with_name(warehouse_path.name + ".bak")
        backup.unlink(missing_ok=True)
        os.link(warehouse_path, backup)
        os.replace(fresh_path, warehouse_path)
    finally:
        old.close()
        seen_file.unlink(missing_ok=True)
    published = publish_snapshot(warehouse_path, data_dir / "serving.duckdb", sources=SOURCE_NAMES)
    build_after_publish(published.path, on_layout, base=True)
    return Rebuilt(published, replay, plan)


def _read(raw_root: Path, window: list[Chunk]) -> list[Validated]:
    return [transform_raw_files(raw_root, c.files) for c in window]


def _load_window(
    con: duckdb.DuckDBPyConnection,
    window: list[Chunk],
    validated: list[Validated],
    *,
    overrides: dict[tuple[str, str], Override],
    crosswalk: Crosswalk | None,
    on_chunk: Callable[[Chunk, runs.SourceResult], None] | None,
) -> None:
    """Load a window's chunks, source after source. Resolution decides an asset the first time
    a run delivers it, from what the warehouse holds then: a run that delivers an asset not
    mapped yet is loaded on its own, after every earlier run and before any later one, as it
    was; the runs between are loaded together."""
    results = {c.source: runs.SourceResult(c.run_ids[0], c.source, "loaded") for c in window}
    for part in _parts(con, window, validated):
        for chunk, batch in zip(window, validated, strict=True):
            only = batch if set(chunk.run_ids) <= set(part) else _of_runs(batch, part)
            if only.quotes.is_empty() and only.quarantine.is_empty() and only.contracts.is_empty():
                continue
            result = runs.SourceResult(part[0], chunk.source, "loaded")
            load_source(con, only, result, overrides, ledger=False, crosswalk=crosswalk)
            results[chunk.source].inserted += result.inserted
    if on_chunk:
        for chunk in window:
            on_chunk(chunk, results[chunk.source])


def _parts(
    con: duckdb.DuckDBPyConnection, window: list[Chunk], validated: list[Validated]
) -> list[list[str]]:
    """The window's runs in order, grouped: each run that delivers an asset not mapped yet on
    its own, the runs between together."""
    delivered = pl.concat(
        [v.quotes.select("source", "source_asset_id", "run_id") for v in validated]
    )
    mapped = con.sql("select source, source_asset_id from coin_source_ids").pl()
    resolving = set(
        delivered.join(mapped, on=["source", "source_asset_id"], how="anti")
        .group_by("source", "source_asset_id")
        .agg(pl.col("run_id").min())["run_id"]
        .to_list()
    )
    parts: list[list[str]] = []
    for run_id in sorted({r for c in window for r in c.run_ids}):
        if run_id in resolving or not parts or parts[-1][-1] in resolving:
            parts.append([run_id])
        else:
            parts[-1].append(run_id)
    return parts


def _of_runs(validated: Validated, run_ids: list[str]) -> Validated:
    """What ``run_ids`` delivered of a batch read from more runs."""
    return dataclasses.replace(
        validated,
        quotes=validated.quotes.filter(pl.col("run_id").is_in(run_ids)),
        quarantine=validated.quarantine.filter(pl.col("first_run_id").is_in(run_ids)),
        contracts=validated.contracts.filter(pl.col("first_seen_run").is_in(run_ids)),
    )


_END = "\uffff"
"""Sorts after every run id: decisions due once every load is replayed."""


def _decisions_due(
    taken: pl.DataFrame, known_runs: pl.DataFrame, replayed: list[RawBatch]
) -> dict[str, pl.DataFrame]:
    """The applied decisions, by the replayed run they must be applied before: the first replayed
    at or after the run that applied them (a run's decisions come before its loads). Those
    applied by no run in the ledger (an older rebuild), or after the last replayed run, are
    due at the end."""
    # The resolver's own merges are not carried over: the replayed loads decide them again.
    applied = taken.filter((pl.col("outcome") == "applied") & (pl.col("decided_by") != RESOLVER))
    known = set(known_runs["run_id"].to_list())
    starts = sorted({b.run_id for b in replayed})
    due: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in applied.to_dicts():
        by = row["applied_by_run"]
        later = [r for r in starts if by in known and r >= by]
        due[later[0] if later else _END].append(row)
    return {run: pl.DataFrame(rows, schema=applied.schema) for run, rows in due.items()}


def _reapply(con: duckdb.DuckDBPyConnection, taken: pl.DataFrame) -> None:
    """Apply ``taken`` (decisions as the ledger holds them) again, each by the run that applied
    it, in the order they were applied; one applied again keeps the moment it first was."""
    by_run = taken.group_by("applied_by_run").agg(pl.col("applied_at").min()).sort("applied_at")
    for run_id in by_run["applied_by_run"].to_list():
        con.register("taken", taken.filter(pl.col("applied_by_run") == run_id))
        try:
            con.execute(
                """
                insert into resolution_decisions
                select * replace (
                    'pending' as outcome, '{}' as detail, null as applied_at,
                    null as applied_by_run
                )
                from taken
                """
            )
            apply_pending(con, run_id, list(SOURCE_NAMES))  # only these are pending
            con.execute(
                """
                update resolution_decisions as d
                set applied_at = t.applied_at
                from taken as t
                where d.decision_id = t.decision_id and d.outcome = 'applied'
                """
            )
        finally:
            con.unregister("taken")


def _record_replayed(con: duckdb.DuckDBPyConnection, replay: Replay) -> None:
    """What each replayed load read (loads committed before the ledger listed files get their
    list now), and the loads the rebuild recovered, marked so in the ledger."""
    recovered = {(b.run_id, b.source) for b in replay.recovered}
    runs.record_files_of(
        con,
        [
            (b.run_id, b.source, f)
            for b in replay.batches
            if (b.run_id, b.source) not in recovered
            for f in b.files
        ],
    )
    at = datetime.now(UTC)
    runs.record_recovered(
        con,
        [
            runs.RecoveredLoad(
                b.run_id,
                b.source,
                b.files,
                note=(
                    f"recovered by `kasparro rebuild --from-raw --recover` at "
                    f"{at:%Y-%m-%dT%H:%M:%SZ}: no run had committed these {len(b.files)} raw "
                    "file(s)"
                ),
                started_at=_started_at(b.run_id, at),
            )
            for b in replay.recovered
        ],
    )


def _started_at(run_id: str, fallback: datetime) -> datetime:
    """A run's start, from its id (``20261125T104105Z-3f9a2c``: flows.ingest.new_run_id)."""
    try:
        return datetime.strptime(run_id.partition("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return fallback


def _seed_runs(con: duckdb.DuckDBPyConnection, old_runs: pl.DataFrame) -> None:
    """The runs, before any load is replayed: a load dates what it decides by its run (the
    resolver's merges), and must date it as when the run loaded it."""
    con.register("old_runs", old_runs)
    try:
        with transaction(con):
            con.execute("insert into runs select * from old_runs")
    finally:
        con.unregister("old_runs")


_OBSERVED = ("schema_observations", "drift_events", "quality_checks")
"""Tables of what runs observed (flows.drift, store.quality), carried over as they are."""


def _carry_over(
    con: duckdb.DuckDBPyConnection,
    ledger: dict[str, pl.DataFrame],
    checkpoints: pl.DataFrame,
    seen_file: Path,
) -> None:
    """The old run ledger (``run_seen`` from ``seen_file``), the checkpoints a replay cannot
    derive (CSV files, history), and the operator's decisions not applied again (refused or
    pending) as they are."""
    con.register("old_runs", ledger["runs"])
    con.register("old_run_sources", ledger["run_sources"])
    con.register("old_decisions", ledger["resolution_decisions"])
    con.register("old_checkpoints", checkpoints)
    try:
        con.execute("insert or replace into runs select * from old_runs")
        con.execute("insert or replace into run_sources select * from old_run_sources")
        con.execute("insert into run_seen select * from read_parquet(?)", [str(seen_file)])
        # Rebuilt links may name other coins (changed overrides or rules): every run's pointers
        # follow them, as decisions make them follow a moved link.
        con.execute(
            """
            update run_seen as s
            set coin_id = m.coin_id
            from coin_source_ids as m
            where m.source = s.source
                and m.source_asset_id = s.source_asset_id
                and m.coin_id <> s.coin_id
            """
        )
        # What the old loads derived is not what this rebuild did: the next run loads in full.
        con.execute("update run_sources set delivery_sha256 = null")
        con.execute(
            "insert into resolution_decisions select * from old_decisions "
            "where outcome <> 'applied'"
        )
        con.execute("insert or replace into checkpoints select * from old_checkpoints")
        # What each run's payloads looked like and were found to be: the raw zone cannot say
        # which policy applied or who acknowledged what.
        for table in _OBSERVED:
            con.register(f"old_{table}", ledger[table])
            try:
                con.execute(f"insert into {table} select * from old_{table}")
            finally:
                con.unregister(f"old_{table}")
    finally:
        for name in ("old_runs", "old_run_sources", "old_decisions", "old_checkpoints"):
            con.unregister(name)
