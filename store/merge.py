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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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


def _columns(schema: pl.Schema, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{c}" for c in schema)


STAGE_ON_DISK_ROWS = 20_000
"""Batches this large are staged through a Parquet file rather than handed to DuckDB as a
frame. DuckDB writes the rows it appends from a file scan to the database file as it goes, but
keeps the rows appended from a frame in memory until the transaction commits: a 428k-row CSV
file held ~200 MB more (``python -m bench.csv_memory``)."""


def staging_directory(warehouse: Path) -> Path:
    """Where large batches are staged while they load into ``warehouse``: emptied whenever the
    warehouse is opened for writing (a killed load leaves its files behind)."""
    return warehouse.with_name(warehouse.name + ".staging")


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
    (database,) = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone() or (None,)
    directory = staging_directory(Path(database)) if database else Path(tempfile.gettempdir())
    directory.mkdir(exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".parquet", dir=directory)
    os.close(fd)
    try:
        frame.write_parquet(path)
        quoted = path.replace("'", "''")
        con.execute(f"create or replace temp view {name} as select * from read_parquet('{quoted}')")
        try:
            yield
        finally:
            # After a failed statement the transaction is aborted, and its rollback drops it.
            with contextlib.suppress(duckdb.TransactionException):
                con.execute(f"drop view if exists {name}")
    finally:
        os.unlink(path)


QUOTES_SCOPE = pl.Schema({"source": pl.String(), "coin_id": pl.String()})
"""The (source, coin) pairs a :class:`QuotesMerge` may meet stored rows of."""


class QuotesMerge:
    """Quotes upserted on (coin_id, source, observed_at), part after part, within the caller's
    transaction; each part must hold each key once, and no key of another part.

    A history row meeting a stored snapshot row for the same key leaves it as it is (counted
    unchanged); a snapshot replaces a history row. A row is changed only when one of its value
    columns differs (lineage alone never counts).

    The stored rows a load may meet (its coins of its source, within its time span) are copied
    aside once, before anything is written, and each part is compared with that copy. Compared
    with the table itself, each part would scan the rows the parts before it appended in the
    same transaction, which DuckDB holds apart until the commit: a 500 MB CSV file slowed part
    after part and ran out of memory after 3.4M rows at 64 MiB. A changed row is deleted (by
    its row id, all together at :meth:`finish`) and inserted again rather than updated:
    DuckDB keeps a transaction's updated values in memory it cannot spill, and reloading a
    changed 50 MB CSV file (381k rows updated) ran out of memory at 64 and 128 MiB.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        scope: pl.DataFrame,
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self._con = con
        self._doomed = 0
        with _staged(con, "stage_scope", scope, QUOTES_SCOPE):
            con.execute(
                f"""
                create or replace temp table merge_stored as
                select rowid as row_id, {_columns(QUOTES)}
                from quotes semi join stage_scope using (source, coin_id)
                where observed_at between ? and ?
                """,
                [since, until],
            )
        con.execute("create or replace temp table merge_doomed (row_id bigint)")

    def merge(self, quotes: pl.DataFrame) -> MergeCounts:
        if quotes.is_empty():
            return MergeCounts()
        differs = " or ".join(f"t.{c} is distinct from s.{c}" for c in QUOTES_VALUES)
        # Precedence: a history row (a CSV or backfilled daily value) never overwrites a
        # snapshot.
        changed = f"({differs}) and not (s.kind = 'history' and t.kind = 'snapshot')"
        # Only the part's coins of the copy: the join must not hold all of it for each part.
        stored = (
            "(from merge_stored semi join (select distinct coin_id from stage_quotes) "
            "using (coin_id))"
        )
        con = self._con
        with _staged(con, "stage_quotes", quotes, QUOTES):
            inserted, updated, total = con.execute(
                f"""
                select
                    count(*) filter (where t.coin_id is null),
                    count(*) filter (where t.coin_id is not null and ({changed})),
                    count(*)
                from stage_quotes as s
                left join {stored} as t on {_on(QUOTES_KEY)}
                """
            ).fetchall()[0]
            columns = _columns(QUOTES)
            if inserted == total:
                # Nothing to match (a first load, a fresh snapshot): a plain append.
                con.execute(f"insert into quotes ({columns}) select {columns} from stage_quotes")
            elif inserted or updated:
                if updated:
                    con.execute(
                        f"""
                        insert into merge_doomed
                        select t.row_id
                        from stage_quotes as s join {stored} as t on {_on(QUOTES_KEY)}
                        where {changed}
                        """
                    )
                    self._doomed += updated
                con.execute(
                    f"""
                    insert into quotes ({columns})
                    select {_columns(QUOTES, "s.")}
                    from stage_quotes as s
                    left join {stored} as t on {_on(QUOTES_KEY)}
                    where t.coin_id is null or ({changed})
                    """
                )
        return MergeCounts(inserted, updated, total - inserted - updated)

    def finish(self) -> None:
        """Delete the stored rows the parts replaced; the merge is whole once this returns."""
        if self._doomed:
            self._con.execute("delete from quotes where rowid in (select row_id from merge_doomed)")
        self._con.execute("drop table merge_stored")
        self._con.execute("drop table merge_doomed")


@contextmanager
def quotes_merge(
    con: duckdb.DuckDBPyConnection,
    scope: pl.DataFrame,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[QuotesMerge]:
    """A :class:`QuotesMerge` over ``scope`` (``source``, ``coin_id``) and the observations from
    ``since`` to ``until``, finished on leaving (not after an error: the caller's transaction
    rolls back)."""
    with memory_limit(con, get_store_settings().duckdb_merge_memory_limit):
        merging = QuotesMerge(con, scope, since, until)
        yield merging
        merging.finish()


def merge_quotes(con: duckdb.DuckDBPyConnection, quotes: pl.DataFrame) -> MergeCounts:
    """Upsert one batch of quotes (see :class:`QuotesMerge`)."""
    if quotes.is_empty():
        return MergeCounts()
    scope = quotes.select(QUOTES_SCOPE.names()).unique()
    since, until = quotes["observed_at"].min(), quotes["observed_at"].max()
    assert isinstance(since, datetime)
    assert isinstance(until, datetime)
    with quotes_merge(con, scope, since, until) as merging:
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
