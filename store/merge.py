"""Idempotent loads: stage a deduplicated batch, count what it changes, then write it: ``MERGE
INTO`` the target, or for quotes (see :class:`QuotesMerge`) delete the changed rows and insert.

Counting is done with one left join before writing (``RETURNING merge_action`` is ~10x slower
and undercounts on large tables), inside the caller's transaction, so the counts describe exactly
what is written. Loading the same batch twice inserts nothing and counts no update: a row is
updated only when one of its value columns differs (lineage columns alone never count).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from store.memory import memory_limit
from store.schema import (
    ASSET_CONTRACTS,
    ASSET_CONTRACTS_KEY,
    COIN_SOURCE_IDS,
    COIN_SOURCE_IDS_KEY,
    COINS,
    QUARANTINE,
    QUARANTINE_KEY,
    QUOTES,
    QUOTES_KEY,
    QUOTES_VALUES,
    RESOLUTION_REVIEW,
    RESOLUTION_REVIEW_KEY,
)
from store.settings import get_store_settings


@dataclass(frozen=True)
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _on(key: tuple[str, ...]) -> str:
    return " and ".join(f"t.{c} = s.{c}" for c in key)


def _columns(columns: Iterable[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{c}" for c in columns)


COMPARE_ROWS = 50_000
"""Stored rows a part's rows are compared with at once (see :meth:`QuotesMerge._compared`)."""

STAGE_ON_DISK_ROWS = 20_000
"""Batches this large are staged through a Parquet file rather than handed to DuckDB as a
frame. DuckDB writes the rows it appends from a file scan to the database file as it goes, but
keeps the rows appended from a frame in memory until the transaction commits: a 428k-row CSV
file held ~200 MB more (``python -m bench.csv_memory``)."""


def staging_directory(warehouse: Path) -> Path:
    """Where large batches are staged while they load into ``warehouse``: emptied whenever the
    warehouse is opened for writing (a killed load leaves its files behind)."""
    return warehouse.with_name(warehouse.name + ".staging")


def _scratch_directory(con: duckdb.DuckDBPyConnection) -> Path:
    """Where files staged for ``con``'s database go (see :func:`staging_directory`)."""
    (database,) = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone() or (None,)
    directory = staging_directory(Path(database)) if database else Path(tempfile.gettempdir())
    directory.mkdir(exist_ok=True)
    return directory


def _quoted(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def _staged(
    con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame, schema: pl.Schema
) -> Iterator[None]:
    """``frame`` readable as the relation ``name`` for the duration."""
    if frame.schema != schema:
        raise TypeError(f"{name}: expected schema {schema}, got {frame.schema}")
    if frame.height < STAGE_ON_DISK_ROWS:
        con.register(name, frame)
        try:
            yield
        finally:
            con.unregister(name)
        return
    fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".parquet", dir=_scratch_directory(con))
    os.close(fd)
    try:
        frame.write_parquet(path)
        con.execute(
            f"create or replace temp view {name} as select * from read_parquet({_quoted(path)})"
        )
        try:
            yield
        finally:
            # After a failed statement the transaction is aborted, and its rollback drops it.
            with contextlib.suppress(duckdb.TransactionException):
                con.execute(f"drop view if exists {name}")
    finally:
        os.unlink(path)


@dataclass(frozen=True)
class _Pending:
    """What one part of a :class:`QuotesMerge` will write: its new and changed rows (with the
    ``row_id`` of the stored version a changed row replaces), as a frame when few, else in a
    Parquet file; and how many stored versions they replace."""

    rows: pl.DataFrame | Path
    replaced: int


class QuotesMerge:
    """Quotes upserted on (coin_id, source, observed_at), part after part, within the caller's
    transaction; each part must hold each key once, and no key of another part.

    A history row meeting a stored snapshot row for the same key leaves it as it is (counted
    unchanged); a snapshot replaces a history row. A row is changed only when one of its value
    columns differs (lineage alone never counts).

    Each part is compared with the stored rows of its own (source, coin) pairs, in its own span
    of time, and what it will write (its new rows, and its changed rows with the row id of the
    stored version they replace) goes to a Parquet file beside the warehouse. Nothing is written
    to ``quotes`` until :meth:`finish`, which deletes the replaced versions and appends the
    files' rows. So every part reads ``quotes`` as it was before the load, from compressed,
    evictable blocks: a comparison that also read what earlier parts had appended (DuckDB keeps a
    transaction's appends apart until the commit) slowed part after part, and one against a copy
    of the stored rows held that copy in memory; either ran out of memory on a 500 MB CSV file
    at 64 MiB (``python -m bench.csv_memory --megabytes 500 --changed``). A changed row is
    deleted and inserted rather than updated: DuckDB keeps a transaction's updated values in
    memory it cannot spill (reloading a changed 50 MB file ran out at 64 and 128 MiB).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._directory = Path(tempfile.mkdtemp(prefix="quotes-", dir=_scratch_directory(con)))
        self._pending: list[_Pending] = []
        self._held = 0
        """Rows of the pending parts that wait in memory."""

    def merge(self, quotes: pl.DataFrame) -> MergeCounts:
        if quotes.is_empty():
            return MergeCounts()
        if quotes.schema != QUOTES:
            raise TypeError(f"quotes: expected schema {QUOTES}, got {quotes.schema}")
        span = [quotes["observed_at"].min(), quotes["observed_at"].max()]
        met = self._compared(quotes, self._met(quotes, span), span)
        written = (
            quotes.join(met, on=list(QUOTES_KEY), how="left")
            .filter(pl.col("changed").is_null() | pl.col("changed"))
            .drop("changed")
        )
        updated = written["row_id"].count()
        inserted = written.height - updated
        # Rows wait in memory only while all the parts' waiting there stay few: a load of many
        # parts each writing a few thousand rows would otherwise hold them all until the end.
        if self._held + written.height >= STAGE_ON_DISK_ROWS:
            path = self._directory / f"part-{len(self._pending):06d}.parquet"
            written.write_parquet(path)
            self._pending.append(_Pending(path, updated))
        elif written.height:
            self._held += written.height
            self._pending.append(_Pending(written, updated))
        return MergeCounts(inserted, updated, quotes.height - written.height)

    def _met(self, quotes: pl.DataFrame, span: list[Any]) -> pl.DataFrame:
        """The keys of ``quotes`` that are stored, with the stored row's id.

        Keys only, on both sides: a join carrying every column built its hash table from
        whichever side DuckDB guessed smaller, often the part's, and ~160k rows of new quotes
        ran a 10M-quote rebuild out of its 64 MiB where nothing was stored to match. Only the
        keys that match leave DuckDB: a part whose span reaches far back (an asset last updated
        long ago) must not bring every stored key of its pairs into memory."""
        self._con.register("part_keys", quotes.select(QUOTES_KEY))
        try:
            met = self._con.execute(
                f"""
                select {_columns(QUOTES_KEY, "s.")}, t.rowid as row_id
                from part_keys as s join quotes as t on {_on(QUOTES_KEY)}
                where t.observed_at between ? and ?
                """,
                span,
            ).pl()
        finally:
            self._con.unregister("part_keys")
        return met.with_columns(pl.col("observed_at").dt.convert_time_zone("UTC"))

    def _compared(self, quotes: pl.DataFrame, met: pl.DataFrame, span: list[Any]) -> pl.DataFrame:
        """``met`` with whether each row of ``quotes`` differs from its stored version
        (``changed``), :data:`COMPARE_ROWS` rows at a time: only rows that are stored are
        compared, and never more of them at once."""
        if met.is_empty():
            return met.with_columns(changed=pl.lit(None, pl.Boolean))
        differs = " or ".join(f"t.{c} is distinct from s.{c}" for c in QUOTES_VALUES)
        # Precedence: a history row (a CSV or backfilled daily value) never overwrites a
        # snapshot.
        changed = f"({differs}) and not (s.kind = 'history' and t.kind = 'snapshot')"
        compared = []
        for batch in met.iter_slices(COMPARE_ROWS):
            self._con.register("met_quotes", quotes.join(batch, on=list(QUOTES_KEY)))
            try:
                compared.append(
                    self._con.execute(
                        f"""
                        select {_columns(QUOTES_KEY, "s.")}, s.row_id, ({changed}) as changed
                        from met_quotes as s
                        join (
                            select rowid as row_id, {_columns(QUOTES)}
                            from quotes
                            where observed_at between ? and ?
                                and rowid in (select row_id from met_quotes)
                        ) as t on t.row_id = s.row_id
                        """,
                        span,
                    ).pl()
                )
            finally:
                self._con.unregister("met_quotes")
        return pl.concat(compared).with_columns(pl.col("observed_at").dt.convert_time_zone("UTC"))

    def finish(self) -> None:
        """Delete the stored versions the parts replaced and append the parts' rows; the merge
        is whole once this returns."""
        con = self._con
        try:
            # Every replaced version goes before any row is appended: a delete scans the
            # table, appended rows included. A part at a time, so that the row ids fit a small
            # hash table.
            for pending in self._pending:
                if pending.replaced:
                    with self._readable(pending) as rows:
                        con.execute(
                            f"delete from quotes where rowid in "
                            f"(select row_id from {rows} where row_id is not null)"
                        )
            for pending in self._pending:
                with self._readable(pending) as rows:
                    con.execute(
                        f"insert into quotes ({_columns(QUOTES)}) "
                        f"select {_columns(QUOTES)} from {rows}"
                    )
        finally:
            self.discard()

    @contextmanager
    def _readable(self, pending: _Pending) -> Iterator[str]:
        """A relation over ``pending``'s rows."""
        if isinstance(pending.rows, Path):
            yield f"read_parquet({_quoted(pending.rows)})"
            return
        self._con.register("pending_quotes", pending.rows)
        try:
            yield "pending_quotes"
        finally:
            self._con.unregister("pending_quotes")

    def discard(self) -> None:
        """Remove the staged files (the caller's transaction rolls back what was written)."""
        shutil.rmtree(self._directory, ignore_errors=True)


@contextmanager
def quotes_merge(con: duckdb.DuckDBPyConnection) -> Iterator[QuotesMerge]:
    """A :class:`QuotesMerge`, finished on leaving (not after an error: the caller's
    transaction rolls back)."""
    with memory_limit(con, get_store_settings().duckdb_merge_memory_limit):
        merging = QuotesMerge(con)
        try:
            yield merging
        except BaseException:
            merging.discard()
            raise
        merging.finish()


def merge_quotes(con: duckdb.DuckDBPyConnection, quotes: pl.DataFrame) -> MergeCounts:
    """Upsert one batch of quotes (see :class:`QuotesMerge`)."""
    if quotes.is_empty():
        return MergeCounts()
    with quotes_merge(con) as merging:
        return merging.merge(quotes)


def merge_quarantine(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> int:
    """Add quarantine rows not seen before; return how many were new."""
    if rows.is_empty():
        return 0
    with _staged(con, "stage_quarantine", rows, QUARANTINE):
        new = con.execute(
            f"""
            select count(*)
            from stage_quarantine as s
            anti join quarantine as t
                on {_on(QUARANTINE_KEY)}
            """
        ).fetchall()[0][0]
        con.execute(
            f"""
            merge into quarantine as t
            using stage_quarantine as s
                on {_on(QUARANTINE_KEY)}
            when not matched then insert ({_columns(QUARANTINE)})
                values ({_columns(QUARANTINE, "s.")})
            """
        )
    return int(new)


def merge_coins(con: duckdb.DuckDBPyConnection, coins: pl.DataFrame) -> int:
    """Insert newly founded coins; an existing coin is never rewritten."""
    if coins.is_empty():
        return 0
    with _staged(con, "stage_coins", coins, COINS):
        con.execute(
            f"""
            merge into coins as t
            using stage_coins as s
                on t.coin_id = s.coin_id
            when not matched then insert ({_columns(COINS)}) values ({_columns(COINS, "s.")})
            """
        )
    return coins.height


def merge_source_ids(con: duckdb.DuckDBPyConnection, mappings: pl.DataFrame) -> list[str]:
    """Insert new mappings; for stored ones only widen the seen range (mappings are sticky).
    Returns the coins whose mappings were added or changed, the ones :func:`refresh_coins`
    must look at again (none on a re-run over unchanged data: nothing is written)."""
    if mappings.is_empty():
        return []
    widened = (
        "s.first_seen_at < t.first_seen_at or s.last_seen_at > t.last_seen_at"
        " or s.last_snapshot_at > coalesce(t.last_snapshot_at, '-infinity'::timestamptz)"
    )
    with _staged(con, "stage_source_ids", mappings, COIN_SOURCE_IDS):
        touched = [
            coin
            for (coin,) in con.execute(
                f"""
                select distinct s.coin_id
                from stage_source_ids as s
                left join coin_source_ids as t
                    on {_on(COIN_SOURCE_IDS_KEY)}
                where t.coin_id is null or ({widened})
                order by s.coin_id
                """
            ).fetchall()
        ]
        if touched:
            con.execute(
                f"""
                merge into coin_source_ids as t
                using stage_source_ids as s
                    on {_on(COIN_SOURCE_IDS_KEY)}
                when matched and ({widened}) then update set
                    first_seen_at = least(t.first_seen_at, s.first_seen_at),
                    last_seen_at = greatest(t.last_seen_at, s.last_seen_at),
                    symbol = if(s.last_seen_at > t.last_seen_at, s.symbol, t.symbol),
                    name = if(s.last_seen_at > t.last_seen_at, s.name, t.name),
                    match_key = if(s.last_seen_at > t.last_seen_at, s.match_key, t.match_key),
                    last_snapshot_at = greatest(t.last_snapshot_at, s.last_snapshot_at)
                when not matched then insert ({_columns(COIN_SOURCE_IDS)})
                    values ({_columns(COIN_SOURCE_IDS, "s.")})
                """
            )
    return touched


def refresh_coins(
    con: duckdb.DuckDBPyConnection, coin_ids: list[str], source_order: list[str]
) -> None:
    """Name each coin after its asset from the first source in ``source_order`` and date it by
    its earliest asset, so a coin reads the same whichever source happened to found it."""
    if not coin_ids:
        return
    con.register(
        "touched_coins", pl.DataFrame({"coin_id": coin_ids}, schema={"coin_id": pl.String()})
    )
    try:
        con.execute(
            """
            with assets as (
                select a.*
                from coin_source_ids as a
                semi join touched_coins as t using (coin_id)
            ),
            best as (
                select
                    coin_id,
                    arg_min(symbol, (list_position(?, source), source_asset_id)) as symbol,
                    arg_min(name, (list_position(?, source), source_asset_id)) as name,
                    min(first_seen_at) as first_seen_at
                from assets
                group by coin_id
            )
            update coins
            set symbol = best.symbol, name = best.name, first_seen_at = best.first_seen_at
            from best
            where coins.coin_id = best.coin_id
                and (
                    coins.symbol is distinct from best.symbol
                    or coins.name is distinct from best.name
                    or coins.first_seen_at is distinct from best.first_seen_at
                )
            """,
            [source_order, source_order],
        )
    finally:
        con.unregister("touched_coins")


def _insert_new(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: pl.DataFrame,
    schema: pl.Schema,
    key: tuple[str, ...],
) -> int:
    """Insert the rows whose key ``table`` does not hold yet; stored rows are left as they are."""
    if rows.is_empty():
        return 0
    staged = f"stage_{table}"
    new_rows = f"from {staged} as s anti join {table} as t on {_on(key)}"
    with _staged(con, staged, rows, schema):
        (new,) = con.execute(f"select count(*) {new_rows}").fetchall()[0]
        con.execute(
            f"insert into {table} ({_columns(schema)}) select {_columns(schema, 's.')} {new_rows}"
        )
    return int(new)


def merge_contracts(con: duckdb.DuckDBPyConnection, contracts: pl.DataFrame) -> int:
    """Add contract addresses not known yet (a known one keeps the run that first published it)."""
    return _insert_new(con, "asset_contracts", contracts, ASSET_CONTRACTS, ASSET_CONTRACTS_KEY)


def merge_review(con: duckdb.DuckDBPyConnection, review: pl.DataFrame) -> int:
    """Queue new candidates; one already queued (pending or decided) is left as it is."""
    return _insert_new(con, "resolution_review", review, RESOLUTION_REVIEW, RESOLUTION_REVIEW_KEY)


def reopen_review(con: duckdb.DuckDBPyConnection, review: pl.DataFrame) -> int:
    """Queue candidates again: new ones are inserted, and one an automatic merge had settled
    (``superseded``) is pending again with the new evidence. A pending row, or one an operator
    decided, is left as it is."""
    if review.is_empty():
        return 0
    with _staged(con, "stage_reopened", review, RESOLUTION_REVIEW):
        rows = con.execute(
            f"""
            insert into resolution_review ({_columns(RESOLUTION_REVIEW)})
            select {_columns(RESOLUTION_REVIEW)} from stage_reopened
            on conflict ({", ".join(RESOLUTION_REVIEW_KEY)}) do update set
                status = 'pending',
                method = excluded.method,
                confidence = excluded.confidence,
                evidence = excluded.evidence,
                proposed_by_run = excluded.proposed_by_run,
                proposed_at = excluded.proposed_at,
                decided_by = null,
                decision_id = null
            where resolution_review.status = 'superseded'
            returning 1
            """
        ).fetchall()
    return len(rows)
