"""The quote layout gives the same pages as a sort of the whole table, and belongs to one
published snapshot."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
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

from store import quote_layout, quote_layout_build, quote_pages
from store.connection import open_read_only, open_warehouse
from store.quote_layout import (
    LayoutError,
    Manifest,
    QuoteLayout,
    Segment,
    layout_directory,
    manifest_path,
    open_quote_layout,
)
from store.quote_layout_build import (
    build_after_publish,
    build_quote_layout,
    should_compact,
    write_quote_layout,
)
from store.quote_pages import QUOTE_FIELDS, QuoteFilter
from store.serving import coin_index
from store.settings import get_store_settings
from store.snapshot import file_identity, publish_snapshot
from tests.store.test_quote_pages import (
    COIN_IDS,
    LATER_PAIR,
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
def base_directory(
    warehouse: duckdb.DuckDBPyConnection, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    directory = tmp_path_factory.mktemp("layout") / "seg-1"
    directory.mkdir()
    with patch.object(quote_layout_build, "BATCH_ROWS", 97):  # many chunks, runs across ends
        write_quote_layout(warehouse, directory)
    return directory


def _earlier(quotes: pl.DataFrame) -> pl.DataFrame:
    """The quotes of an earlier snapshot, which ``quotes`` changed in each way a load or a
    resolution does: most pairs have later quotes now, one pair had none, one had a quote
    rewritten by a later run, one lost a quote, a coin's csv quotes were another coin's, and a
    pair is gone."""
    keyed = quotes.with_columns(
        pl.col("observed_at").rank("ordinal").over("coin_id", "source").alias("nth")
    )

    def pair(coin_id: str, source: str) -> pl.Expr:
        return (pl.col("coin_id") == coin_id) & (pl.col("source") == source)

    unchanged = pair(*LATER_PAIR)  # no quote of run r3, which wrote the others' later ones
    rewritten = pair("coin-b", "coingecko") & (pl.col("nth") == 2)
    earlier = keyed.filter((pl.col("nth") <= 9) | unchanged).with_columns(
        pl.when(rewritten).then(pl.lit("r0")).otherwise("run_id").alias("run_id"),
        pl.when(rewritten).then(pl.col("price_usd") + 1).otherwise("price_usd"),
        pl.when(pair("coin-02", "csv"))
        .then(pl.lit("coin-unquoted"))
        .otherwise("coin_id")
        .alias("coin_id"),
    )
    lost = earlier.filter(pair("coin-06", "coincap") & (pl.col("nth") == 1)).with_columns(
        pl.col("observed_at") - timedelta(seconds=1), pl.lit("r0").alias("run_id")
    )
    gone = earlier.filter(pair("coin-05", "coingecko")).with_columns(
        pl.lit("coin-unquoted").alias("coin_id")
    )
    return pl.concat([earlier, lost, gone.head(3)]).drop("nth")


MASKED = [
    ("coin-06", "coincap"),  # lost a quote
    ("coin-b", "coingecko"),  # a quote rewritten by a later run
    ("coin-unquoted", "coingecko"),  # gone
    ("coin-unquoted", "csv"),  # coin-02's now
]


@pytest.fixture(scope="module")
def layered_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published snapshot of :func:`_quotes`, laid out as a delta of an earlier one's base."""
    tmp_path = tmp_path_factory.mktemp("layered")
    serving = _publish(tmp_path, _earlier(_quotes()))
    with patch.object(quote_layout_build, "BATCH_ROWS", 97):
        assert build_quote_layout(serving).kind == "base"
        serving = _publish(tmp_path, _quotes())
        assert build_quote_layout(serving).kind == "delta"
    return serving


@pytest.fixture(scope="module")
def appended_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published snapshot of :func:`_quotes`, laid out as a delta that masks nothing: the
    earlier snapshot held each pair's first quotes, and loads appended the rest (the pages
    in time order then take each side's rows in stretches)."""
    tmp_path = tmp_path_factory.mktemp("appended")
    quotes = _quotes()
    serving = _publish(tmp_path, _fewer_per_pair(quotes, 9))
    with patch.object(quote_layout_build, "BATCH_ROWS", 97):
        assert build_quote_layout(serving).kind == "base"
        serving = _publish(tmp_path, quotes)
        built = build_quote_layout(serving)
    assert (built.kind, built.masked) == ("delta", 0)
    return serving


def _before_run_2(quotes: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """The quotes of a snapshot before run r2 wrote its quotes of ``quotes``, in each way a
    later run does: it corrected quotes of some pairs and filled in quotes missing among the
    others, wrote all of a new pair, and corrected quotes of pairs that also lost one since.
    With the pairs the delta then masks whole (those that lost a quote), and the base's rows
    it replaces (the corrected quotes of the others)."""
    pair = pl.col("coin_id") + "/" + pl.col("source")
    keyed = quotes.with_columns(
        (pair.rank("dense") % 3).alias("way"), (pl.col("run_id") == "r2").alias("later")
    ).filter(pair != "/".join(LATER_PAIR))
    corrected = keyed.filter(pl.col("later") & (pl.col("way") != 1)).with_columns(
        pl.lit("r1").alias("run_id"),
        pl.lit("r1.parquet").alias("raw_file"),
        pl.col("price_usd") + 1,
    )
    lost = (
        keyed.filter((pl.col("way") == 2) & ~pl.col("later"))
        .group_by("coin_id", "source")
        .agg(pl.all().sort_by("observed_at").first())
        .with_columns(pl.col("observed_at") - timedelta(microseconds=1))
        .select(keyed.columns)
    )
    masked = lost.height
    replaced = corrected.filter(pl.col("way") == 0).height
    earlier = pl.concat([keyed.filter(~pl.col("later")), corrected, lost])
    return earlier.drop("way", "later"), masked, replaced


@pytest.fixture(scope="module")
def rewritten_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published snapshot of :func:`_quotes`, laid out as a delta of rows a later run
    wrote among the base's (:func:`_before_run_2`)."""
    tmp_path = tmp_path_factory.mktemp("rewritten")
    earlier, masked, replaced = _before_run_2(_quotes())
    serving = _publish(tmp_path, earlier)
    with patch.object(quote_layout_build, "BATCH_ROWS", 97):
        assert build_quote_layout(serving).kind == "base"
        serving = _publish(tmp_path, _quotes())
        built = build_quote_layout(serving)
    assert (built.kind, built.masked, built.masked_rows) == ("delta", masked, replaced)
    assert masked > 0, "some pairs lost a quote"
    assert replaced > 0, "some quotes were corrected"
    return serving


@pytest.fixture(
    scope="module",
    params=[
        "base",
        "base and delta",
        "base and an appended delta",
        "base and a delta of a later run's rows",
    ],
)
def layout(
    request: pytest.FixtureRequest,
    base_directory: Path,
    layered_directory: Path,
    appended_directory: Path,
    rewritten_directory: Path,
) -> QuoteLayout:
    if request.param == "base":
        return QuoteLayout([Segment(base_directory)])
    serving = {
        "base and delta": layered_directory,
        "base and an appended delta": appended_directory,
        "base and a delta of a later run's rows": rewritten_directory,
    }[request.param]
    found = open_quote_layout(serving, file_identity(serving))
    assert found is not None
    return found


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


@pytest.mark.parametrize("descending", [True, False])
def test_a_pairs_pages_read_across_its_base_and_delta_rows(
    warehouse: duckdb.DuckDBPyConnection,
    layout: QuoteLayout,
    every_quote: list[tuple[Any, ...]],
    descending: bool,
) -> None:
    for coin_id in COIN_IDS:
        for source in SOURCES:
            flt = QuoteFilter(coin_id, None, source, descending=descending)
            everything = expected(every_quote, flt, limit=10**6, offset=0)
            for limit in (1, 2, 3, 4, 7, 12, 100):
                for offset in (0, 2, 9):
                    got = _from_layout(warehouse, layout, flt, limit, offset)
                    assert got == as_api(everything[offset : offset + limit]), (flt, limit, offset)


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
        layout = QuoteLayout([Segment(tmp_path / "layout")])
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


def _on_disk(serving: Path) -> list[str]:
    return sorted(p.name for p in layout_directory(serving).iterdir())


def _coin_page(layout: QuoteLayout, coin_id: str, limit: int = 100) -> list[dict[str, Any]]:
    page = layout.read_page(QuoteFilter(coin_id=coin_id), [coin_id], limit=limit, offset=0)
    assert page is not None
    assert page.encoded is not None
    return [msgspec.json.decode(quote) for quote in page.encoded]


def test_a_published_snapshot_is_laid_out_as_what_changed_since_the_last_base(
    layered_directory: Path,
) -> None:
    serving = layered_directory
    manifest = Manifest.read(manifest_path(serving, file_identity(serving)))
    assert manifest.delta is not None
    assert _on_disk(serving) == sorted([f"{manifest.snapshot}.json", manifest.base, manifest.delta])
    delta = Segment(layout_directory(serving) / manifest.delta)
    assert sorted(delta.masked) == MASKED
    now, before = _quotes(), _earlier(_quotes())
    masked = pl.DataFrame(MASKED, schema=["coin_id", "source"], orient="row")
    kept = before.join(masked, on=["coin_id", "source"], how="anti")
    # The delta holds every quote of a masked or new pair, and the later quotes of the rest.
    assert delta.rows == now.height - kept.height
    assert delta.rows < now.height / 2


def test_a_layout_is_built_for_each_published_snapshot_and_replaces_the_last(
    tmp_path: Path,
) -> None:
    serving = _publish(tmp_path, _quotes())
    first = file_identity(serving)
    assert open_quote_layout(serving, first) is None, "nothing built yet"
    built = build_quote_layout(serving)
    assert (built.path, built.kind) == (manifest_path(serving, first), "base")
    assert built.rows == built.written == _quotes().height
    layout = open_quote_layout(serving, first)
    assert layout is not None
    assert layout.quotes == built.rows

    fewer = _quotes().filter(pl.col("coin_id") != "coin-a1")
    serving = _publish(tmp_path, fewer)
    second = file_identity(serving)
    assert second != first, "each publish is a new file"
    assert open_quote_layout(serving, second) is None, "the old layout is not the new one's"
    again = build_quote_layout(serving)
    assert (again.kind, again.rows, again.written) == ("delta", fewer.height, 0)
    assert _on_disk(serving) == sorted([again.path.name, *Manifest.read(again.path).segments])
    assert not manifest_path(serving, first).exists()
    newer = open_quote_layout(serving, second)
    assert newer is not None
    assert newer.quotes == fewer.height
    assert _coin_page(newer, "coin-a1") == []
    # A reader still holding the replaced layout keeps reading it: its files are mapped.
    assert [q["coin_id"] for q in _coin_page(layout, "coin-a1", 5)] == ["coin-a1"] * 5


def _fewer_per_pair(quotes: pl.DataFrame, kept: int) -> pl.DataFrame:
    """Each pair's first ``kept`` quotes: a snapshot the later quotes were appended to (by
    run r3), before run r2 wrote a pair's quotes."""
    nth = pl.col("observed_at").rank("ordinal").over("coin_id", "source")
    later = (pl.col("coin_id") == LATER_PAIR[0]) & (pl.col("source") == LATER_PAIR[1])
    return quotes.filter((nth <= kept) & ~later)


@pytest.mark.parametrize("grown", [False, True])
def test_a_delta_is_laid_out_as_a_new_base_once_it_has_grown(tmp_path: Path, grown: bool) -> None:
    serving = _publish(tmp_path, _fewer_per_pair(_quotes(), 9))
    build_quote_layout(serving)
    serving = _publish(tmp_path, _quotes())
    with patch.object(quote_layout_build, "COMPACT_MIN_ROWS", 0 if grown else 10**9):
        built = build_after_publish(serving)
    assert built is not None
    assert (built.kind, built.masked) == ("delta", 0), "the pages are laid out first"
    manifest = Manifest.read(built.path)
    assert (manifest.delta is None) == grown, "then, once grown, a new base replaces both"
    assert _on_disk(serving) == sorted([built.path.name, *manifest.segments])
    compacted = open_quote_layout(serving, file_identity(serving))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with open_read_only(serving) as con:
        write_quote_layout(con, fresh)
    assert compacted is not None
    for coin_id in COIN_IDS:
        assert _coin_page(compacted, coin_id) == _coin_page(QuoteLayout([Segment(fresh)]), coin_id)


def _corrected(quotes: pl.DataFrame, run: str, every: int, skip: int = 0) -> pl.DataFrame:
    """``quotes`` with every ``every``-th (after ``skip``) corrected by ``run``: a new price,
    and the run's lineage, as a load writes a corrected quote."""
    chosen = (pl.int_range(pl.len()) % every) == skip
    return quotes.with_columns(
        pl.when(chosen).then(pl.lit(run)).otherwise("run_id").alias("run_id"),
        pl.when(chosen).then(pl.lit(f"{run}.parquet")).otherwise("raw_file").alias("raw_file"),
        pl.when(chosen).then(pl.col("price_usd") + 7).otherwise("price_usd").alias("price_usd"),
    )


def _every_coin_page(layout: QuoteLayout) -> list[list[dict[str, Any]]]:
    return [_coin_page(layout, coin_id, limit=1000) for coin_id in COIN_IDS]


def _as_a_new_base(serving: Path, tmp_path: Path) -> QuoteLayout:
    fresh = tmp_path / f"fresh-{file_identity(serving)[0]}"
    fresh.mkdir()
    with open_read_only(serving) as con:
        write_quote_layout(con, fresh)
    return QuoteLayout([Segment(fresh)])


def test_quotes_corrected_by_later_runs_are_laid_out_as_rows_and_need_no_new_base(
    tmp_path: Path,
) -> None:
    quotes = _quotes()
    serving = _publish(tmp_path, quotes)
    assert build_quote_layout(serving).kind == "base"
    once = _corrected(quotes, "r4", every=9)
    serving = _publish(tmp_path, once)
    built = build_after_publish(serving)
    assert built is not None
    corrected = quotes.height // 9 + (quotes.height % 9 > 0)
    assert (built.kind, built.written, built.masked, built.masked_rows) == (
        "delta",
        corrected,
        0,
        corrected,
    ), "a corrected quote is laid out alone, not its pair"
    assert Manifest.read(built.path).delta is not None, "and no new base is laid out for it"
    layout = open_quote_layout(serving, file_identity(serving))
    assert layout is not None
    assert layout.quotes == quotes.height
    assert _every_coin_page(layout) == _every_coin_page(_as_a_new_base(serving, tmp_path))

    # A later run corrects others, and some r4 corrected: the delta since the base holds
    # both runs' rows, and masks each base row they replace once.
    twice = _corrected(once, "r5", every=6, skip=3)
    serving = _publish(tmp_path, twice)
    again = build_after_publish(serving)
    assert again is not None
    replaced = twice.filter(pl.col("run_id").is_in(["r4", "r5"])).height
    assert (again.kind, again.written, again.masked, again.masked_rows) == (
        "delta",
        replaced,
        0,
        replaced,
    )
    layout = open_quote_layout(serving, file_identity(serving))
    assert layout is not None
    assert layout.quotes == quotes.height
    assert _every_coin_page(layout) == _every_coin_page(_as_a_new_base(serving, tmp_path))


def test_a_retried_run_laid_out_in_a_base_appends_as_a_delta(tmp_path: Path) -> None:
    """A run publishes with a source failed, a new base is laid out after it, and the retry
    resumes the same run id: its later quotes are the base's rows and rows after them, laid out
    as a delta, not each pair again whole (and a new base after)."""
    quotes = _quotes()
    nth = pl.col("observed_at").rank("ordinal").over("coin_id", "source")
    unfinished = (pl.col("run_id") == "r3") & ((pl.col("source") == "csv") | (nth > 11))
    attempt = quotes.filter(~unfinished)
    assert 0 < attempt.filter(pl.col("run_id") == "r3").height < quotes.height
    build_quote_layout(_publish(tmp_path, attempt), base=True)
    serving = _publish(tmp_path, quotes)
    built = build_after_publish(serving)
    assert built is not None
    retried = quotes.filter(unfinished).height
    assert (built.kind, built.written, built.masked, built.masked_rows) == ("delta", retried, 0, 0)
    assert not should_compact(built)
    assert Manifest.read(built.path).delta is not None
    layout = open_quote_layout(serving, file_identity(serving))
    assert layout is not None
    assert layout.quotes == quotes.height
    assert _every_coin_page(layout) == _every_coin_page(_as_a_new_base(serving, tmp_path))

    # A base row the retry rewrote (a quote it loaded again, changed) cannot be told by run:
    # its pair is laid out whole, and the pages stay right.
    changed = _corrected(quotes, "r3", every=len(quotes), skip=1)  # an r1 quote
    serving = _publish(tmp_path, changed)
    again = build_quote_layout(serving)
    assert (again.kind, again.masked, again.masked_rows) == ("delta", 1, 0)
    layout = open_quote_layout(serving, file_identity(serving))
    assert layout is not None
    assert _every_coin_page(layout) == _every_coin_page(_as_a_new_base(serving, tmp_path))


def test_a_base_that_does_not_name_its_runs_is_not_built_upon(tmp_path: Path) -> None:
    """As a base laid out before bases named their runs: the fresh rows cannot be told."""
    serving = _publish(tmp_path, _quotes())
    built = build_quote_layout(serving)
    (layout_directory(serving) / Manifest.read(built.path).base / quote_layout.RUN_IDS).unlink()
    serving = _publish(tmp_path, _corrected(_quotes(), "r4", every=40))
    assert build_quote_layout(serving).kind == "base"
    layout = open_quote_layout(serving, file_identity(serving))
    assert layout is not None
    assert _every_coin_page(layout) == _every_coin_page(_as_a_new_base(serving, tmp_path))


def test_a_delta_that_masks_pairs_is_followed_by_a_new_base(tmp_path: Path) -> None:
    serving = _publish(tmp_path, _earlier(_quotes()))
    build_quote_layout(serving)
    serving = _publish(tmp_path, _quotes())
    built = build_after_publish(serving)
    assert built is not None
    assert (built.kind, built.masked) == ("delta", len(MASKED))
    assert Manifest.read(built.path).delta is None
    # The next publish's delta holds only what it adds: a scan of the last row groups.
    serving = _publish(tmp_path, _quotes())
    again = build_after_publish(serving)
    assert again is not None
    assert (again.kind, again.written, again.masked) == ("delta", 0, 0)


def test_a_rebuild_lays_out_a_base_since_its_quotes_may_differ_with_the_same_lineage(
    tmp_path: Path,
) -> None:
    serving = _publish(tmp_path, _quotes())
    build_quote_layout(serving)
    # A rebuild transforms the raw zone again: a value may change, its lineage not.
    changed = _quotes().with_columns(pl.col("price_usd") * 2)
    serving = _publish(tmp_path, changed)
    built = build_after_publish(serving, base=True)
    assert built is not None
    assert built.kind == "base"
    layout = open_quote_layout(serving, file_identity(serving))
    assert layout is not None
    flt = QuoteFilter(coin_id="coin-01")
    with open_read_only(serving) as con:
        wanted = as_api(quote_pages.quotes(con, flt, limit=100, offset=0))
    assert _coin_page(layout, "coin-01") == wanted


def test_a_snapshot_of_another_warehouse_schema_is_laid_out_as_a_base(tmp_path: Path) -> None:
    serving = _publish(tmp_path, _earlier(_quotes()))
    build_quote_layout(serving)
    serving = _publish(tmp_path, _quotes())
    with patch.object(quote_layout_build, "current_version", lambda con: 999):
        assert build_quote_layout(serving).kind == "base"


def test_a_killed_build_leaves_the_last_layout_and_the_next_build_clears_up(tmp_path: Path) -> None:
    serving = _publish(tmp_path, _earlier(_quotes()))
    build_quote_layout(serving)
    before = _on_disk(serving)
    serving = _publish(tmp_path, _quotes())
    found = file_identity(serving)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # as a kill would, partway through writing the files

    with patch.object(quote_layout_build, "_write", killed), pytest.raises(KeyboardInterrupt):
        build_quote_layout(serving)
    assert open_quote_layout(serving, found) is None
    assert _on_disk(serving) == before
    # A process killed outright leaves its temporary directories behind.
    stale = layout_directory(serving) / ".seg-deadbeef.tmp"
    stale.mkdir()
    (stale / quote_layout.ROWS).write_bytes(b"partial")
    built = build_quote_layout(serving)
    manifest = Manifest.read(built.path)
    assert _on_disk(serving) == sorted([built.path.name, *manifest.segments])


def test_a_reader_opening_while_the_writer_swaps_in_a_new_base_reads_the_new_one(
    tmp_path: Path,
) -> None:
    serving = _publish(tmp_path, _earlier(_quotes()))
    build_quote_layout(serving)
    serving = _publish(tmp_path, _quotes())
    path = build_quote_layout(serving).path
    layered = Manifest.read(path)
    read = Manifest.read

    def swapped_meanwhile(at: Path) -> Manifest:
        # The reader read the manifest of base and delta; the writer then swapped in a new
        # base and removed them before the reader opened them.
        found = read(at)
        if found == layered:
            build_quote_layout(serving, base=True)
        return found

    with patch.object(Manifest, "read", swapped_meanwhile):
        layout = open_quote_layout(serving, file_identity(serving))
    assert layout is not None
    assert layout.quotes == _quotes().height
    assert Manifest.read(path).delta is None


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
        patch.object(quote_layout_build, "open_read_only", published_meanwhile),
        pytest.raises(LayoutError, match="published again while it was laid out"),
    ):
        build_quote_layout(serving)
    assert _on_disk(serving) == []


def test_a_layout_whose_files_disagree_is_refused_with_the_fix(
    base_directory: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(base_directory, damaged)
    table = pa.table(
        {
            "observed_us": pa.array([1, 2, 3], pa.int64()),
            "lineage": pa.array([1, 2, 3], pa.uint64()),
        }
    )
    quote_layout_build._write(damaged / quote_layout.OBSERVED, table)
    with pytest.raises(LayoutError, match="do not match; `kasparro rebuild`"):
        Segment(damaged)
    older = pa.table({"observed_us": pa.array([1, 2, 3], pa.int64())})
    quote_layout_build._write(damaged / quote_layout.OBSERVED, older)
    with pytest.raises(LayoutError, match="no column 'lineage'; `kasparro rebuild`"):
        Segment(damaged)
    truncated = tmp_path / "truncated"
    shutil.copytree(base_directory, truncated)
    os.truncate(truncated / quote_layout.ROWS, 100)
    with pytest.raises(LayoutError, match="unreadable"):
        Segment(truncated)


@pytest.mark.parametrize("positions", [[-1], [0, "rows"], [5, 5], [7, 3]])
def test_a_delta_that_masks_rows_its_base_lacks_is_refused_with_the_fix(
    base_directory: Path, tmp_path: Path, positions: list[int | str]
) -> None:
    base = Segment(base_directory)
    delta = tmp_path / "delta"
    shutil.copytree(base_directory, delta)
    rows = [base.rows if p == "rows" else p for p in positions]
    table = pa.table({"position": pa.array(rows, pa.int64())})
    quote_layout_build._write(delta / quote_layout.MASKED_ROWS, table)
    with pytest.raises(LayoutError, match=f"masks row {rows[-1]} .* `kasparro rebuild`"):
        QuoteLayout([base, Segment(delta)])


def test_a_damaged_base_is_not_built_upon(tmp_path: Path) -> None:
    serving = _publish(tmp_path, _earlier(_quotes()))
    built = build_quote_layout(serving)
    base = layout_directory(serving) / Manifest.read(built.path).base
    os.truncate(base / quote_layout.OBSERVED, 100)
    serving = _publish(tmp_path, _quotes())
    assert build_quote_layout(serving).kind == "base"
    assert open_quote_layout(serving, file_identity(serving)) is not None


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


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        pl.exceptions.ComputeError("cannot render"),
        MemoryError(),
    ],
)
def test_a_layout_that_cannot_be_built_is_said_and_the_publish_stands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: BaseException
) -> None:
    serving = _publish(tmp_path, _quotes())

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise failure

    with patch.object(quote_layout_build, "_as_json", fails):
        assert build_after_publish(serving) is None
    assert "pages are read from the snapshot" in caplog.text
    assert open_quote_layout(serving, file_identity(serving)) is None
    assert open_read_only(serving).execute("select count(*) from quotes").fetchall() == [
        (_quotes().height,)
    ]


def test_a_build_tells_how_far_it_got(tmp_path: Path) -> None:
    serving = _publish(tmp_path, _quotes())
    told: list[tuple[int, int]] = []
    with patch.object(quote_layout_build, "BATCH_ROWS", 50):
        built = build_quote_layout(serving, lambda done, total: told.append((done, total)))
    assert len(told) > 3
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    assert told[-1] == (built.rows, built.rows)
