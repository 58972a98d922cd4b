"""What keeps a request cheap on a large snapshot: counts kept at publish instead of recounted,
pages of coins read by their ids, pages of quotes that stop where their work is bounded."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import duckdb
import pytest
from litestar.testing import TestClient

from store import quote_pages
from store.connection import open_read_only
from tests.web.conftest import Published
from web.app import create_app
from web.settings import WebSettings

Client = TestClient  # type: ignore[type-arg]

RECOUNT = """
    select source, count(*) as quotes, count(distinct coin_id) as coins
    from quotes
    group by source
    order by source
"""


def get_json(client: Client, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def own_serving(published: Published, tmp_path: Path) -> Path:
    """A copy of the published snapshot the test may change before serving it."""
    serving = tmp_path / "serving.duckdb"
    shutil.copyfile(published.data_dir / "serving.duckdb", serving)
    return serving


@contextmanager
def serve(serving: Path) -> Iterator[Client]:
    with TestClient(app=create_app(WebSettings(), snapshot_path=serving)) as client:
        yield client


def change(serving: Path, *statements: str) -> None:
    con = duckdb.connect(str(serving))
    try:
        for statement in statements:
            con.execute(statement)
        con.execute("checkpoint")
    finally:
        con.close()


def recount(serving: Path) -> list[tuple[Any, ...]]:
    """The per-source counts worked out from the snapshot's quotes."""
    con = open_read_only(serving)
    try:
        return con.execute(RECOUNT).fetchall()
    finally:
        con.close()


def stats_by_source(client: Client) -> list[tuple[str, int, int]]:
    body = get_json(client, "/api/v1/stats")
    return sorted((s["source"], s["quotes"], s["coins"]) for s in body["sources"])


def test_the_per_source_counts_kept_at_publish_equal_a_recount(published: Published) -> None:
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        kept = con.execute("select * from serving_source_quotes order by source").fetchall()
        recounted = con.execute(RECOUNT).fetchall()
    finally:
        con.close()
    assert kept == recounted
    assert len(kept) == 4, "every source of the demo has quotes"


def test_stats_read_the_counts_kept_at_publish(own_serving: Path) -> None:
    # Proof that no request counts the quotes again: a kept count that no longer agrees with the
    # quotes is the one answered.
    change(own_serving, "update serving_source_quotes set quotes = quotes + 1000")
    recounted = recount(own_serving)
    with serve(own_serving) as client:
        assert stats_by_source(client) == [(s, q + 1000, c) for s, q, c in recounted]


def test_a_snapshot_published_without_the_counts_is_recounted(own_serving: Path) -> None:
    change(own_serving, "drop table if exists serving_source_quotes")
    recounted = recount(own_serving)
    with serve(own_serving) as client:
        assert stats_by_source(client) == recounted


def test_pages_of_coins_walk_every_coin_once_in_order(client: Client, published: Published) -> None:
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        expected = [
            c for (c,) in con.execute("select coin_id from coins order by coin_id").fetchall()
        ]
        by_symbol = con.execute(
            "select lower(symbol), list(coin_id order by coin_id) from coins group by all "
            "order by count(*) desc limit 1"
        ).fetchall()[0]
    finally:
        con.close()
    walked: list[str] = []
    for offset in range(0, len(expected) + 7, 7):
        page = get_json(client, f"/api/v1/coins?limit=7&offset={offset}")
        assert page["total"] == len(expected)
        walked += [c["coin_id"] for c in page["items"]]
    assert walked == expected
    symbol, coins = by_symbol
    assert len(coins) > 1, "the demo has coins sharing a symbol"
    page = get_json(client, f"/api/v1/coins?symbol={symbol.upper()}&limit=1&offset=1")
    assert (page["total"], [c["coin_id"] for c in page["items"]]) == (len(coins), coins[1:2])
    assert get_json(client, "/api/v1/coins?symbol=no-such-symbol")["items"] == []


def test_a_page_of_a_coin_ends_at_the_coin_page_bound_with_a_cursor_that_walks_on(
    client: Client, published: Published
) -> None:
    """Whatever its limit, a page of chosen coins holds at most MAX_COIN_PAGE_ROWS quotes and
    names the next page: following it gives every quote of the coin once, in order."""
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        coin, quotes = con.execute(
            "select coin_id, count(*) from quotes group by all order by 2 desc limit 1"
        ).fetchall()[0]
    finally:
        con.close()
    bound = 7
    assert quotes > 2 * bound, "the busiest coin of the demo fills several pages"
    seen: list[tuple[datetime, str]] = []
    url = f"/api/v1/data?coin_id={coin}&limit=1000"
    with patch.object(quote_pages, "MAX_COIN_PAGE_ROWS", bound):
        page = get_json(client, url)
        while True:
            assert len(page["items"]) <= bound
            seen += [(datetime.fromisoformat(q["observed_at"]), q["source"]) for q in page["items"]]
            if page["next_cursor"] is None:
                break
            assert len(page["items"]) == bound, "only a full page continues"
            page = get_json(client, f"{url}&cursor={page['next_cursor']}")
    assert len(seen) == quotes == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_what_is_alive_once_started_is_kept_out_of_the_collector(published: Published) -> None:
    """A full collection walks every object the collector tracks (~80 ms over the app's
    ~150k): frozen at startup, they cost no request anything; unfrozen again at shutdown."""
    serving = published.data_dir / "serving.duckdb"
    with TestClient(app=create_app(WebSettings(), snapshot_path=serving)) as client:
        assert gc.get_freeze_count() > 10_000
        get_json(client, "/api/v1/stats")
    assert gc.get_freeze_count() == 0
