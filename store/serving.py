"""What publishing adds to the serving snapshot beside the warehouse's own tables.

The snapshot never changes between publishes, so what every request would otherwise work out
again is worked out once, when it is published (each costs one pass over ``quotes`` at most):

* ``serving_sources``: the sources this Kasparro knows, in load order (the flows' list: the web
  layer must not import flows, so the snapshot carries it), for validating ``source=``.
* ``serving_quote_stats``: count and time span of ``quotes``, which size the windows pages are
  read from (:mod:`store.quote_pages`).
* ``serving_source_quotes``: per source, its quotes and the distinct coins they are of, which
  ``/api/v1/stats`` shows (counted on each request, 880 ms at 10M quotes; ~0.3 s once here).

Layouts in coin order do not fit here: at 10M quotes on two cores rewriting ``quotes`` in coin
order takes ~20 s, a narrow (coin, rowid) order ~3 s and the latest quote per coin and source
1.5 s, each beyond publishing's 2 s per GB (the copy alone takes ~1 s per GB). The quote layout
(:mod:`store.quote_layout`) is built after the snapshot is published instead.

A snapshot published by an older Kasparro lacks them: the readers here then work the answer out
from the warehouse tables, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

SERVING_TABLES = ("serving_sources", "serving_quote_stats", "serving_source_quotes")

SOURCE_QUOTES_SQL = """
    select
        source,
        count(*) as quotes,
        count(distinct coin_id) as coins
    from quotes
    group by source
"""
"""Per source: quotes and the distinct coins they are of. Kept at publish in
``serving_source_quotes``; counted from ``quotes`` on a snapshot published without it."""


@dataclass(frozen=True)
class QuoteStats:
    quotes: int
    coins: int
    first_observed_at: datetime | None
    last_observed_at: datetime | None


def build_layouts(con: duckdb.DuckDBPyConnection, sources: Sequence[str]) -> None:
    """Create the serving tables in a fresh copy of the warehouse (``con`` writes to it)."""
    for table in SERVING_TABLES:
        con.execute(f"drop table if exists {table}")
    con.execute("create table serving_sources (source varchar not null, load_order integer)")
    con.executemany(
        "insert into serving_sources values (?, ?)", [[s, i] for i, s in enumerate(sources)]
    )
    con.execute(
        """
        create table serving_quote_stats as
        select
            count(*) as quotes,
            (select count(*) from coins) as coins,
            min(observed_at) as first_observed_at,
            max(observed_at) as last_observed_at
        from quotes
        """
    )
    con.execute(f"create table serving_source_quotes as {SOURCE_QUOTES_SQL}")


def source_quotes_relation(cur: duckdb.DuckDBPyConnection) -> str:
    """SQL naming the per-source counts (columns source, quotes, coins): the table kept at
    publish, or the count itself on a snapshot published before it existed."""
    if _has(cur, "serving_source_quotes"):
        return "serving_source_quotes"
    return f"({SOURCE_QUOTES_SQL})"


@dataclass(frozen=True)
class CoinIndex:
    """Coin ids by their lowercase id and by their lowercase symbol (ids and symbols are matched
    without regard to case), read once per snapshot from the small coins table."""

    by_id: dict[str, tuple[str, ...]]
    by_symbol: dict[str, tuple[str, ...]]
    ordered: tuple[str, ...] = ()
    """Every coin id, in the snapshot's order (``order by coin_id``): a page of coins is a slice
    of it, found without sorting the coins again."""

    def with_id(self, coin_id: str) -> tuple[str, ...]:
        return self.by_id.get(coin_id.lower(), ())

    def with_symbol(self, symbol: str) -> tuple[str, ...]:
        return self.by_symbol.get(symbol.lower(), ())


def coin_index(cur: duckdb.DuckDBPyConnection) -> CoinIndex:
    by_id: dict[str, list[str]] = {}
    by_symbol: dict[str, list[str]] = {}
    ordered = []
    for coin_id, symbol in cur.execute(
        "select coin_id, symbol from coins order by coin_id"
    ).fetchall():
        ordered.append(coin_id)
        by_id.setdefault(coin_id.lower(), []).append(coin_id)
        by_symbol.setdefault(symbol.lower(), []).append(coin_id)
    return CoinIndex(
        {k: tuple(v) for k, v in by_id.items()},
        {k: tuple(v) for k, v in by_symbol.items()},
        tuple(ordered),
    )


def _has(cur: duckdb.DuckDBPyConnection, table: str) -> bool:
    found = cur.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and table_name = ?",
        [table],
    ).fetchall()
    return bool(found[0][0])


def known_sources(cur: duckdb.DuckDBPyConnection) -> tuple[str, ...] | None:
    """The sources ``source=`` accepts; None when the snapshot predates the list (any goes)."""
    if not _has(cur, "serving_sources"):
        return None
    rows = cur.execute("select source from serving_sources order by load_order").fetchall()
    return tuple(str(s) for (s,) in rows)


def quote_stats(cur: duckdb.DuckDBPyConnection) -> QuoteStats:
    table = (
        "serving_quote_stats"
        if _has(cur, "serving_quote_stats")
        else "(select count(*) as quotes, (select count(*) from coins) as coins, "
        "min(observed_at) as first_observed_at, max(observed_at) as last_observed_at "
        "from quotes)"
    )
    quotes, coins, first, last = cur.execute(
        f"select quotes, coins, first_observed_at, last_observed_at from {table}"
    ).fetchall()[0]
    return QuoteStats(int(quotes), int(coins), first, last)
