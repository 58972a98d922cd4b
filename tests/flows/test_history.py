"""Daily history backfill: per-coin checkpoints, whole UTC days only, daily closes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pytest_httpx import HTTPXMock

from flows.history import extract_history, plan_history
from flows.sources import API_SOURCES
from flows.sources.api import HistoryRequest
from flows.transform import transform_raw_files
from store import runs
from store.connection import open_warehouse
from tests.helpers import ingest_without_prefect

TODAY = date(2026, 11, 25)


@pytest.fixture
def warehouse(tmp_path: Path, demo_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The demo's listings loaded, so coins map to CoinGecko and CoinPaprika ids."""
    data_dir = tmp_path / "data"
    ingest_without_prefect(demo_dir, data_dir, run_id="run-1", sources=("coingecko", "coinpaprika"))
    con = open_warehouse(data_dir / "warehouse.duckdb")
    yield con
    con.close()


def test_a_first_backfill_reaches_back_the_configured_days_to_yesterday(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    plan, notes = plan_history(
        warehouse, "coingecko", ["btc-bitcoin", "no-such-coin"], today=TODAY, days=30
    )
    assert plan == [
        HistoryRequest("bitcoin", "btc", "Bitcoin", date(2026, 10, 26), date(2026, 11, 24))
    ]
    assert notes == [
        "no-such-coin has no coingecko asset yet (run a snapshot ingest first); not backfilled"
    ]


def test_a_backfill_resumes_after_its_checkpoint_and_skips_complete_coins(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    runs.set_checkpoint(
        warehouse,
        source="coinpaprika",
        stream="history:btc-bitcoin",
        position="2026-11-20",
        run_id="r",
    )
    runs.set_checkpoint(
        warehouse,
        source="coinpaprika",
        stream="history:eth-ethereum",
        position="2026-11-24",
        run_id="r",
    )
    plan, _ = plan_history(
        warehouse, "coinpaprika", ["btc-bitcoin", "eth-ethereum"], today=TODAY, days=30
    )
    assert [(r.source_asset_id, r.start, r.end) for r in plan] == [
        ("btc-bitcoin", date(2026, 11, 21), date(2026, 11, 24))
    ], "days already stored are not asked for again; an up-to-date coin is not asked at all"


def test_coingecko_history_asks_for_whole_utc_days_of_one_coin(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_COINGECKO_REQUESTS_PER_MINUTE", "6000")
    body = {
        "prices": [[1763942400000, 97000.5], [1763985600000, 97100.25], [1764028800000, 1.5]],
        "market_caps": [[1763942400000, 1.9e12], [1763985600000, 1.91e12]],
        "total_volumes": [[1763942400000, 3.5e10], [1763985600000, 3.6e10]],
    }
    httpx_mock.add_response(
        url="https://api.coingecko.com/api/v3/coins/bitcoin/market_chart/range"
        "?vs_currency=usd&from=1763942400&to=1764028799",
        json=body,
    )
    request = HistoryRequest("bitcoin", "btc", "Bitcoin", date(2025, 11, 24), date(2025, 11, 24))
    extracted = extract_history(
        API_SOURCES["coingecko"],
        [request],
        raw_root=tmp_path,
        run_id="run-1",
        started_at=datetime(2025, 11, 26, tzinfo=UTC),
    )
    assert extracted.checkpoints == {"history:bitcoin": "2025-11-24"}
    validated = transform_raw_files(tmp_path, extracted.raw_files)
    rows = validated.quotes.sort("observed_at")
    # 00:00 and 12:00 of the 24th fold into the day's last point; the 25th's point (complete by
    # the fetch on the 26th) is kept as served.
    assert rows["observed_at"].dt.date().to_list() == [date(2025, 11, 24), date(2025, 11, 25)]
    close = rows.row(0, named=True)
    assert close["price_usd"] == Decimal("97100.25")
    assert close["market_cap_usd"] == Decimal("1910000000000")
    assert close["kind"] == "history"
    assert (close["source_asset_id"], close["symbol"], close["name"]) == (
        "bitcoin",
        "btc",
        "Bitcoin",
    )
    assert validated.duplicates == 1, "the folded intraday point is counted"


def test_a_point_on_the_day_of_the_fetch_is_quarantined_as_incomplete(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_COINPAPRIKA_REQUESTS_PER_MINUTE", "6000")
    now = datetime.now(UTC)
    ticks = [
        {"timestamp": "2026-11-20T00:00:00Z", "price": 97000.5, "volume_24h": 1, "market_cap": 2},
        {
            "timestamp": now.strftime("%Y-%m-%dT00:00:00Z"),
            "price": 1.0,
            "volume_24h": 1,
            "market_cap": 2,
        },
    ]
    httpx_mock.add_response(json=ticks)
    request = HistoryRequest(
        "btc-bitcoin", "BTC", "Bitcoin", date(2026, 11, 20), date(2026, 11, 20)
    )
    extracted = extract_history(
        API_SOURCES["coinpaprika"], [request], raw_root=tmp_path, run_id="r", started_at=now
    )
    validated = transform_raw_files(tmp_path, extracted.raw_files)
    assert validated.quotes["price_usd"].to_list() == [Decimal("97000.5")]
    assert validated.quarantine["reason"].to_list() == ["incomplete_day"]
    sent = httpx_mock.get_requests()[0]
    assert sent.url.path == "/v1/tickers/btc-bitcoin/historical"
    assert dict(sent.url.params) == {
        "start": "2026-11-20",
        "end": "2026-11-20",
        "interval": "1d",
        "limit": "1",
    }


def test_the_raw_zone_keeps_what_the_request_was_about(
    tmp_path: Path, httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_COINPAPRIKA_REQUESTS_PER_MINUTE", "6000")
    httpx_mock.add_response(json=[])
    request = HistoryRequest(
        "btc-bitcoin", "BTC", "Bitcoin", date(2026, 11, 20), date(2026, 11, 21)
    )
    extracted = extract_history(
        API_SOURCES["coinpaprika"],
        [request],
        raw_root=tmp_path,
        run_id="r",
        started_at=datetime.now(UTC),
    )
    (relative,) = extracted.raw_files
    assert relative.endswith("tickers_historical-btc-bitcoin.parquet")
    row = pl.read_parquet(tmp_path / relative).row(0, named=True)
    assert json.loads(row["subject"]) == {
        "source_asset_id": "btc-bitcoin",
        "symbol": "BTC",
        "name": "Bitcoin",
    }
    assert row["record"] is None, "an empty answer is kept too"
