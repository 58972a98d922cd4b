"""Pages of quotes read from a window of time are the pages a sort of the whole table gives:
on ties, across gaps, with every filter, at every cursor and offset, for any window size."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import quote_pages
from store.connection import open_warehouse
from store.queries import money_text
from store.quote_pages import QUOTE_FIELDS, QuoteFilter
from store.schema import COINS, QUOTES

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SOURCES = ("coingecko", "coinpaprika", "coincap", "csv")
SYMBOLS = {"coin-a1": "AAA", "coin-a2": "aaa", "coin-a3": "AaA", "coin-b": "BBB"}
"""Three coins share a symbol (in any case); the rest have one each."""
COIN_IDS = [*SYMBOLS, *(f"coin-{i:02d}" for i in range(8)), "coin-unquoted"]
LATER_PAIR = ("coin-07", "csv")
"""The pair whose every quote run r2 wrote (the others' last three are run r3's)."""
WINDOW_SLACKS = (1e-9, 0.01, quote_pages.WINDOW_SLACK, 1e9)
"""From windows that must grow many times to one that spans everything at once."""


def _times(rng: random.Random) -> list[datetime]:
    """Snapshot instants shared by many quotes (ties), scattered instants with microseconds,
    and history rows months before the rest (a gap a window has to grow across)."""
    snapshots = [T0 + timedelta(hours=h) for h in range(6)]
    scattered = [T0 + timedelta(seconds=rng.uniform(0, 6 * 3600)) for _ in range(40)]
    history = [T0 - timedelta(days=120 + d) for d in range(5)]
    return snapshots + scattered + history


def _quotes() -> pl.DataFrame:
    rng = random.Random(20261124)
    times = _times(rng)
    keys = {
        (coin, source, at)
        for coin in COIN_IDS[:-1]
        for source in SOURCES
        for at in rng.sample(times, 12)
    }
    rows = sorted(keys)
    rng.shuffle(rows)  # stored in no useful order: a window may find rows anywhere
    n = len(rows)
    # Run r1 wrote most quotes, r2 one here and there and all of one pair's, r3 each pair's
    # last few (a layout's delta tells the rows of later runs by their run).
    nth = {key: sorted(t for c, s, t in keys if (c, s) == key[:2]).index(key[2]) for key in keys}
    runs = [
        2 if row[:2] == LATER_PAIR else 3 if nth[row] >= 9 else 2 if i % 11 == 0 else 1
        for i, row in enumerate(rows)
    ]
    return pl.DataFrame(
        {
            "coin_id": [c for c, _, _ in rows],
            "source": [s for _, s, _ in rows],
            "observed_at": [t for _, _, t in rows],
            "kind": ["snapshot"] * n,
            "source_asset_id": [f"{s}:{c}" for c, s, _ in rows],
            "symbol": [SYMBOLS.get(c, c.upper()) for c, _, _ in rows],
            "name": [c.title() for c, _, _ in rows],
            "price_usd": [Decimal(f"{rng.randint(1, 10**9)}.{i:04d}") for i in range(n)],
            "market_cap_usd": [None if i % 3 else Decimal("1e6") for i in range(n)],
            "volume_24h_usd": [Decimal("0.000000001258")] * n,
            "pct_change_24h": [rng.uniform(-5, 5) for _ in range(n)],
            "circulating_supply": [None] * n,
            "total_supply": [1.0e9] * n,
            "max_supply": [None] * n,
            "rank": [i % 50 or None for i in range(n)],
            "run_id": [f"r{run}" for run in runs],
            "raw_file": [f"r{run}.parquet" for run in runs],
            "raw_record": list(range(n)),
        },
        schema=QUOTES,
    )


def _coins() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "coin_id": COIN_IDS,
            "symbol": [SYMBOLS.get(c, c.upper()) for c in COIN_IDS],
            "name": [c.title() for c in COIN_IDS],
            "first_seen_at": [T0] * len(COIN_IDS),
            "created_by_run": ["r1"] * len(COIN_IDS),
        },
        schema=COINS,
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_warehouse(tmp_path_factory.mktemp("quote-pages") / "warehouse.duckdb")
    for table, frame in (("quotes", _quotes()), ("coins", _coins())):
        con.register("staged", frame)
        con.execute(f"insert into {table} ({', '.join(frame.columns)}) select * from staged")
        con.unregister("staged")
    yield con
    con.close()


@pytest.fixture(scope="module")
def every_quote(warehouse: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """All quotes as pages render them (money as text), in no order."""
    columns = ", ".join(
        money_text(c) if c.endswith("_usd") and c != "pct_change_24h" else c for c in QUOTE_FIELDS
    )
    return warehouse.execute(f"select {columns} from quotes").fetchall()


def expected(
    rows: list[tuple[Any, ...]], flt: QuoteFilter, *, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    """The page a sort of the whole table gives, computed in Python."""
    field = {name: i for i, name in enumerate(QUOTE_FIELDS)}

    def key(row: tuple[Any, ...]) -> tuple[datetime, str, str]:
        return (row[field["observed_at"]], row[field["coin_id"]], row[field["source"]])

    symbol_coins = (
        {c for c in COIN_IDS if SYMBOLS.get(c, c.upper()).lower() == flt.symbol.lower()}
        if flt.symbol is not None
        else None
    )
    after = None
    if flt.after is not None:
        at, coin, source = flt.after
        after = (at if at.tzinfo else at.replace(tzinfo=UTC), coin, source)
    kept = [
        row
        for row in rows
        if (flt.coin_id is None or row[field["coin_id"]] == flt.coin_id)
        and (symbol_coins is None or row[field["coin_id"]] in symbol_coins)
        and (flt.source is None or row[field["source"]] == flt.source)
        and (flt.start is None or key(row)[0] >= flt.start)
        and (flt.end is None or key(row)[0] < flt.end)
        and (after is None or (key(row) < after if flt.descending else key(row) > after))
    ]
    kept.sort(key=key, reverse=flt.descending)
    return kept[offset : offset + limit]


def page(
    con: duckdb.DuckDBPyConnection, flt: QuoteFilter, *, limit: int, offset: int = 0, slack: float
) -> list[tuple[Any, ...]]:
    with patch.object(quote_pages, "WINDOW_SLACK", slack):
        return quote_pages.quotes(con, flt, limit=limit, offset=offset)


moments = st.one_of(
    st.sampled_from([T0, T0 + timedelta(hours=3), T0 - timedelta(days=121)]),
    st.datetimes(
        # hypothesis wants naive bounds; the values drawn are in UTC
        min_value=datetime(2026, 7, 1),  # noqa: DTZ001
        max_value=datetime(2026, 11, 26),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
)


@settings(max_examples=300)
@given(
    data=st.data(),
    coin_id=st.none() | st.sampled_from([*COIN_IDS, "no-such-coin"]),
    symbol=st.none() | st.sampled_from(["aaa", "BBB", "COIN-03", "ZZZ"]),
    source=st.none() | st.sampled_from([*SOURCES, "nowhere"]),
    start=st.none() | moments,
    end=st.none() | moments,
    descending=st.booleans(),
    limit=st.sampled_from([1, 2, 7, 100, 1000]),
    offset=st.sampled_from([0, 0, 1, 13, 250]),
    slack=st.sampled_from(WINDOW_SLACKS),
)
def test_a_page_equals_the_same_page_of_the_whole_table_sorted(
    warehouse: duckdb.DuckDBPyConnection,
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
    slack: float,
) -> None:
    after = None
    if data.draw(st.booleans()):
        row = data.draw(st.sampled_from(every_quote))
        after = (row[QUOTE_FIELDS.index("observed_at")], row[0], row[1])
        offset = 0  # the API takes a cursor or an offset, never both
    flt = QuoteFilter(coin_id, symbol, source, start, end, descending, after)
    got = page(warehouse, flt, limit=limit, offset=offset, slack=slack)
    if coin_id is not None or symbol is not None:  # a page of chosen coins ends at its bound
        limit = min(limit, quote_pages.MAX_COIN_PAGE_ROWS)
    assert got == expected(every_quote, flt, limit=limit, offset=offset)


@pytest.mark.parametrize("slack", WINDOW_SLACKS)
@pytest.mark.parametrize("descending", [True, False])
def test_cursor_paging_walks_every_quote_once_in_order_through_ties(
    warehouse: duckdb.DuckDBPyConnection,
    every_quote: list[tuple[Any, ...]],
    slack: float,
    descending: bool,
) -> None:
    seen: list[tuple[Any, ...]] = []
    flt = QuoteFilter(descending=descending)
    while True:
        rows = page(warehouse, flt, limit=37, slack=slack)
        seen += rows
        if len(rows) < 37:
            break
        last = rows[-1]
        flt = QuoteFilter(descending=descending, after=(last[3], last[0], last[1]))
    assert seen == expected(every_quote, QuoteFilter(descending=descending), limit=10**6, offset=0)


def test_a_cursor_time_without_a_zone_is_read_as_utc(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    aware = QuoteFilter(after=(T0 + timedelta(hours=2), "coin-03", "coincap"))
    naive = QuoteFilter(after=(datetime(2026, 11, 24, 14, 0), "coin-03", "coincap"))  # noqa: DTZ001
    assert page(warehouse, naive, limit=50, slack=0.01) == page(
        warehouse, aware, limit=50, slack=0.01
    )


def test_an_empty_table_or_a_single_instant_gives_plain_pages(tmp_path: Path) -> None:
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    try:
        assert quote_pages.quotes(con, QuoteFilter(), limit=10, offset=0) == []
        frame = _quotes().with_columns(pl.lit(T0).cast(QUOTES["observed_at"]).alias("observed_at"))
        frame = frame.unique(subset=["coin_id", "source"])
        con.register("staged", frame)
        con.execute("insert into quotes select * from staged")
        rows = quote_pages.quotes(con, QuoteFilter(), limit=5, offset=3)
        assert [(r[0], r[1]) for r in rows] == sorted(
            {(c, s) for c, s in frame.select("coin_id", "source").iter_rows()}, reverse=True
        )[3:8]
    finally:
        con.close()


def test_the_newest_page_is_read_from_a_window_not_the_whole_table(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    reads: list[list[str]] = []
    read_page = quote_pages._page

    def recorded(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        reads.append(list(args[2].conditions))
        return read_page(*args, **kwargs)

    with patch.object(quote_pages, "_page", recorded):
        rows = quote_pages.quotes(warehouse, QuoteFilter(), limit=20, offset=0)
    assert len(rows) == 20
    assert reads == [["q.observed_at >= ?"]], "one read, bounded below in time"


@pytest.mark.parametrize("descending", [True, False])
def test_pages_cut_short_by_the_scan_bound_resume_where_the_scan_stopped(
    warehouse: duckdb.DuckDBPyConnection, every_quote: list[tuple[Any, ...]], descending: bool
) -> None:
    """With a scan bound far below the table, pages end early with a time to resume at, and
    following them still walks every quote of a coin once, in order, through ties."""
    flt = QuoteFilter(coin_id="coin-a1", descending=descending)
    seen: list[tuple[Any, ...]] = []
    cut_short = 0
    with patch.object(quote_pages, "MAX_SCAN_ROWS", 40):
        while True:
            got = quote_pages.read_page(warehouse, flt, limit=5, offset=0)
            seen += got.rows
            if len(got.rows) == 5:
                last = got.rows[-1]
                after = (last[3], last[0], last[1])
            elif got.resume_at is not None:
                cut_short += 1
                after = (got.resume_at, "", "")
            else:
                break
            flt = QuoteFilter(coin_id="coin-a1", descending=descending, after=after)
    assert cut_short > 0, "the bound cut some pages short"
    assert seen == expected(
        every_quote, QuoteFilter(coin_id="coin-a1", descending=descending), limit=10**6, offset=0
    )


LARGE_ROWS = 400_000
"""More rows than :data:`~store.quote_pages.MAX_SCAN_ROWS`, one a second, of 99 coins: a sparse
coin (one row in 4,000), a dense one (one in 10) and 97 others."""


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_warehouse(tmp_path_factory.mktemp("quote-pages-large") / "warehouse.duckdb")
    con.execute(
        """
        insert into quotes
        select
            case
                when i % 4000 = 0 then 'sparse-coin'
                when i % 10 = 1 then 'dense-coin'
                else 'other-' || (i % 97)
            end as coin_id,
            'coingecko' as source,
            ?::timestamptz + to_seconds(i) as observed_at,
            'snapshot' as kind,
            'asset' as source_asset_id,
            'SYM' as symbol,
            'Name' as name,
            1.5 as price_usd,
            null as market_cap_usd,
            null as volume_24h_usd,
            null as pct_change_24h,
            null as circulating_supply,
            null as total_supply,
            null as max_supply,
            null as rank,
            'r1' as run_id,
            'r1.parquet' as raw_file,
            i::integer as raw_record
        from range(?) as t(i)
        """,
        [T0, LARGE_ROWS],
    )
    con.execute(
        """
        insert into coins
        select distinct coin_id, coin_id, coin_id, ?::timestamptz, 'r1' from quotes
        """,
        [T0],
    )
    yield con
    con.close()


@pytest.mark.parametrize("descending", [True, False])
def test_a_sparse_coins_page_reads_at_most_the_scan_bound_and_ends_early(
    large: duckdb.DuckDBPyConnection, descending: bool
) -> None:
    """A hundred quotes of the sparse coin lie across the whole table: its page stops at
    250,000 rows (~62 of them) with a time to resume at, instead of scanning everything."""
    got = quote_pages.read_page(
        large, QuoteFilter(coin_id="sparse-coin", descending=descending), limit=100, offset=0
    )
    assert got.resume_at is not None, "the page ended early"
    assert 0 < len(got.rows) <= quote_pages.MAX_SCAN_ROWS // 4000 + 1 < 100
    rest = quote_pages.read_page(
        large,
        QuoteFilter(coin_id="sparse-coin", descending=descending, after=(got.resume_at, "", "")),
        limit=100,
        offset=0,
    )
    every = [T0 + timedelta(seconds=i) for i in range(0, LARGE_ROWS, 4000)]
    if descending:
        every.reverse()
    walked = [r[3] for r in got.rows + rest.rows]
    assert walked == every[: len(walked)], "the next page starts where the scan stopped"


def test_a_page_of_chosen_coins_holds_at_most_a_hundred_quotes_and_continues(
    large: duckdb.DuckDBPyConnection,
) -> None:
    first = quote_pages.read_page(large, QuoteFilter(coin_id="dense-coin"), limit=1000, offset=0)
    assert (len(first.rows), first.limit, first.resume_at) == (100, 100, None)
    last = first.rows[-1]
    after = QuoteFilter(coin_id="dense-coin", after=(last[3], last[0], last[1]))
    second = quote_pages.read_page(large, after, limit=1000, offset=0)
    assert len(second.rows) == 100
    assert second.rows[0][3] == last[3] - timedelta(seconds=10), "no quote skipped"
    by_symbol = quote_pages.read_page(large, QuoteFilter(symbol="dense-coin"), limit=500, offset=0)
    assert by_symbol.rows == first.rows
    everything = quote_pages.read_page(large, QuoteFilter(), limit=1000, offset=0)
    assert (len(everything.rows), everything.limit) == (1000, 1000), "only chosen coins"


def test_coins_sharing_a_symbol_are_matched_whatever_their_ids_hold(tmp_path: Path) -> None:
    """The ids a symbol matches travel to DuckDB as one JSON text: quotes and backslashes in
    an id survive it."""
    con = open_warehouse(tmp_path / "warehouse.duckdb")
    try:
        odd = ['coin "quoted"', "coin \\ slashed, with a comma", "coin with no quotes"]
        frame = _quotes().filter(pl.col("coin_id").is_in(["coin-01", "coin-02"]))
        frame = frame.with_columns(
            pl.col("coin_id").replace({"coin-01": odd[0], "coin-02": odd[1]})
        )
        assert frame.height <= quote_pages.MAX_COIN_PAGE_ROWS, "one page holds them all"
        con.register("staged", frame)
        con.execute("insert into quotes select * from staged")
        for coin in odd:
            con.execute("insert into coins values (?, 'ODD', ?, ?, 'r1')", [coin, coin, T0])
        rows = quote_pages.quotes(con, QuoteFilter(symbol="odd"), limit=1000, offset=0)
        assert {r[0] for r in rows} == set(odd[:2])
        assert len(rows) == frame.height
    finally:
        con.close()
