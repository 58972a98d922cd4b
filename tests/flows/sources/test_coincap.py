"""CoinCap /assets: limit/offset paging, bearer key, v3 without a key, envelope timestamp."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from pytest_httpx import HTTPXMock

from flows.errors import ContractError, SourceSkipped
from flows.extract import extract_api
from flows.sources import coincap
from tests.flows.sources.conftest import OpenSource, coincap_settings
from tests.flows.sources.payloads import API_KEY, COINCAP_TIMESTAMP, coincap_page

V3 = "https://rest.coincap.io/v3/assets"
STARTED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def assets_url(limit: int, offset: int, base: str = V3) -> httpx.URL:
    return httpx.URL(base, params={"limit": limit, "offset": offset})


# --- paging ----------------------------------------------------------------------------------


def test_pages_with_limit_and_offset_until_a_short_page(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coincap_settings(page_size=2, max_pages=5)
    httpx_mock.add_response(url=assets_url(2, 0), content=coincap_page(1, 2))
    httpx_mock.add_response(url=assets_url(2, 2), content=coincap_page(3, 2))
    httpx_mock.add_response(url=assets_url(2, 4), content=coincap_page(5, 1))
    http = open_source(coincap.SOURCE, settings, rate_limit=False)

    pages = list(coincap.SOURCE.pages(http, settings))

    assert [page.page for page in pages] == [1, 2, 3]
    ids = [json.loads(r)["id"] for page in pages for r in page.records]
    assert ids == ["coin-1", "coin-2", "coin-3", "coin-4", "coin-5"]
    offsets = [r.url.params["offset"] for r in httpx_mock.get_requests()]
    assert offsets == ["0", "2", "4"]


def test_paging_stops_at_max_pages_even_when_every_page_is_full(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coincap_settings(page_size=3, max_pages=2)
    httpx_mock.add_response(url=assets_url(3, 0), content=coincap_page(1, 3))
    httpx_mock.add_response(url=assets_url(3, 3), content=coincap_page(4, 3))
    http = open_source(coincap.SOURCE, settings, rate_limit=False)

    pages = list(coincap.SOURCE.pages(http, settings))

    assert [len(page.records) for page in pages] == [3, 3]


def test_empty_data_array_ends_paging(httpx_mock: HTTPXMock, open_source: OpenSource) -> None:
    settings = coincap_settings(page_size=2)
    httpx_mock.add_response(url=assets_url(2, 0), content=coincap_page(1, 2))
    httpx_mock.add_response(url=assets_url(2, 2), content=b'{"data":[],"timestamp":1715904000000}')
    http = open_source(coincap.SOURCE, settings, rate_limit=False)

    pages = list(coincap.SOURCE.pages(http, settings))

    assert [len(page.records) for page in pages] == [2, 0]
    assert pages[1].shape_error is None


# --- keys and hosts --------------------------------------------------------------------------


def test_key_is_sent_as_a_bearer_token_to_the_v3_host(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coincap_settings()
    httpx_mock.add_response(url=assets_url(2, 0), content=coincap_page(1, 1))
    http = open_source(coincap.SOURCE, settings, rate_limit=False)

    (page,) = coincap.SOURCE.pages(http, settings)

    request = httpx_mock.get_requests()[0]
    assert request.url.host == "rest.coincap.io"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert page.url == str(assets_url(2, 0))


def test_v3_without_a_key_is_skipped_in_a_live_run_before_any_request(
    httpx_mock: HTTPXMock,
) -> None:
    settings = coincap_settings(api_key=None)

    with pytest.raises(SourceSkipped) as caught:
        coincap.SOURCE.open(settings)

    assert caught.value.source == "coincap"
    assert "KASPARRO_COINCAP_API_KEY" in str(caught.value)
    assert httpx_mock.get_requests() == []


def test_extract_of_v3_without_a_key_is_skipped_not_failed(tmp_path: Path) -> None:
    settings = coincap_settings(api_key=None)

    with pytest.raises(SourceSkipped):
        extract_api(coincap.SOURCE, settings, raw_root=tmp_path, run_id="r", started_at=STARTED_AT)

    assert list(tmp_path.iterdir()) == []


def test_v3_without_a_key_is_allowed_in_a_replay(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coincap_settings(api_key=None)
    httpx_mock.add_response(url=assets_url(2, 0), content=coincap_page(1, 1))
    http = open_source(coincap.SOURCE, settings, replay=True, rate_limit=False)

    (page,) = coincap.SOURCE.pages(http, settings)

    assert len(page.records) == 1
    assert "authorization" not in httpx_mock.get_requests()[0].headers


def test_v2_compatible_base_url_without_a_key_runs_live_with_no_authorization(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    settings = coincap_settings(api_key=None, base_url="https://api.coincap.io/v2")
    url = assets_url(2, 0, base="https://api.coincap.io/v2/assets")
    httpx_mock.add_response(url=url, content=coincap_page(1, 1))
    http = open_source(coincap.SOURCE, settings, rate_limit=False)

    (page,) = coincap.SOURCE.pages(http, settings)

    assert page.url == str(url)
    assert "authorization" not in httpx_mock.get_requests()[0].headers


# --- envelope and records --------------------------------------------------------------------


def test_envelope_keeps_the_timestamp_with_the_data_array_emptied(
    httpx_mock: HTTPXMock, open_source: OpenSource
) -> None:
    record = (
        '{"id":"xrp","rank":"6","symbol":"XRP","name":"XRP","supply":"55000000000.0000000000000000",'
        '"maxSupply":"100000000000.0000000000000000","priceUsd":"0.000000000123000000"}'
    )
    body = '{"data":[' + record + '],"timestamp":1715904000123}'
    settings = coincap_settings()
    httpx_mock.add_response(url=assets_url(2, 0), content=body.encode())
    http = open_source(coincap.SOURCE, settings, rate_limit=False)

    (page,) = coincap.SOURCE.pages(http, settings)

    assert page.records == [record]
    assert page.split is not None
    assert page.split.envelope == '{"data":[],"timestamp":1715904000123}'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": "Unauthorized", "timestamp": 1715904000000}', "no 'data' array"),
        (b'{"data": {"id": "bitcoin"}, "timestamp": 1715904000000}', "'data' is not an array"),
        (b'[{"id": "bitcoin"}]', "expected a JSON object"),
        (b'{"data": [{"id": "bitcoin", "priceUsd": "667', "not well-formed JSON"),
    ],
    ids=["no-data", "data-not-array", "bare-array", "malformed"],
)
def test_body_not_in_the_envelope_shape_becomes_a_page_with_a_shape_error(
    httpx_mock: HTTPXMock, open_source: OpenSource, body: bytes, expected: str
) -> None:
    settings = coincap_settings(page_size=2, max_pages=3)
    httpx_mock.add_response(url=assets_url(2, 0), content=body, is_reusable=True)
    http = open_source(coincap.SOURCE, settings, rate_limit=False)

    pages = list(coincap.SOURCE.pages(http, settings))

    assert len(pages) == 1
    assert pages[0].broken == (expected == "not well-formed JSON")  # only that one is fetched again
    assert pages[0].shape_error is not None
    assert expected in pages[0].shape_error
    assert pages[0].records == []


def test_extract_fails_with_contract_error_after_keeping_the_body_in_the_raw_zone(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    body = b'{"error": "Unauthorized", "timestamp": 1715904000000}'
    settings = coincap_settings()
    httpx_mock.add_response(url=assets_url(2, 0), content=body)

    with pytest.raises(ContractError, match="no 'data' array") as caught:
        extract_api(
            coincap.SOURCE, settings, raw_root=tmp_path, run_id="run-1", started_at=STARTED_AT
        )

    (path,) = tmp_path.glob("source=coincap/date=2026-11-24/run=run-1/assets-page-0001.parquet")
    stored = pl.read_parquet(path)
    assert stored["envelope"].to_list() == [body.decode()]
    assert stored["record"].to_list() == [None]
    assert "assets-page-0001.parquet" in str(caught.value)


def test_extract_stores_the_envelope_timestamp_beside_every_record(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    settings = coincap_settings(page_size=2)
    httpx_mock.add_response(url=assets_url(2, 0), content=coincap_page(1, 2))
    httpx_mock.add_response(url=assets_url(2, 2), content=coincap_page(3, 1))

    extracted = extract_api(
        coincap.SOURCE, settings, raw_root=tmp_path, run_id="run-1", started_at=STARTED_AT
    )

    assert extracted.records == 3
    assert extracted.requests == 2
    stored = pl.read_parquet(tmp_path / extracted.raw_files[0])
    envelopes = [json.loads(e) for e in stored["envelope"]]
    assert envelopes == [{"data": [], "timestamp": COINCAP_TIMESTAMP}] * 2
