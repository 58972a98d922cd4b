"""The quote layout gives the same pages as a sort of the whole table, and belongs to one
published snapshot."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import duckdb
import msgspec
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyarrow import ipc

from store import quote_layout, quote_pages
from store.connection import open_read_only, open_warehouse
from store.quote_layout import (
    LayoutError,
    QuoteLayout,
    build_after_publish,
    build_quote_layout,
    layout_directory,
    open_quote_layout,
    snapshot_name,
    write_quote_layout,
)
from store.quote_pages import QUOTE_FIELDS, QuoteFilter
from store.serving import coin_index
from store.settings import get_store_settings
from store.snapshot import file_identity, publish_snapshot
from tests.store.test_quote_pages import (
    COIN_IDS,
    SOURCES,
    T0,
    _coins,
    _quotes,
    expected,
    moments,
)


def _insert(con: duckdb.DuckDBPyConnection, quotes: pl.DataFrame) -> None:
    for table, frame in (("quotes", quotes), ("coins", _coins())):
        con.register("staged", frame)
        con.execute(f"insert into {table} ({', '.join(frame.columns)}) select * from staged")
        con.unregister("staged")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_warehouse(tmp_path_factory.mktemp("quote-layout") / "warehouse.duckdb")
    _insert(con, _quotes())
    yield con
    con.close()


@pytest.fixture(scope="module")
def layout(
    warehouse: duckdb.DuckDBPyConnection, tmp_path_factory: pytest.TempPathFactory
) -> QuoteLayout:
    directory = tmp_path_factory.mktemp("layout") / "snapshot-1"
    directory.mkdir()
    with patch.object(quote_layout, "BATCH_ROWS", 97):  # many chunks, runs across their ends
        write_quote_layout(warehouse, directory)
    return QuoteLayout(directory)


@pytest.fixture(scope="module")
def every_quote(warehouse: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return quote_pages.quotes(warehouse, QuoteFilter(), limit=10**6, offset=0)


def as_api(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows as the API's JSON encoder writes them, read back."""
    encoded = [msgspec.json.encode(dict(zip(QUOTE_FIELDS, r, strict=True))) for r in rows]
    return [msgspec.json.decode(quote) for quote in encoded]


def _page(
    con: duckdb.DuckDBPyConnection, layout: QuoteLayout, flt: QuoteFilter, limit: int, offset: int
) -> quote_pages.Page:
    """A page through :func:`quote_pages.layout_page`, which must not read DuckDB's quotes."""

    def scanned(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the page was read from the snapshot, not the layout")

    with patch.object(quote_pages, "_page", scanned):
        page = quote_pages.layout_page(
            layout, flt, limit=limit, offset=offset, coins=coin_index(con)
        )
    assert page is not None
    assert page.encoded is not None
    assert page.rows == []
    return page


def _from_layout(
    con: duckdb.DuckDBPyConnection, layout: QuoteLayout, flt: QuoteFilter, limit: int, offset: int
) -> list[dict[str, Any]]:
    encoded = _page(con, layout, flt, limit, offset).encoded
    assert encoded is not None
    return [msgspec.json.decode(quote) for quote in encoded]


@settings(max_examples=300)
@given(
    data=st.data(),
    coin_id=st.none() | st.sampled_from([*COIN_IDS, "COIN-A1", "no-such-coin"]),
    symbol=st.none() | st.sampled_from(["aaa", "BBB", "COIN-03", "ZZZ"]),
    source=st.none() | st.sampled_from([*SOURCES, "nowhere"]),
    start=st.none() | moments,
    end=st.none() | moments,
    descending=st.booleans(),
    limit=st.sampled_from([1, 2, 7, 100, 1000]),
    offset=st.sampled_from([0, 0, 1, 13, 250]),
)
def test_a_layout_page_equals_the_same_page_of_the_whole_table_sorted(
    warehouse: duckdb.DuckDBPyConnection,
    layout: QuoteLayout,
    every_quote: list[tuple[Any, ...]],
    data: st.DataObject,
    coin_id: str | None,
    symbol: str | None,
    source: str | None,
    start: datetime | None,
    end: datetime | None,
    descending: bool,
    limit: int,
    offset: int,
) -> None:
    after = None
    if data.draw(st.booleans()):
        row = data.draw(st.sampled_from(every_quote))
        after = (row[QUOTE_FIELDS.index("observed_at")], row[0], row[1])
        if data.draw(st.booleans()):  # a cursor where the scan stopped: before every coin
            after = (after[0], "", "")
        offset = 0
    flt = QuoteFilter(coin_id, symbol, source, start, end, descending, after)
    if coin_id is None and symbol is None and source is not None:
        assert layout.read_page(flt, None, limit=limit, offset=offset) is None
        return
    got = _from_layout(warehouse, layout, flt, limit, offset)
    if coin_id is not None or symbol is not None:
        limit = min(limit, quote_pages.MAX_COIN_PAGE_ROWS)
    wanted = expected(
        every_quote,
        QuoteFilter(None, symbol, source, start, end, descending, after),
        limit=10**6,
        offset=0,
    )
    if coin_id is not None:
        wanted = [r for r in wanted if r[0].lower() == coin_id.lower()]
    assert got == as_api(wanted[offset : offset + limit])


@pytest.mark.parametrize("chosen", [{}, {"coin_id": "coin-a2"}, {"symbol": "AAA"}])
@pytest.mark.parametrize("descending", [True, False])
def test_cursor_paging_over_the_layout_walks_every_quote_once_in_order_through_ties(
    warehouse: duckdb.DuckDBPyConnection,
    layout: QuoteLayout,
    every_quote: list[tuple[Any, ...]],
    chosen: dict[str, str],
    descending: bool,
) -> None:
    seen: list[dict[str, Any]] = []
    flt = QuoteFilter(descending=descending, **chosen)  # type: ignore[arg-type]
    while True:
        page = _page(warehouse, layout, flt, 37, 0)
        assert page.encoded is not None
        seen += [msgspec.json.decode(quote) for quote in page.encoded]
        if page.last_key is None:
            assert len(page.encoded) < 37
            break
        at, coin_id, source = page.last_key
        assert (seen[-1]["coin_id"], seen[-1]["source"]) == (coin_id, source)
        assert datetime.fromisoformat(seen[-1]["observed_at"]) == at
        flt = QuoteFilter(descending=descending, after=page.last_key, **chosen)  # type: ignore[arg-type]
    everything = QuoteFilter(descending=descending, **chosen)  # type: ignore[arg-type]
    assert seen == as_api(expected(every_quote, everything, limit=10**6, offset=0))
    assert len(seen) > 37


def test_an_empty_table_has_a_layout_of_no_pages(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    try:
        (tmp_path / "layout").mkdir()
        assert write_quote_layout(con, tmp_path / "layout") == 0
        layout = QuoteLayout(tmp_path / "layout")
        for flt in (
            QuoteFilter(),
            QuoteFilter(coin_id="coin-01"),
            QuoteFilter(after=(T0, "a", "b")),
        ):
            assert _from_layout(con, layout, flt, 10, 0) == []
    finally:
        con.close()


def _publish(tmp_path: Path, quotes: pl.DataFrame) -> Path:
    warehouse_path, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving.duckdb"
    con = open_warehouse(warehouse_path)
    try:
        con.execute("delete from quotes")
        con.execute("delete from coins")
        _insert(con, quotes)
        con.execute("checkpoint")
    finally:
        con.close()
    publish_snapshot(warehouse_path, serving, sources=SOURCES)
    return serving


def test_a_layout_is_built_for_each_published_snapshot_and_replaces_the_last(
    tmp_path: Path,
) -> None:
    serving = _publish(tmp_path, _quotes())
    first = file_identity(serving)
    assert open_quote_layout(serving, first) is None, "nothing built yet"
    built = build_quote_layout(serving)
    assert built is not None
    assert built.path == layout_directory(serving) / snapshot_name(first)
    assert built.rows == _quotes().height
    layout = open_quote_layout(serving, first)
    assert layout is not None
    assert layout.quotes == built.rows

    fewer = _quotes().filter(pl.col("coin_id") != "coin-a1")
    serving = _publish(tmp_path, fewer)
    second = file_identity(serving)
    assert second != first, "each publish is a new file"
    assert open_quote_layout(serving, second) is None, "the old layout is not the new one's"
    build_quote_layout(serving)
    assert [p.name for p in layout_directory(serving).iterdir()] == [snapshot_name(second)]
    newer = open_quote_layout(serving, second)
    assert newer is not None
    assert newer.quotes == fewer.height
    # A reader still holding the replaced layout keeps reading it: its files are mapped.
    page = layout.read_page(QuoteFilter(coin_id="coin-a1"), ["coin-a1"], limit=5, offset=0)
    assert page is not None
    assert page.encoded is not None
    assert [msgspec.json.decode(q)["coin_id"] for q in page.encoded] == ["coin-a1"] * 5


def test_a_killed_build_leaves_no_layout_and_the_next_build_clears_it(tmp_path: Path) -> None:
    serving = _publish(tmp_path, _quotes())
    found = file_identity(serving)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # as a kill would, partway through writing the files

    with patch.object(quote_layout, "_write", killed), pytest.raises(KeyboardInterrupt):
        build_quote_layout(serving)
    assert open_quote_layout(serving, found) is None
    # A process killed outright leaves its temporary directory behind.
    stale = layout_directory(serving) / f".{snapshot_name(found)}.deadbeef.tmp"
    stale.mkdir()
    (stale / quote_layout.ROWS).write_bytes(b"partial")
    build_quote_layout(serving)
    assert [p.name for p in layout_directory(serving).iterdir()] == [snapshot_name(found)]


def test_a_snapshot_file_changed_outside_a_publish_is_not_served_an_old_layout(
    tmp_path: Path,
) -> None:
    serving = _publish(tmp_path, _quotes())
    build_quote_layout(serving)
    edited = tmp_path / "edited.duckdb"
    shutil.copyfile(serving, edited)
    con = duckdb.connect(str(edited))
    con.execute("delete from quotes where coin_id = 'coin-a1'")
    con.close()
    os.replace(edited, serving)
    assert open_quote_layout(serving, file_identity(serving)) is None


def test_a_layout_is_not_built_from_a_snapshot_published_over_while_it_opens(
    tmp_path: Path,
) -> None:
    serving = _publish(tmp_path, _quotes())
    other = tmp_path / "other.duckdb"
    shutil.copyfile(serving, other)

    def published_meanwhile(path: Path) -> duckdb.DuckDBPyConnection:
        os.replace(other, serving)
        return open_read_only(path)

    with (
        patch.object(quote_layout, "open_read_only", published_meanwhile),
        pytest.raises(LayoutError, match="published again while its layout was built"),
    ):
        build_quote_layout(serving)
    assert [p.name for p in layout_directory(serving).iterdir()] == []


def test_a_layout_whose_files_disagree_is_refused_with_the_fix(
    layout: QuoteLayout, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(layout.directory, damaged)
    table = pa.table({"observed_us": pa.array([1, 2, 3], pa.int64())})
    with (
        pa.OSFile(str(damaged / quote_layout.OBSERVED), "wb") as sink,
        ipc.new_file(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    with pytest.raises(LayoutError, match="build the layout again"):
        QuoteLayout(damaged)
    truncated = tmp_path / "truncated"
    shutil.copytree(layout.directory, truncated)
    os.truncate(truncated / quote_layout.ROWS, 100)
    with pytest.raises(LayoutError, match="unreadable"):
        QuoteLayout(truncated)


def test_layouts_turned_off_are_neither_built_nor_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = _publish(tmp_path, _quotes())
    assert build_after_publish(serving) is not None
    monkeypatch.setenv("KASPARRO_QUOTE_LAYOUT", "false")
    get_store_settings.cache_clear()
    try:
        assert build_after_publish(serving) is None
        assert not layout_directory(serving).exists()
    finally:
        monkeypatch.delenv("KASPARRO_QUOTE_LAYOUT")
        get_store_settings.cache_clear()


def test_a_layout_that_cannot_be_built_is_said_and_the_publish_stands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    serving = _publish(tmp_path, _quotes())
    layout_directory(serving).write_text("a file where the layouts' directory goes")
    assert build_after_publish(serving) is None
    assert "pages are read from the snapshot" in caplog.text
    assert open_read_only(serving).execute("select count(*) from quotes").fetchall() == [
        (_quotes().height,)
    ]


def test_a_build_tells_how_far_it_got(tmp_path: Path) -> None:
    serving = _publish(tmp_path, _quotes())
    told: list[tuple[int, int]] = []
    with patch.object(quote_layout, "BATCH_ROWS", 50):
        built = build_quote_layout(serving, lambda done, total: told.append((done, total)))
    assert len(told) > 3
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    assert told[-1] == (built.rows, built.rows)
