"""The API benchmark's baseline: a naive Litestar + DuckDB endpoint over the same snapshot.

What a first attempt at the same three paths looks like: one read-only connection, a cursor
per request, ``order by observed_at desc limit ?`` over the whole table (joined to ``coins`` for
a symbol), rows returned as dicts. No paging cursor, no exact money text, no validation beyond
the types. Served like Kasparro's app (uvicorn, one worker) so that the two compare:

    KASPARRO_NAIVE_SNAPSHOT=serving.duckdb uvicorn --factory bench.naive_api:create_app
"""

from __future__ import annotations

import os
from typing import Any

import duckdb
from litestar import Litestar, get


def create_app() -> Litestar:
    con = duckdb.connect(os.environ["KASPARRO_NAIVE_SNAPSHOT"], read_only=True)

    @get("/ping", sync_to_thread=False)
    def ping() -> dict[str, bool]:
        return {"ok": True}

    @get("/api/v1/data", sync_to_thread=True)
    def data(limit: int = 100, symbol: str | None = None) -> list[dict[str, Any]]:
        cur = con.cursor()
        try:
            if symbol is None:
                cur.execute("select * from quotes order by observed_at desc limit ?", [limit])
            else:
                cur.execute(
                    """
                    select q.*
                    from quotes as q
                    join coins as c using (coin_id)
                    where lower(c.symbol) = lower(?)
                    order by q.observed_at desc
                    limit ?
                    """,
                    [symbol, limit],
                )
            names = [column[0] for column in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    return Litestar([ping, data])
