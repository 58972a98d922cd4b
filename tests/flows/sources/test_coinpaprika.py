"""CoinPaprika /tickers: one unpaged request, key and host, and bad payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from pytest_httpx import HTTPXMock

from flows.errors import ContractError, SourceError, TransientSourceError
from flows.extract import extract_api
from flows.sources import coinpaprika
from tests.flows.sources.conftest import OpenSource, coinpaprika_settings
from tests.flows.sources.payloads import API_KEY, coinpaprika_tickers

FREE = "https://api.coinpaprika.com/v1/tickers?quotes=USD"
PRO = "https://api-pro.coinpaprika.com/v1/tickers?quotes=USD"
STARTED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_fetches_every_ticker_in_one_request_with_usd_quotes(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    # page_size does not apply: the endpoint is not paged, so 5 records on a "page" of 2 is fine.
    settings = coinpaprika_settings(page_size=2, max_pages=5)
    httpx_mock.add_response(url=PRO, content=coinpaprika_tickers(5))
    http = open_source(coinpaprika.SOURCE, settings, rate_limit=False)

    pages = list(coinpaprika.SOURCE.pages(http, settings))

    assert len(pages) == 1
    (page,) = pages
    assert page.page is None
    assert len(page.records) == 5
    assert dict(httpx_mock.get_requests()[0].url.params) == {"quotes": "USD"}


def test_key_goes_to_the_pro_host_in_the_authorization_header(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coinpaprika_settings()
    httpx_mock.add_response(url=PRO, content=coinpaprika_tickers(1))
    http = open_source(coinpaprika.SOURCE, settings, rate_limit=False)

    (page,) = coinpaprika.SOURCE.pages(http, settings)

    request = httpx_mock.get_requests()[0]
    assert request.url.host == "api-pro.coinpaprika.com"
    assert request.headers["authorization"] == API_KEY
    assert page.url == PRO


def test_without_a_key_the_free_host_is_used_with_no_authorization(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coinpaprika_settings(api_key=None)
    httpx_mock.add_response(url=FREE, content=coinpaprika_tickers(1))
    http = open_source(coinpaprika.SOURCE, settings, rate_limit=False)

    (page,) = coinpaprika.SOURCE.pages(http, settings)

    request = httpx_mock.get_requests()[0]
    assert request.url.host == "api.coinpaprika.com"
    assert "authorization" not in request.headers
    assert page.url == FREE


def test_nested_quotes_and_zero_max_supply_are_kept_as_served(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    record = (
        '{"id": "hav-havven", "name": "Synthetix\u00a0", "symbol": "SNX", "rank": 40,'
        ' "max_supply": 0, "last_updated": "2026-11-24T11:50:42Z",'
        ' "quotes": {"USD": {"price": 1.2e-05, "market_cap": 0.0}}}'
    )
    settings = coinpaprika_settings()
    httpx_mock.add_response(url=PRO, content=f"[{record}]".encode())
    http = open_source(coinpaprika.SOURCE, settings, rate_limit=False)

    (page,) = coinpaprika.SOURCE.pages(http, settings)

    assert page.records == [record]
    assert page.split is not None
    assert {"id", "quotes", "max_supply"} <= page.split.keys


@pytest.mark.parametrize(
    ("body", "expected", "error"),
    [
        (b'[{"id": "btc-bitcoin", "quotes": {"USD": {"price": 8196.6', "not well-formed JSON",
         TransientSourceError),
        (b'{"error": "id not found"}', "expected a JSON array", ContractError),
    ],
    ids=["malformed-json", "object-instead-of-array"],
)  # fmt: skip
def test_extract_fails_after_keeping_the_body_in_the_raw_zone(
    httpx_mock: HTTPXMock, tmp_path: Path, body: bytes, expected: str, error: type[SourceError]
) -> None:
    settings = coinpaprika_settings()
    httpx_mock.add_response(url=PRO, content=body, is_reusable=True)

    with pytest.raises(error, match=expected):
        extract_api(
            coinpaprika.SOURCE, settings, raw_root=tmp_path, run_id="run-1", started_at=STARTED_AT
        )

    (path,) = tmp_path.glob("source=coinpaprika/date=2026-11-24/run=run-1/tickers.parquet")
    stored = pl.read_parquet(path)
    assert stored["envelope"].to_list() == [body.decode()]
    assert stored["page"].to_list() == [None]


def test_extract_stores_every_ticker_of_the_single_response(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    settings = coinpaprika_settings()
    httpx_mock.add_response(url=PRO, content=coinpaprika_tickers(3))

    extracted = extract_api(
        coinpaprika.SOURCE, settings, raw_root=tmp_path, run_id="run-1", started_at=STARTED_AT
    )

    assert extracted.records == 3
    assert extracted.raw_files == ["source=coinpaprika/date=2026-11-24/run=run-1/tickers.parquet"]
    stored = pl.read_parquet(tmp_path / extracted.raw_files[0])
    assert [json.loads(r)["id"] for r in stored["record"]] == [
        "c1-coin-1",
        "c2-coin-2",
        "c3-coin-3",
    ]
