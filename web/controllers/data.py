"""Quotes: filtered, sorted, paged by keyset cursor (or offset)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

import duckdb
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from store import quote_pages
from web.dependencies import MAX_LIMIT
from web.errors import BadRequest
from web.schemas import Quote, QuotePage

Sort = Literal["observed_at", "-observed_at"]


def encode_cursor(observed_at: datetime, coin_id: str, source: str, sort: Sort) -> str:
    raw = json.dumps([observed_at.isoformat(), coin_id, source, sort]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[datetime, str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        observed_at, coin_id, source, cursor_sort = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(observed_at)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadRequest("cursor is not one this API issued; start again without it") from exc
    if cursor_sort != sort:
        raise BadRequest(f"cursor was issued for sort={cursor_sort}; repeat that sort or drop it")
    return when, str(coin_id), str(source)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class DataController(Controller):
    path = "/api/v1/data"
    tags = ("data",)

    @get(
        operation_id="listQuotes",
        summary="Quotes, newest first by default",
        description="Filter by coin, symbol, source and time; page with `cursor` (stable while "
        "data arrives) or `offset`. Times without a zone are read as UTC.",
        raises=[BadRequest],
        sync_to_thread=True,
    )
    def list_quotes(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        coin_id: Annotated[
            str | None, Parameter(description="Canonical coin id.", max_length=128)
        ] = None,
        symbol: Annotated[
            str | None,
            Parameter(description="Coins with this symbol (case-insensitive).", max_length=64),
        ] = None,
        source: Annotated[
            str | None,
            Parameter(description="coingecko, coinpaprika, coincap or csv.", max_length=32),
        ] = None,
        start: Annotated[
            datetime | None, Parameter(description="observed_at >= start (ISO 8601).")
        ] = None,
        end: Annotated[
            datetime | None, Parameter(description="observed_at < end (ISO 8601).")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
        offset: Annotated[
            int, Parameter(ge=0, le=10_000_000, description="Rows to skip (not with cursor).")
        ] = 0,
        cursor: Annotated[
            str | None,
            Parameter(description="next_cursor from the previous page.", max_length=1024),
        ] = None,
        sort: Annotated[
            Sort, Parameter(description="observed_at ascending, or -observed_at descending.")
        ] = "-observed_at",
    ) -> QuotePage:
        start, end = _utc(start), _utc(end)
        if start and end and start >= end:
            raise BadRequest("start must be before end")
        if cursor and offset:
            raise BadRequest("use either cursor or offset, not both")
        flt = quote_pages.QuoteFilter(
            coin_id=coin_id,
            symbol=symbol,
            source=source,
            start=start,
            end=end,
            descending=sort.startswith("-"),
            after=decode_cursor(cursor, sort) if cursor else None,
        )
        rows = quote_pages.quotes(db, flt, limit=limit, offset=offset)
        # The rows are typed by the query and ordered as Quote's fields (a test holds them
        # equal): built directly, not converted from dicts.
        items = [Quote(*row) for row in rows]
        next_cursor = None
        if len(items) == limit:
            last = items[-1]
            next_cursor = encode_cursor(last.observed_at, last.coin_id, last.source, sort)
        return QuotePage(items=items, limit=limit, next_cursor=next_cursor)
