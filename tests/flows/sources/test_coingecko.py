"""CoinGecko /coins/markets: paging, keys and hosts, byte-exact records, and bad payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from pytest_httpx import HTTPXMock

from flows.errors import ContractError, SourceError, TransientSourceError
from flows.extract import extract_api
from flows.sources import coingecko
from tests.flows.sources.conftest import OpenSource, coingecko_settings
from tests.flows.sources.payloads import API_KEY, coingecko_page

PUBLIC = "https://api.coingecko.com/api/v3/coins/markets"
PRO = "https://pro-api.coingecko.com/api/v3/coins/markets"
STARTED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def markets_url(page: int, per_page: int = 2, base: str = PUBLIC) -> httpx.URL:
    return httpx.URL(
        base,
        params={
            "vs_currency": "usd",
            "order": "market_cap_desc",
            "per_page": per_page,
            "page": page,
        },
    )


# --- paging ----------------------------------------------------------------------------------


def test_pages_through_markets_until_a_short_page(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings(page_size=2, max_pages=5)
    httpx_mock.add_response(url=markets_url(1), content=coingecko_page(1, 2))
    httpx_mock.add_response(url=markets_url(2), content=coingecko_page(3, 2))
    httpx_mock.add_response(url=markets_url(3), content=coingecko_page(5, 1))
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    pages = list(coingecko.SOURCE.pages(http, settings))

    assert [page.page for page in pages] == [1, 2, 3]
    ids = [json.loads(r)["id"] for page in pages for r in page.records]
    assert ids == ["coin-1", "coin-2", "coin-3", "coin-4", "coin-5"]
    queries = [dict(r.url.params) for r in httpx_mock.get_requests()]
    assert queries == [
        {"vs_currency": "usd", "order": "market_cap_desc", "per_page": "2", "page": str(n)}
        for n in (1, 2, 3)
    ]
    assert http.requests == 3


def test_paging_stops_at_max_pages_even_when_every_page_is_full(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings(page_size=2, max_pages=2)
    httpx_mock.add_response(url=markets_url(1), content=coingecko_page(1, 2))
    httpx_mock.add_response(url=markets_url(2), content=coingecko_page(3, 2))
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    pages = list(coingecko.SOURCE.pages(http, settings))

    # pytest-httpx fails the test on any request for page 3.
    assert [len(page.records) for page in pages] == [2, 2]


def test_empty_first_page_ends_paging_with_no_records(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings()
    httpx_mock.add_response(url=markets_url(1), content=b"[]")
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    pages = list(coingecko.SOURCE.pages(http, settings))

    assert len(pages) == 1
    assert pages[0].records == []
    assert pages[0].shape_error is None


# --- keys and hosts --------------------------------------------------------------------------


def test_demo_key_goes_to_the_public_host_in_the_demo_header(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings(plan="demo")
    httpx_mock.add_response(url=markets_url(1), content=coingecko_page(1, 1))
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    (page,) = coingecko.SOURCE.pages(http, settings)

    request = httpx_mock.get_requests()[0]
    assert request.url.host == "api.coingecko.com"
    assert request.headers["x-cg-demo-api-key"] == API_KEY
    assert "x-cg-pro-api-key" not in request.headers
    assert API_KEY not in page.url


def test_pro_plan_key_goes_to_the_pro_host_in_the_pro_header(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings(plan="pro")
    httpx_mock.add_response(url=markets_url(1, base=PRO), content=coingecko_page(1, 1))
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    (page,) = coingecko.SOURCE.pages(http, settings)

    request = httpx_mock.get_requests()[0]
    assert request.url.host == "pro-api.coingecko.com"
    assert request.headers["x-cg-pro-api-key"] == API_KEY
    assert "x-cg-demo-api-key" not in request.headers
    assert page.url == str(markets_url(1, base=PRO))


def test_without_a_key_the_public_host_is_used_with_no_key_header(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings(api_key=None)
    httpx_mock.add_response(url=markets_url(1), content=coingecko_page(1, 1))
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    list(coingecko.SOURCE.pages(http, settings))

    headers = httpx_mock.get_requests()[0].headers
    assert "x-cg-demo-api-key" not in headers
    assert "x-cg-pro-api-key" not in headers
    assert "authorization" not in headers


def test_base_url_setting_overrides_the_host(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings(base_url="https://gecko-proxy.internal.test/api/v3")
    url = markets_url(1, base="https://gecko-proxy.internal.test/api/v3/coins/markets")
    httpx_mock.add_response(url=url, content=coingecko_page(1, 1))
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    (page,) = coingecko.SOURCE.pages(http, settings)

    assert page.url == str(url)


# --- records as served -----------------------------------------------------------------------

# Formatting as a server might send it: odd spacing, floats written for integers, exponents,
# unicode traps in names (zero-width space, trailing no-break space, emoji, bitcoin sign).
TRAP_RECORDS = [
    '{"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "current_price": 23197,'
    ' "circulating_supply": 19109818.0, "total_supply": 21000000.0,'
    ' "last_updated": "2026-11-24T11:58:26.342Z"}',
    '{\n    "id":"baby-doge","symbol":"babydoge","name":"Baby\u200bDoge\u00a0",'
    '"current_price":1.258e-09,"total_supply":4.2E+17,"last_updated":"2026-11-24T11:58:01Z"\n  }',
    '{"id": "rocket", "symbol": "rkt", "name": "Rocket \U0001f680 \u20bf\u2022",'
    ' "current_price": 0.000098, "price_change_percentage_24h": -0.0,'
    ' "last_updated": "2026-11-24T11:57:59.000Z"}',
]
TRAP_BODY = "[\n  " + ",\n  ".join(TRAP_RECORDS) + "\n]\n"


def test_records_are_the_exact_text_served_not_a_reserialisation(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coingecko_settings(page_size=250)
    body = TRAP_BODY.encode("utf-8")
    httpx_mock.add_response(
        url=markets_url(1, per_page=250),
        content=body,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    (page,) = coingecko.SOURCE.pages(http, settings)

    assert page.shape_error is None
    assert page.body == body
    assert page.records == TRAP_RECORDS
    for record in page.records:
        assert record in TRAP_BODY
    assert "19109818.0" in page.records[0]
    assert "1.258e-09" in page.records[1]
    assert "4.2E+17" in page.records[1]
    assert json.loads(page.records[1])["name"] == "Baby\u200bDoge\u00a0"
    assert json.loads(page.records[2])["name"] == "Rocket \U0001f680 \u20bf\u2022"
    assert page.split is not None
    assert page.split.envelope == "[]"
    assert "circulating_supply" in page.split.keys
    assert "price_change_percentage_24h" in page.split.keys


# --- bad payloads ----------------------------------------------------------------------------

TRUNCATED = b'[{"id": "bitcoin", "symbol": "btc", "current_price": 231'
ERROR_OBJECT = b'{"status": {"error_code": 10002, "error_message": "API Key Missing"}}'


@pytest.mark.parametrize(
    ("body", "expected", "attempts"),
    [(TRUNCATED, "not well-formed JSON", 3), (ERROR_OBJECT, "expected a JSON array", 1)],
    ids=["malformed-json", "object-instead-of-array"],
)
def test_unreadable_200_body_becomes_a_page_with_a_shape_error_and_ends_paging(
    httpx_mock: HTTPXMock, open_source: OpenSource, body: bytes, expected: str, attempts: int
) -> None:
    """A truncated body is fetched again (each attempt), well-formed JSON of the wrong shape is
    not; either way the last body comes back as a page with its shape error."""
    settings = coingecko_settings(page_size=2, max_pages=5)
    httpx_mock.add_response(url=markets_url(1), content=body, is_reusable=True)
    http = open_source(coingecko.SOURCE, settings, rate_limit=False)

    pages = list(coingecko.SOURCE.pages(http, settings))

    assert len(pages) == 1  # no request for page 2
    (page,) = pages
    assert len(httpx_mock.get_requests()) == attempts
    assert page.broken == (attempts > 1)
    assert page.status == 200
    assert page.shape_error is not None
    assert expected in page.shape_error
    assert page.records == []
    assert page.body == body


def raw_page(raw_root: Path, page: int) -> pl.DataFrame:
    (path,) = raw_root.glob(f"source=coingecko/date=*/run=*/coins_markets-page-{page:04d}.parquet")
    return pl.read_parquet(path)


@pytest.mark.parametrize(
    ("body", "error"),
    [(TRUNCATED, TransientSourceError), (ERROR_OBJECT, ContractError)],
    ids=["malformed", "object"],
)
def test_extract_fails_after_keeping_the_body_in_the_raw_zone(
    httpx_mock: HTTPXMock, tmp_path: Path, body: bytes, error: type[SourceError]
) -> None:
    """Truncated JSON is a broken delivery (transient: retry the run); well-formed JSON of
    another shape means the API changed. Both bodies are kept."""
    settings = coingecko_settings()
    httpx_mock.add_response(url=markets_url(1), content=body, is_reusable=True)

    with pytest.raises(error) as caught:
        extract_api(
            coingecko.SOURCE, settings, raw_root=tmp_path, run_id="run-1", started_at=STARTED_AT
        )

    stored = raw_page(tmp_path, 1)
    assert stored["envelope"].to_list() == [body.decode()]
    assert stored["record"].to_list() == [None]
    assert stored["http_status"].to_list() == [200]
    assert stored["request_url"].to_list() == [str(markets_url(1))]
    message = str(caught.value)
    assert "coins_markets-page-0001.parquet" in message
    broken = error is TransientSourceError
    assert ("retry the run later" if broken else "flows/sources/coingecko.py") in message
    assert API_KEY not in message


def test_shape_error_on_a_later_page_keeps_every_earlier_page_in_the_raw_zone(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    settings = coingecko_settings(page_size=2)
    httpx_mock.add_response(url=markets_url(1), content=coingecko_page(1, 2))
    httpx_mock.add_response(url=markets_url(2), content=TRUNCATED, is_reusable=True)

    with pytest.raises(TransientSourceError):
        extract_api(
            coingecko.SOURCE, settings, raw_root=tmp_path, run_id="run-1", started_at=STARTED_AT
        )

    first = raw_page(tmp_path, 1)
    assert [json.loads(r)["id"] for r in first["record"]] == ["coin-1", "coin-2"]
    assert raw_page(tmp_path, 2)["envelope"].to_list() == [TRUNCATED.decode()]


def test_extract_keeps_each_record_byte_exact_in_the_raw_zone(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    settings = coingecko_settings(page_size=250)
    httpx_mock.add_response(url=markets_url(1, per_page=250), content=TRAP_BODY.encode())

    extracted = extract_api(
        coingecko.SOURCE, settings, raw_root=tmp_path, run_id="run-1", started_at=STARTED_AT
    )

    assert extracted.records == 3
    assert extracted.requests == 1
    stored = raw_page(tmp_path, 1)
    assert stored["record"].to_list() == TRAP_RECORDS
    assert stored["record_index"].to_list() == [0, 1, 2]
    assert API_KEY not in stored["request_url"][0]
