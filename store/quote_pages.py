"""A page of quotes, filtered and ordered by (observed_at, coin_id, source), read from a window.

Sorting the whole table for every page costs ~10-45 ms of CPU at a million quotes (the more,
the less the storage follows time). A page is instead read from a window of time at the end it
starts from (the newest quotes, the oldest, or the cursor's position), so DuckDB skips every row
group outside it. The window is sized from the table's statistics to hold a few times the rows
the page needs, and widened (up to everything) while it holds fewer: rows outside a window sort
after every row inside it, so a window that fills the page gives the same page as the whole table.

Rows leave as tuples in :data:`QUOTE_FIELDS` order (a polars frame would cost ~10% of a page
request), money as exact text as everywhere in :mod:`store.queries`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from store.queries import money_text
from store.serving import CoinIndex, QuoteStats, coin_index, quote_stats

if TYPE_CHECKING:
    from store.quote_layout import QuoteLayout

QUOTE_FIELDS = (
    "coin_id",
    "source",
    "source_asset_id",
    "observed_at",
    "symbol",
    "name",
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "pct_change_24h",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "rank",
    "run_id",
)
"""The columns of a quote row, in order."""

_MONEY = ("price_usd", "market_cap_usd", "volume_24h_usd")
_SELECT = ",\n".join(
    f"{money_text(f'q.{field}')} as {field}" if field in _MONEY else f"q.{field}"
    for field in QUOTE_FIELDS
)

WINDOW_SLACK = 4.0
"""A page's first window is sized to hold this many times the rows the page needs."""
WINDOW_GROWTH = 8.0
"""A window that held too few rows is widened this many times over, until it spans everything."""
MAX_SCAN_ROWS = 250_000
"""The widest window one page may read, in rows (at the table's mean rate). A page whose rows
are sparser ends early, with a cursor where the scan stopped. A coin's page costs ~45 ms per
million rows of window at 10M quotes (the scan, and a block of every column read for each of
its rows, which lie apart): this bound keeps it near 12 ms, ~30 of its quotes at the benchmark's
10,000 coins, where 1,000,000 rows cost 45 ms for ~110."""
MAX_COIN_PAGE_ROWS = 100
"""The most quotes a page of chosen coins (``coin_id`` or ``symbol``) holds, whatever its limit:
their rows lie apart, and each costs a block of every column (1,000 quotes of a symbol's 124
coins: ~45 ms at 10M quotes; 100: ~10 ms). A longer page ends here, with a cursor."""


@dataclass(frozen=True)
class QuoteFilter:
    coin_id: str | None = None
    symbol: str | None = None
    source: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    descending: bool = True
    after: tuple[datetime, str, str] | None = None
    """Keyset cursor: the (observed_at, coin_id, source) of the last row already returned."""


@dataclass
class _Where:
    conditions: list[str]
    params: list[object]

    def add(self, condition: str, *params: object) -> None:
        self.conditions.append(condition)
        self.params.extend(params)


def _utc(value: datetime) -> datetime:
    """A time without a zone is UTC, as the warehouse's session reads it."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _coin_ids(
    cur: duckdb.DuckDBPyConnection, flt: QuoteFilter, coins: CoinIndex | None
) -> list[str] | None:
    """The coins the filter allows (None: any), matched without regard to case. A symbol or id
    is resolved here, on the small coins table (or its index, built once per snapshot), so that
    the scan of quotes filters on bound ids and no match scans nothing."""
    if flt.symbol is None and flt.coin_id is None:
        return None
    return _matching(flt, coins if coins is not None else coin_index(cur))


def _matching(flt: QuoteFilter, coins: CoinIndex) -> list[str]:
    by_symbol = coins.with_symbol(flt.symbol) if flt.symbol is not None else None
    by_id = coins.with_id(flt.coin_id) if flt.coin_id is not None else None
    if by_symbol is None:
        return list(by_id or ())
    if by_id is None:
        return list(by_symbol)
    return [c for c in by_symbol if c in by_id]


def _where(flt: QuoteFilter, coin_ids: list[str] | None) -> _Where:
    where = _Where([], [])
    if coin_ids == []:
        where.add("false")
    elif coin_ids is not None and len(coin_ids) == 1:
        where.add("q.coin_id = ?", coin_ids[0])
    elif coin_ids is not None:
        # Through the coins table, one JSON parameter: a list parameter costs ~0.1 ms per id
        # to bind (11 ms for a symbol's 124 coins), and a list of values unnested is joined to
        # the scan after reading every column, where a join with a table's rows lets DuckDB
        # push the ids into the scan (35 ms instead of 70 for 1,000 quotes of 124 coins).
        where.add(
            "q.coin_id in (select c.coin_id from coins as c "
            "where list_contains(?::json::varchar[], c.coin_id))",
            json.dumps(coin_ids),
        )
    if flt.source is not None:
        where.add("q.source = ?", flt.source)
    if flt.start is not None:
        where.add("q.observed_at >= ?", flt.start)
    if flt.end is not None:
        where.add("q.observed_at < ?", flt.end)
    if flt.after is not None:
        comparison = "<" if flt.descending else ">"
        where.add(f"(q.observed_at, q.coin_id, q.source) {comparison} (?, ?, ?)", *flt.after)
        # Implied by the row comparison, but only a plain bound lets DuckDB skip row groups.
        where.add(f"q.observed_at {comparison}= ?", flt.after[0])
    return where


@dataclass(frozen=True)
class _Window:
    where: _Where
    resume_at: datetime | None
    """Set on the last window when it stops short of the end: the scan's time boundary."""
    last: bool


def _windows(
    cur: duckdb.DuckDBPyConnection,
    flt: QuoteFilter,
    *,
    need: int,
    stats: QuoteStats | None,
    coins: CoinIndex | None,
) -> Iterator[_Window]:
    """Ever wider windows of time from where the page starts, the last one marked: it spans
    everything, or as much as :data:`MAX_SCAN_ROWS` allows (then it names where it stopped)."""
    coin_ids = _coin_ids(cur, flt, coins)
    where = _where(flt, coin_ids)
    if coin_ids == []:  # no coin matches: DuckDB answers `where false` without scanning
        yield _Window(where, None, last=True)
        return
    if stats is None:
        stats = quote_stats(cur)
    first, last, rows = stats.first_observed_at, stats.last_observed_at, stats.quotes
    if first is None or last is None or last <= first:
        yield _Window(where, None, last=True)
        return
    per_second = rows / (last - first).total_seconds()
    # The most time one request may scan: beyond it a page ends early with a cursor.
    widest = MAX_SCAN_ROWS / per_second
    if coin_ids is not None and stats.coins:
        per_second *= min(1.0, len(coin_ids) / stats.coins)
    # A window starts at `near`, where the page starts, and never needs to reach past `far`.
    cursor_at = flt.after[0] if flt.after else None
    if flt.descending:
        near = min(_utc(t) for t in (last, flt.end, cursor_at) if t is not None)
        far = max(_utc(t) for t in (first, flt.start) if t is not None)
    else:
        near = max(_utc(t) for t in (first, flt.start, cursor_at) if t is not None)
        far = min(_utc(t) for t in (last, flt.end) if t is not None)
    reach = ((near - far) if flt.descending else (far - near)).total_seconds()
    seconds = min(WINDOW_SLACK * need / per_second, widest)
    while seconds < reach:
        width = timedelta(seconds=seconds)
        bound = near - width if flt.descending else near + width
        bounded = _Where(list(where.conditions), list(where.params))
        bounded.add("q.observed_at >= ?" if flt.descending else "q.observed_at < ?", bound)
        capped = seconds >= widest
        yield _Window(bounded, bound if capped else None, last=capped)
        if capped:
            return
        seconds = min(seconds * WINDOW_GROWTH, widest)
    yield _Window(where, None, last=True)


@dataclass(frozen=True)
class Page:
    rows: list[tuple[Any, ...]]
    """Quotes as rows of :data:`QUOTE_FIELDS`."""
    resume_at: datetime | None
    """When the page holds fewer rows than asked because the scan stopped at this time (not at
    the end): the next page starts there."""
    limit: int
    """The most rows this page could hold: the limit asked, or less for chosen coins
    (:data:`MAX_COIN_PAGE_ROWS`). A page that holds this many continues after its last row."""
    encoded: list[memoryview] | None = None
    """From a quote layout: the quotes as JSON objects (keys :data:`QUOTE_FIELDS`), instead
    of :attr:`rows`."""
    last_key: tuple[datetime, str, str] | None = None
    """With :attr:`encoded`, when the page is full: its last (observed_at, coin_id, source)."""


def read_page(
    cur: duckdb.DuckDBPyConnection,
    flt: QuoteFilter,
    *,
    limit: int,
    offset: int,
    stats: QuoteStats | None = None,
    coins: CoinIndex | None = None,
) -> Page:
    """Quotes matching ``flt``, ordered by (observed_at, coin_id, source), read from the
    narrowest window of time that holds the page; at most :data:`MAX_COIN_PAGE_ROWS` of them
    when ``flt`` chooses coins."""
    limit = _page_limit(flt, limit)
    for window in _windows(cur, flt, need=offset + limit, stats=stats, coins=coins):
        rows = _page(cur, flt, window.where, limit=limit, offset=offset)
        # A window that holds offset + limit rows gives the page: every row outside it sorts
        # after them.
        if len(rows) == limit or window.last:
            return Page(rows, window.resume_at if len(rows) < limit else None, limit)
    raise AssertionError("the last window is always marked")  # pragma: no cover


def _page_limit(flt: QuoteFilter, limit: int) -> int:
    if flt.coin_id is not None or flt.symbol is not None:
        return min(limit, MAX_COIN_PAGE_ROWS)
    return limit


def layout_page(
    layout: QuoteLayout, flt: QuoteFilter, *, limit: int, offset: int, coins: CoinIndex
) -> Page | None:
    """The page :func:`read_page` gives, from the snapshot's quote layout, with no query;
    None when the layout does not hold it."""
    coin_ids = None
    if flt.coin_id is not None or flt.symbol is not None:
        coin_ids = _matching(flt, coins)
    return layout.read_page(flt, coin_ids, limit=_page_limit(flt, limit), offset=offset)


def quotes(
    cur: duckdb.DuckDBPyConnection, flt: QuoteFilter, *, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    """The rows of :func:`read_page`."""
    return read_page(cur, flt, limit=limit, offset=offset).rows


def _order(flt: QuoteFilter) -> str:
    direction = "desc" if flt.descending else "asc"
    return f"q.observed_at {direction}, q.coin_id {direction}, q.source {direction}"


def _page_sql(flt: QuoteFilter, where: _Where) -> str:
    order = _order(flt)
    condition = f"where {' and '.join(where.conditions)}" if where.conditions else ""
    return f"""
        with page as (
            -- Pick the page first, format it after: rendering money as text for every
            -- candidate row would cost more than the sort.
            select *
            from quotes as q
            {condition}
            order by {order}
            limit ? offset ?
        )
        select {_SELECT}
        from page as q
        order by {order}
        """


def _page(
    cur: duckdb.DuckDBPyConnection, flt: QuoteFilter, where: _Where, *, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    return cur.execute(_page_sql(flt, where), [*where.params, limit, offset]).fetchall()


def _count(cur: duckdb.DuckDBPyConnection, where: _Where, need: int) -> int:
    condition = f"where {' and '.join(where.conditions)}" if where.conditions else ""
    sql = f"select count(*) from (select 1 from quotes as q {condition} limit ?)"
    return int(cur.execute(sql, [*where.params, need]).fetchall()[0][0])


@dataclass(frozen=True)
class Stream:
    reader: pa.RecordBatchReader
    """The rows :func:`read_page` gives, as Arrow batches read as they are consumed."""
    last_key: tuple[datetime, str, str] | None
    """The page's last (observed_at, coin_id, source) when it is full: where the next starts."""
    resume_at: datetime | None
    """As :attr:`Page.resume_at`."""


def stream_page(
    cur: duckdb.DuckDBPyConnection,
    flt: QuoteFilter,
    *,
    limit: int,
    offset: int,
    batch_rows: int,
    stats: QuoteStats | None = None,
    coins: CoinIndex | None = None,
) -> Stream:
    """The page :func:`read_page` gives, streamed in batches of at most ``batch_rows`` rows (an
    export's memory holds a batch, not the page). Each window is probed for its page's last
    key first, so where the next page starts is known before the first row."""
    need = offset + limit
    order = _order(flt)
    for window in _windows(cur, flt, need=need, stats=stats, coins=coins):
        condition = f"where {' and '.join(window.where.conditions)}"
        found = cur.execute(
            f"""
            select q.observed_at, q.coin_id, q.source
            from quotes as q
            {condition if window.where.conditions else ""}
            order by {order}
            limit 1 offset ?
            """,
            [*window.where.params, need - 1],
        ).fetchall()
        if not found and not window.last:
            continue
        cur.execute(_page_sql(flt, window.where), [*window.where.params, limit, offset])
        last_key = (found[0][0], found[0][1], found[0][2]) if found else None
        return Stream(
            cur.to_arrow_reader(batch_rows),
            last_key,
            window.resume_at if not found else None,
        )
    raise AssertionError("the last window is always marked")  # pragma: no cover
