"""Quotes: filtered, sorted, paged by keyset cursor; as JSON pages or as CSV and Parquet exports.

Every request's work is bounded: a page reads at most a window of time (see
:mod:`store.quote_pages`), offsets stop at :data:`MAX_OFFSET` (further on, the cursor is the way),
and a JSON page holds at most :data:`~web.dependencies.MAX_LIMIT` quotes, or
:data:`~store.quote_pages.MAX_COIN_PAGE_ROWS` of chosen coins (exports more, streamed).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from litestar import Controller, Request, Response, get
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter
from litestar.response import Stream

from store import quote_pages
from web.dependencies import MAX_LIMIT
from web.errors import BadRequest
from web.schemas import EncodedQuotePage, Quote, QuotePage
from web.snapshot import Snapshot
from web.versioned import (
    Facts,
    answer_from_cache,
    etag_headers,
    facts_of,
    known_facts,
    layout_of,
    respond,
    wants_csv,
)

Sort = Literal["observed_at", "-observed_at"]
Format = Literal["json", "csv", "parquet"]

MAX_OFFSET = 1_000
"""Deeper offsets cost a scan of every row skipped: they are refused in favour of the cursor."""
EXPORT_MAX_LIMIT = 100_000
"""Rows one CSV or Parquet export holds at most (the next export starts at its cursor)."""
EXPORT_BATCH_ROWS = 10_000
"""Rows read, rendered and sent at a time by an export: what its memory holds."""
NEXT_CURSOR_HEADER = "x-next-cursor"


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


def parse_moment(name: str, value: str | None) -> datetime | None:
    """ISO 8601: a date-time (UTC when it has no zone) or a date (its UTC midnight)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(
            f"{name}={value!r} is not an ISO 8601 date (2026-11-24) or date-time "
            "(2026-11-24T12:00:00Z)"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_source(source: str | None, facts: Facts) -> None:
    if source is not None and facts.sources is not None and source not in facts.sources:
        raise BadRequest(f"unknown source {source!r}; the sources are {', '.join(facts.sources)}")


def _next_cursor(
    last: tuple[datetime, str, str] | None, resume_at: datetime | None, sort: Sort
) -> str | None:
    if last is not None:
        return encode_cursor(*last, sort)
    if resume_at is not None:
        # Before (or after, ascending) every quote of that instant: coin ids are never empty.
        return encode_cursor(resume_at, "", "", sort)
    return None


def _csv_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes]:
    first = True
    for batch in reader:
        sink = io.BytesIO()
        pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=first))
        first = False
        yield sink.getvalue()
    if first:  # no rows: the header alone
        sink = io.BytesIO()
        pa_csv.write_csv(reader.schema.empty_table(), sink)
        yield sink.getvalue()


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken away as they are written."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        taken, self.chunks = b"".join(self.chunks), []
        return taken


def _parquet_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes]:
    drain = _Drain()
    with pq.ParquetWriter(drain, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)  # a row group per batch
            yield drain.take()
    yield drain.take()


def _closing(cursor: duckdb.DuckDBPyConnection, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        cursor.close()


EXPORTS = {
    200: ResponseSpec(
        QuotePage,
        description="JSON: a page of quotes. With `Accept: text/csv` or `format=csv`: CSV; "
        "with `format=parquet`: Parquet; both streamed, with the next page's cursor in "
        f"`{NEXT_CURSOR_HEADER}`.",
    ),
    304: ResponseSpec(None, description="If-None-Match named the current ETag: unchanged."),
}


CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


@dataclass
class ExportOperation(Operation):
    """The operation's 200 lists the export bodies beside the JSON page."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/csv"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            ok.content[PARQUET_MEDIA_TYPE] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
            )


class DataController(Controller):
    path = "/api/v1/data"
    tags = ("data",)
    before_request = staticmethod(answer_from_cache)

    @get(
        operation_id="listQuotes",
        summary="Quotes, newest first by default; as JSON pages or CSV and Parquet exports",
        description="Filter by coin, symbol (both case-insensitive), source and time; page with "
        "`cursor`. A page may hold fewer quotes than `limit` when the quotes are sparse in time, "
        f"and a JSON page of chosen coins (`coin_id` or `symbol`) holds at most "
        f"{quote_pages.MAX_COIN_PAGE_ROWS}: continue while `next_cursor` is set. Times without a "
        "zone are UTC; a date alone is its UTC midnight. Offsets beyond 1,000 are refused: use "
        "the cursor.",
        raises=[BadRequest],
        responses=EXPORTS,
        operation_class=ExportOperation,
    )
    async def list_quotes(
        self,
        request: Request[Any, Any, Any],
        snapshot: NamedDependency[Snapshot],
        *,
        coin_id: Annotated[
            str | None,
            Parameter(description="Canonical coin id (case-insensitive).", max_length=128),
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
            str | None,
            Parameter(
                description="observed_at >= start: ISO 8601 date-time, or a date (its UTC "
                "midnight).",
                max_length=64,
            ),
        ] = None,
        end: Annotated[
            str | None,
            Parameter(
                description="observed_at < end: ISO 8601 date-time, or a date (its UTC midnight).",
                max_length=64,
            ),
        ] = None,
        limit: Annotated[
            int,
            Parameter(
                ge=1,
                le=EXPORT_MAX_LIMIT,
                description=f"Page size: at most {MAX_LIMIT} as JSON, {EXPORT_MAX_LIMIT:,} as "
                "an export.",
            ),
        ] = 100,
        offset: Annotated[
            int,
            Parameter(
                ge=0,
                le=10_000_000,
                description=f"Rows to skip (at most {MAX_OFFSET:,}; not with cursor).",
            ),
        ] = 0,
        cursor: Annotated[
            str | None,
            Parameter(description="next_cursor from the previous page.", max_length=1024),
        ] = None,
        sort: Annotated[
            Sort, Parameter(description="observed_at ascending, or -observed_at descending.")
        ] = "-observed_at",
        format: Annotated[
            Format | None,
            Parameter(description="json (default), csv (as `Accept: text/csv`) or parquet."),
        ] = None,
    ) -> Response[QuotePage]:
        kind = format or ("csv" if wants_csv(request) else "json")
        start_at, end_at = parse_moment("start", start), parse_moment("end", end)
        if start_at and end_at and start_at >= end_at:
            raise BadRequest("start must be before end")
        if cursor and offset:
            raise BadRequest("use either cursor or offset, not both")
        if offset > MAX_OFFSET:
            raise BadRequest(
                f"offset {offset:,} is beyond {MAX_OFFSET:,}: page with cursor=<next_cursor of "
                "the previous page> instead"
            )
        if kind == "json" and limit > MAX_LIMIT:
            raise BadRequest(
                f"limit {limit:,} is above {MAX_LIMIT} for JSON: page with cursor, or export "
                f"(format=csv or format=parquet) up to {EXPORT_MAX_LIMIT:,} rows"
            )
        flt = quote_pages.QuoteFilter(
            coin_id=coin_id,
            symbol=symbol,
            source=source,
            start=start_at,
            end=end_at,
            descending=sort.startswith("-"),
            after=decode_cursor(cursor, sort) if cursor else None,
        )
        # A page the snapshot's quote layout holds is answered here, in the event loop: a few
        # hundred microseconds of Python, less than handing it to a thread and back (which,
        # with the GIL, set the latency of the distinct-URL workload). Anything that reads
        # DuckDB runs on a worker thread.
        if kind == "json" and (facts := known_facts(request)) is not None:
            _check_source(source, facts)
            layout = layout_of(request, facts)
            if layout is not None:
                page = quote_pages.layout_page(
                    layout, flt, limit=limit, offset=offset, coins=facts.coins
                )
                if page is not None:
                    return _json_page(request, page, limit=limit, sort=sort)
        return await sync_to_thread(
            _from_snapshot, request, snapshot, flt, kind=kind, limit=limit, offset=offset, sort=sort
        )


def _json_page(
    request: Request[Any, Any, Any], page: quote_pages.Page, *, limit: int, sort: Sort
) -> Response[Any]:
    if page.encoded is not None:  # from the quote layout: each quote's JSON, as kept
        return respond(
            request,
            EncodedQuotePage(
                items=[msgspec.Raw(quote) for quote in page.encoded],
                limit=limit,
                next_cursor=_next_cursor(page.last_key, None, sort),
            ),
        )
    # The rows are typed by the query and ordered as Quote's fields (a test holds them
    # equal): built directly, not converted from dicts.
    items = [Quote(*row) for row in page.rows]
    last = items[-1] if len(items) == page.limit else None
    next_cursor = _next_cursor(
        (last.observed_at, last.coin_id, last.source) if last else None, page.resume_at, sort
    )
    return respond(request, QuotePage(items=items, limit=limit, next_cursor=next_cursor))


def _from_snapshot(
    request: Request[Any, Any, Any],
    snapshot: Snapshot,
    flt: quote_pages.QuoteFilter,
    *,
    kind: str,
    limit: int,
    offset: int,
    sort: Sort,
) -> Response[Any]:
    """The page or export, read from the snapshot (on a worker thread)."""
    facts = facts_of(snapshot)
    _check_source(flt.source, facts)
    if kind != "json":
        return _export(
            request,
            snapshot,
            flt,
            kind=kind,
            limit=limit,
            offset=offset,
            facts=facts,
            sort=sort,
        )
    with snapshot.borrowed_cursor() as db:
        page = quote_pages.read_page(
            db, flt, limit=limit, offset=offset, stats=facts.stats, coins=facts.coins
        )
    if page.resume_at is not None and offset:
        raise BadRequest(
            "this offset reaches past the quotes one request may scan; page with cursor"
        )
    return _json_page(request, page, limit=limit, sort=sort)


def _export(
    request: Request[Any, Any, Any],
    snapshot: Snapshot,
    flt: quote_pages.QuoteFilter,
    *,
    kind: str,
    limit: int,
    offset: int,
    facts: Facts,
    sort: Sort,
) -> Stream:
    # A cursor of the export's own: the request's pooled one goes back before the body
    # is streamed.
    cursor = snapshot.cursor()
    try:
        found = quote_pages.stream_page(
            cursor,
            flt,
            limit=limit,
            offset=offset,
            batch_rows=EXPORT_BATCH_ROWS,
            stats=facts.stats,
            coins=facts.coins,
        )
    except BaseException:
        cursor.close()
        raise
    if found.resume_at is not None and offset:
        cursor.close()
        raise BadRequest(
            "this offset reaches past the quotes one request may scan; page with cursor"
        )
    headers = etag_headers(request)
    next_cursor = _next_cursor(found.last_key, found.resume_at, sort)
    if next_cursor is not None:
        headers[NEXT_CURSOR_HEADER] = next_cursor
    if kind == "parquet":
        chunks, media_type, name = (
            _parquet_chunks(found.reader),
            PARQUET_MEDIA_TYPE,
            "quotes.parquet",
        )
    else:
        chunks, media_type, name = (
            _csv_chunks(found.reader),
            CSV_MEDIA_TYPE,
            "quotes.csv",
        )
    headers["content-disposition"] = f'attachment; filename="{name}"'
    return Stream(_closing(cursor, chunks), media_type=media_type, headers=headers)
