"""Load one source's validated batch: resolve entities and merge, all in one transaction.

Coins, mappings, quotes, quarantine, the source's checkpoints and its ledger row (with what it
delivered) commit together or not at all. Resolution reads the stored mappings inside the same
transaction, and the flow is the warehouse's only writer, so decisions never race.

Snapshot records are loaded incrementally: one whose observation time is not newer than the
newest stored for its asset (``coin_source_ids.last_snapshot_at``) is counted unchanged and
written nowhere, so a re-run over unchanged upstream data writes no data row at all. A source
whose extract delivered exactly the payloads of its previous load (same bytes, same code:
flows.delivery) is not even transformed: its ledger row repeats that load's counts and
``run_seen`` rows, every row unchanged.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from flows import verdict
from flows.delivery import delivery_sha256
from flows.drift.check import check_extract
from flows.extract import Extracted
from flows.faults import fault_point
from flows.resolution import (
    WEAK_METHODS,
    Crosswalk,
    Evidence,
    Override,
    Resolution,
    asset_rows,
    resolve_assets,
)
from flows.settings import QualitySettings, get_ingest_settings
from flows.sources import SOURCE_NAMES
from flows.transform import Validated, transformed
from store import merge, quality, runs
from store.connection import transaction
from store.errors import from_duckdb
from store.resolution import (
    applied_since,
    apply_resolver_merges,
    nearest_quotes,
    stored_evidence,
)
from store.schema import QUOTES, QUOTES_KEY, SEEN


def load_extracted(
    con: duckdb.DuckDBPyConnection,
    raw_root: Path,
    extracted: Extracted,
    result: runs.SourceResult,
    overrides: Mapping[tuple[str, str], Override],
    *,
    crosswalk: Crosswalk | None = None,
) -> Resolution | None:
    """Transform and load one source's extract, filling in and recording ``result``. Returns
    the resolution, or None when the delivery repeats the source's previous load (see
    :func:`record_repeat`; ``result.repeat_of`` names that run)."""
    result.requests, result.fetched = extracted.requests, extracted.records
    result.extract_seconds, result.raw_files = extracted.seconds, extracted.raw_files
    result.warnings += extracted.warnings
    result.delivery_sha256 = delivery_sha256(extracted.payloads)
    if extracted.problems:
        # What could be loaded is; the run still says, and fails on, what could not.
        result.status, result.error = "failed", "; ".join(extracted.problems)
    elif record_repeat(con, result, extracted.checkpoints):
        return None
    clock = time.perf_counter()
    # Drift is judged before anything is derived: a fail policy raises here (after recording
    # its events), so no value of a drifted payload reaches quotes.
    drifted = check_extract(con, raw_root, extracted.raw_files, result.run_id, result.source)
    result.warnings += drifted.warnings
    with transformed(raw_root, extracted.raw_files) as validated:
        parts = drifted.apply(validated)
        result.transform_seconds = time.perf_counter() - clock
        result.repeatable_until = min(
            (p.verdicts_until for p in parts if p.verdicts_until is not None), default=None
        )
        result.finished_at = datetime.now(UTC)
        checkpoints = extracted.checkpoints
        resolution = load_source(con, parts, result, overrides, checkpoints, crosswalk=crosswalk)
    with transaction(con):
        findings = quality.run_checks(
            con, result.run_id, result.source, thresholds=QualitySettings().thresholds()
        )
        quality.record_quality(con, result.run_id, result.source, findings)
    return resolution


def record_repeat(
    con: duckdb.DuckDBPyConnection, result: runs.SourceResult, checkpoints: Mapping[str, str]
) -> bool:
    """Record ``result`` without transforming or merging anything, if that is what a load would
    come to: the extract delivered nothing (every CSV file already loaded), or exactly what the
    source's previous load did, with no operator decision applied since. That load left every
    row as these payloads make it (it is the source's latest, and committed), and every asset
    in them mapped, so loading them again would find all rows unchanged and decide nothing; its
    counts and ``run_seen`` rows are this run's. A load whose verdicts depend on the moment of
    reading is repeated only until they may turn (``repeatable_until``); loads before a rebuild
    are not repeated. Returns whether it recorded."""
    clock = time.perf_counter()
    previous = None
    if result.raw_files:
        previous = runs.last_load(con, result.source, before=result.run_id)
        if previous is None or previous.status != "loaded":
            return False
        if previous.delivery_sha256 != result.delivery_sha256:  # None after a rebuild
            return False
        if applied_since(con, previous.finished_at):
            return False
        until = previous.repeatable_until
        if until is not None and datetime.now(UTC) >= until:
            return False
        result.repeatable_until = until
        result.valid, result.quarantined = previous.valid, previous.quarantined
        result.duplicates, result.unchanged = previous.duplicates, previous.delivered
        result.rounded = previous.rounded
    else:
        result.seen = SEEN.to_frame()  # replaces what an earlier attempt of the run recorded
    try:
        with transaction(con):
            for stream, position in checkpoints.items():
                runs.set_checkpoint(
                    con,
                    source=result.source,
                    stream=stream,
                    position=position,
                    run_id=result.run_id,
                )
            result.repeat_of = previous.run_id if previous else None
            result.finished_at = datetime.now(UTC)
            result.load_seconds = time.perf_counter() - clock
            runs.record_source(con, result, seen_of=result.repeat_of)
            fault_point("before_commit", source=result.source)
    except BaseException:
        result.repeat_of = None  # nothing was repeated: the ledger must not say so
        raise
    return True


def load_source(
    con: duckdb.DuckDBPyConnection,
    validated: Validated | Sequence[Validated],
    result: runs.SourceResult,
    overrides: Mapping[tuple[str, str], Override],
    checkpoints: Mapping[str, str] | None = None,
    *,
    ledger: bool = True,
    crosswalk: Crosswalk | None = None,
) -> Resolution:
    """Merge ``validated`` (one batch, or its parts from :func:`flows.transform.transformed`)
    and record ``result`` (filled in with the counts) atomically, with the
    source's checkpoints: the latest observation loaded (stream ``quotes``) and ``checkpoints``
    (stream -> position, e.g. a CSV file's sha256), and the raw files it read
    (``result.raw_files``, for a rebuild to replay). ``ledger=False`` (a rebuild loading many runs
    at once) leaves the run ledger alone."""
    try:
        resolution = _merge(
            con,
            [validated] if isinstance(validated, Validated) else validated,
            result,
            overrides,
            checkpoints=checkpoints,
            ledger=ledger,
            crosswalk=crosswalk,
        )
    except BaseException as exc:
        # Rolled back: the ledger row the caller writes must not count rows or point at quotes
        # that did not commit.
        result.inserted = result.updated = result.unchanged = 0
        result.seen = None
        if isinstance(exc, duckdb.OutOfMemoryException):
            raise from_duckdb(exc, f"loading {result.source}") from exc
        raise
    return resolution


def _merge(
    con: duckdb.DuckDBPyConnection,
    parts: Sequence[Validated],
    result: runs.SourceResult,
    overrides: Mapping[tuple[str, str], Override],
    *,
    checkpoints: Mapping[str, str] | None,
    ledger: bool,
    crosswalk: Crosswalk | None,
) -> Resolution:
    clock = time.perf_counter()
    with transaction(con):
        assets = pl.concat([asset_rows(part.quotes) for part in parts])
        for part in parts:
            merge.merge_contracts(con, part.contracts)
        resolution = resolve_assets(
            assets,
            gather_evidence(con, assets, overrides, crosswalk or {}),
            run_id=result.run_id,
        )
        _apply_relinks(con, resolution, result.run_id)
        merge.merge_coins(con, resolution.new_coins)
        # Each part is read, merged and let go; every row of an asset is in one part, so what
        # is decided per asset (its newest snapshot, what it was seen as) is decided whole.
        loaded = _Loaded()
        with merge.quotes_merge(con) as quotes:
            for part in _keys_apart(parts, resolution):
                delivered = _with_coin_ids(part.quotes, resolution)
                fresh = _newer_than_stored(con, result.source, delivered)
                loaded.add(part, delivered, fresh, quotes.merge(fresh))
                merge.merge_quarantine(con, part.quarantine)
                del delivered, fresh
        touched = merge.merge_source_ids(con, _with_snapshot_times(resolution.mappings, loaded))
        merge.merge_review(con, resolution.review)
        merge.reopen_review(con, resolution.reopened)
        merge.refresh_coins(con, touched, list(SOURCE_NAMES))
        if loaded.latest is not None:
            runs.advance_checkpoint(
                con,
                source=result.source,
                stream="quotes",
                position=loaded.latest.isoformat(timespec="microseconds"),
                run_id=result.run_id,
            )
        for stream, position in (checkpoints or {}).items():
            runs.set_checkpoint(
                con, source=result.source, stream=stream, position=position, run_id=result.run_id
            )
        loaded.count_into(result)
        result.load_seconds = time.perf_counter() - clock
        if ledger:
            verdict.judge(
                result,
                sum((verdict.reasons_of(p.quarantine) for p in parts), Counter()),
                min_valid_share=get_ingest_settings().min_valid_share,
            )
            result.seen = pl.concat(loaded.seen).sort("source_asset_id")
            runs.record_source(con, result)
            runs.record_files(con, result.run_id, result.source, result.raw_files)
        fault_point("before_commit", source=result.source)
    return resolution


@dataclass
class _Loaded:
    """What the parts of one load came to, part after part."""

    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    rounded: int = 0
    delivered: int = 0
    counts: merge.MergeCounts = field(default_factory=merge.MergeCounts)
    latest: datetime | None = None
    newest: list[pl.DataFrame] = field(default_factory=list)
    seen: list[pl.DataFrame] = field(default_factory=list)

    def add(
        self,
        part: Validated,
        delivered: pl.DataFrame,
        fresh: pl.DataFrame,
        counts: merge.MergeCounts,
    ) -> None:
        self.valid += part.quotes.height
        self.quarantined += part.quarantine.height
        self.duplicates += part.duplicates
        self.rounded += part.rounded
        self.delivered += delivered.height
        self.counts = merge.MergeCounts(
            self.counts.inserted + counts.inserted,
            self.counts.updated + counts.updated,
            self.counts.unchanged + counts.unchanged,
        )
        if not fresh.is_empty():
            latest = fresh["observed_at"].max()
            assert isinstance(latest, datetime)
            self.latest = latest if self.latest is None else max(self.latest, latest)
        self.newest.append(
            fresh.filter(pl.col("kind") == "snapshot")
            .group_by("source", "source_asset_id")
            .agg(pl.col("observed_at").max().alias("newest"))
        )
        self.seen.append(_seen(delivered))

    def count_into(self, result: runs.SourceResult) -> None:
        result.valid, result.quarantined = self.valid, self.quarantined
        result.duplicates, result.rounded = self.duplicates, self.rounded
        result.inserted, result.updated = self.counts.inserted, self.counts.updated
        result.unchanged = self.delivered - self.counts.inserted - self.counts.updated


def gather_evidence(
    con: duckdb.DuckDBPyConnection,
    assets: pl.DataFrame,
    overrides: Mapping[tuple[str, str], Override],
    crosswalk: Crosswalk,
) -> Evidence:
    """What the warehouse knows that bears on the batch's assets (``source``,
    ``source_asset_id``; see :func:`store.resolution.stored_evidence`), with the curated files
    and the market lookup."""
    stored = stored_evidence(con, assets, WEAK_METHODS)
    if not stored.new_assets:
        return Evidence(stored.mappings, frozenset(), overrides, crosswalk)
    return Evidence(
        stored_mappings=stored.mappings,
        stored_coin_ids=stored.coin_ids,
        overrides=overrides,
        crosswalk=crosswalk,
        contracts=stored.contracts,
        accepted=stored.accepted,
        rejected=stored.rejected,
        aliases=stored.aliases,
        market=lambda pairs: nearest_quotes(con, pairs),
        pending_review=stored.pending_review,
    )


def _apply_relinks(con: duckdb.DuckDBPyConnection, resolution: Resolution, run_id: str) -> None:
    """Assets waiting in review whose evidence now clears the bar: their coins merge into the
    candidates, as decisions of the resolver's in the decision log."""
    if not resolution.relinks:
        return
    for applied in apply_resolver_merges(con, resolution.relinks, run_id, list(SOURCE_NAMES)):
        # The decider merges only coins no source holds an asset in both of; a refusal means
        # the warehouse changed under it, and the batch's coin ids would be wrong: roll back.
        if applied.outcome == "refused":
            raise RuntimeError(
                f"resolution's merge {applied.decision_id} was refused: {applied.detail}"
            )


def _keys_apart(parts: Sequence[Validated], resolution: Resolution) -> Sequence[Validated]:
    """``parts``, unless two of the batch's assets of one source share a coin (an operator's
    overrides may say so): their rows could meet on one key from two parts, which a
    :class:`store.merge.QuotesMerge` must not be given, so the parts are loaded as one."""
    if len(parts) < 2:
        return parts
    mapped = resolution.mappings.select("source", "coin_id")
    if not mapped.is_duplicated().any():
        return parts
    whole = list(parts)
    return [
        Validated(
            pl.concat([p.quotes for p in whole]),
            pl.concat([p.quarantine for p in whole]),
            sum(p.duplicates for p in whole),
            contracts=whole[0].contracts,
            verdicts_until=min(
                (p.verdicts_until for p in whole if p.verdicts_until is not None), default=None
            ),
            rounded=sum(p.rounded for p in whole),
        )
    ]


def _with_coin_ids(quotes: pl.DataFrame, resolution: Resolution) -> pl.DataFrame:
    coin_of = resolution.mappings.select("source", "source_asset_id", "coin_id")
    # Only the key columns are joined: the quotes' other columns are shared, not copied (a
    # 428k-row CSV file held ~85 MB more while it loaded).
    coin_ids = (
        quotes.select("source", "source_asset_id")
        .join(coin_of, on=["source", "source_asset_id"], how="left", maintain_order="left")
        .get_column("coin_id")
    )
    joined = quotes.with_columns(coin_ids).select(QUOTES.names())
    # Two source ids an override maps to one coin could meet on one key: keep the later record.
    # That is rare, and hashing the keys to find out costs far less than sorting every row.
    if not joined.select(pl.struct(QUOTES_KEY).is_duplicated().any()).item():
        return joined
    return joined.sort("raw_file", "raw_record").unique(
        subset=list(QUOTES_KEY), keep="last", maintain_order=True
    )


def _newer_than_stored(
    con: duckdb.DuckDBPyConnection, source: str, quotes: pl.DataFrame
) -> pl.DataFrame:
    """The rows worth merging: history rows, and snapshot rows newer than the newest stored for
    their asset and than any an earlier run of the batch delivered (a rebuild loads many runs
    at once, and must decide as those runs did, one after the other)."""
    if not quotes.select((pl.col("kind") == "snapshot").any()).item():
        return quotes  # history only: every row is worth merging, and need not be copied
    stored = con.execute(
        """
        select source_asset_id, last_snapshot_at
        from coin_source_ids
        where source = ? and last_snapshot_at is not null
        """,
        [source],
    ).pl()
    snapshots = quotes.filter(pl.col("kind") == "snapshot")
    earlier_runs = (
        snapshots.group_by("source_asset_id", "run_id")
        .agg(pl.col("observed_at").max().alias("run_newest"))
        .sort("source_asset_id", "run_id")
        .with_columns(before=pl.col("run_newest").cum_max().shift(1).over("source_asset_id"))
        .drop("run_newest")
    )
    threshold = pl.max_horizontal("before", "last_snapshot_at")
    newer = (
        snapshots.join(earlier_runs, on=["source_asset_id", "run_id"], how="left")
        .join(stored, on="source_asset_id", how="left")
        .filter(threshold.is_null() | (pl.col("observed_at") > threshold))
        .select(QUOTES.names())
    )
    return pl.concat([newer, quotes.filter(pl.col("kind") != "snapshot")])


def _with_snapshot_times(mappings: pl.DataFrame, loaded: _Loaded) -> pl.DataFrame:
    return (
        mappings.join(pl.concat(loaded.newest), on=["source", "source_asset_id"], how="left")
        .with_columns(last_snapshot_at=pl.col("newest"))
        .drop("newest")
    )


def _seen(quotes: pl.DataFrame) -> pl.DataFrame:
    return (
        quotes.select(SEEN.names())  # sorted without the other columns: not a copy of them
        .sort("observed_at")
        .group_by("source_asset_id")
        .agg(pl.col("coin_id").last(), pl.col("observed_at").last())
        .select(SEEN.names())
        .sort("source_asset_id")
    )
