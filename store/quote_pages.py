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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from store.queries import money_text

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


def _coin_ids(cur: duckdb.DuckDBPyConnection, flt: QuoteFilter) -> list[str] | None:
    """The coins the filter allows (None: any). A symbol is resolved here, on the small coins
    table, so that the scan of quotes filters on bound ids and no match scans nothing."""
    if flt.symbol is None:
        return None if flt.coin_id is None else [flt.coin_id]
    rows = cur.execute(
        "select coin_id from coins where lower(symbol) = lower(?) order by coin_id", [flt.symbol]
    ).fetchall()
    return [str(c) for (c,) in rows if flt.coin_id is None or c == flt.coin_id]


def _where(flt: QuoteFilter, coin_ids: list[str] | None) -> _Where:
    where = _Where([], [])
    if coin_ids == []:
        where.add("false")
    elif coin_ids is not None and len(coin_ids) == 1:
        where.add("q.coin_id = ?", coin_ids[0])
    elif coin_ids is not None:
        where.add("q.coin_id in (select unnest(?::varchar[]))", coin_ids)
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


def quotes(
    cur: duckdb.DuckDBPyConnection, flt: QuoteFilter, *, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    """Quotes matching ``flt``, ordered by (observed_at, coin_id, source), as rows of
    :data:`QUOTE_FIELDS`."""
    coin_ids = _coin_ids(cur, flt)
    where = _where(flt, coin_ids)
    if coin_ids == []:  # no coin matches: DuckDB answers `where false` without scanning
        return _page(cur, flt, where, limit=limit, offset=offset)
    first, last, rows = cur.execute(
        "select min(observed_at), max(observed_at), count(*) from quotes"
    ).fetchall()[0]
    if first is None or last is None or last <= first:
        return _page(cur, flt, where, limit=limit, offset=offset)
    per_second = rows / (last - first).total_seconds()
    if coin_ids is not None:
        coins = cur.execute("select count(*) from coins").fetchall()[0][0]
        per_second *= min(1.0, len(coin_ids) / coins) if coins else 1.0
    # A window starts at `near`, where the page starts, and never needs to reach past `far`.
    cursor_at = flt.after[0] if flt.after else None
    if flt.descending:
        near = min(_utc(t) for t in (last, flt.end, cursor_at) if t is not None)
        far = max(_utc(t) for t in (first, flt.start) if t is not None)
    else:
        near = max(_utc(t) for t in (first, flt.start, cursor_at) if t is not None)
        far = min(_utc(t) for t in (last, flt.end) if t is not None)
    reach = ((near - far) if flt.descending else (far - near)).total_seconds()
    seconds = WINDOW_SLACK * (offset + limit) / per_second
    while seconds < reach:
        width = timedelta(seconds=seconds)
        bounded = _Where(list(where.conditions), list(where.params))
        if flt.descending:
            bounded.add("q.observed_at >= ?", near - width)
        else:
            bounded.add("q.observed_at < ?", near + width)
        page = _page(cur, flt, bounded, limit=limit, offset=offset)
        if len(page) == limit:
            # The window held offset + limit rows, and every row outside it sorts after them.
            return page
        seconds *= WINDOW_GROWTH
    return _page(cur, flt, where, limit=limit, offset=offset)


def _page(
    cur: duckdb.DuckDBPyConnection, flt: QuoteFilter, where: _Where, *, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    direction = "desc" if flt.descending else "asc"
    order = f"q.observed_at {direction}, q.coin_id {direction}, q.source {direction}"
    condition = f"where {' and '.join(where.conditions)}" if where.conditions else ""
    return cur.execute(
        f"""
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
        """,
        [*where.params, limit, offset],
    ).fetchall()
