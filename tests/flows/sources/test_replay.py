"""Replays: recorded bodies served through the same client code a live run uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from pytest_httpx import HTTPXMock

from flows.errors import ReplayError, TerminalSourceError
from flows.extract import extract_api
from flows.sources import coincap, coingecko, coinpaprika
from flows.sources.replay import (
    check_replay_dir,
    copy_csv_files,
    replay_transport,
    write_recording,
)
from tests.flows.sources.conftest import (
    OpenSource,
    coincap_settings,
    coingecko_settings,
    coinpaprika_settings,
)
from tests.flows.sources.payloads import coincap_page, coingecko_page, coinpaprika_tickers

STARTED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

# Every test here takes httpx_mock without registering a response: any request that escaped the
# replay transport to the real network path would fail the test.


def record(replay_dir: Path, relative: str, body: bytes) -> bytes:
    write_recording(replay_dir / relative, body)
    return body


def test_coingecko_replay_serves_recorded_pages_through_the_real_client(
    httpx_mock: HTTPXMock, tmp_path: Path, open_source: OpenSource
) -> None:
    first = record(tmp_path, "coingecko/coins_markets/page-0001.json", coingecko_page(1, 2))
    second = record(tmp_path, "coingecko/coins_markets/page-0002.json", coingecko_page(3, 1))
    settings = coingecko_settings(api_key=None, page_size=2, max_pages=5)
    http = open_source(
        coingecko.SOURCE,
        settings,
        transport=replay_transport(tmp_path, coingecko.SPEC),
        replay=True,
        rate_limit=False,
    )

    pages = list(coingecko.SOURCE.pages(http, settings))

    assert [page.body for page in pages] == [first, second]
    assert [len(page.records) for page in pages] == [2, 1]
    assert pages[0].url.endswith(
        "coins/markets?vs_currency=usd&order=market_cap_desc&per_page=2&page=1"
    )
    assert http.requests == 2


def test_page_beyond_the_recording_is_an_empty_last_page(
    httpx_mock: HTTPXMock, tmp_path: Path, open_source: OpenSource
) -> None:
    # The recording ends on a full page: the next request gets an empty body and paging stops.
    record(tmp_path, "coingecko/coins_markets/page-0001.json", coingecko_page(1, 2))
    settings = coingecko_settings(page_size=2, max_pages=5)
    http = open_source(
        coingecko.SOURCE,
        settings,
        transport=replay_transport(tmp_path, coingecko.SPEC),
        replay=True,
        rate_limit=False,
    )

    pages = list(coingecko.SOURCE.pages(http, settings))

    assert [len(page.records) for page in pages] == [2, 0]
    assert pages[1].status == 200
    assert pages[1].body == b"[]"
    assert pages[1].shape_error is None


def test_coincap_replay_maps_limit_and_offset_to_page_files_and_keeps_the_envelope(
    httpx_mock: HTTPXMock, tmp_path: Path, open_source: OpenSource
) -> None:
    record(tmp_path, "coincap/assets/page-0001.json", coincap_page(1, 2, timestamp=1))
    record(tmp_path, "coincap/assets/page-0002.json", coincap_page(3, 2, timestamp=2))
    settings = coincap_settings(api_key=None, page_size=2, max_pages=5)
    http = open_source(
        coincap.SOURCE,
        settings,
        transport=replay_transport(tmp_path, coincap.SPEC),
        replay=True,
        rate_limit=False,
    )

    pages = list(coincap.SOURCE.pages(http, settings))

    ids = [json.loads(r)["id"] for page in pages for r in page.records]
    assert ids == ["coin-1", "coin-2", "coin-3", "coin-4"]
    assert pages[-1].body == b'{"data": []}'  # page 3 is past the recording
    assert pages[-1].records == []
    assert pages[0].split is not None
    assert json.loads(pages[0].split.envelope) == {"data": [], "timestamp": 1}


def test_coinpaprika_replay_serves_the_unpaged_recording(
    httpx_mock: HTTPXMock, tmp_path: Path, open_source: OpenSource
) -> None:
    body = record(tmp_path, "coinpaprika/tickers.json", coinpaprika_tickers(3))
    settings = coinpaprika_settings(api_key=None)
    http = open_source(
        coinpaprika.SOURCE,
        settings,
        transport=replay_transport(tmp_path, coinpaprika.SPEC),
        replay=True,
        rate_limit=False,
    )

    (page,) = coinpaprika.SOURCE.pages(http, settings)

    assert page.body == body
    assert len(page.records) == 3


def test_unpaged_endpoint_with_no_recording_is_a_terminal_404(
    httpx_mock: HTTPXMock, tmp_path: Path, open_source: OpenSource
) -> None:
    settings = coinpaprika_settings(api_key=None, max_attempts=3)
    http = open_source(
        coinpaprika.SOURCE,
        settings,
        transport=replay_transport(tmp_path, coinpaprika.SPEC),
        replay=True,
        rate_limit=False,
    )

    with pytest.raises(TerminalSourceError, match="HTTP 404"):
        list(coinpaprika.SOURCE.pages(http, settings))
    assert http.requests == 1


def test_request_for_a_path_the_source_does_not_declare_is_a_404(tmp_path: Path) -> None:
    record(tmp_path, "coinpaprika/tickers.json", coinpaprika_tickers(1))
    client = httpx.Client(transport=replay_transport(tmp_path, coinpaprika.SPEC))

    with client:
        response = client.get("https://api.coinpaprika.com/v1/coins")

    assert response.status_code == 404
    assert "no endpoint /v1/coins" in response.json()["error"]


def test_extract_from_a_replay_writes_every_page_to_the_raw_zone(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    replay_dir = tmp_path / "replay"
    raw_root = tmp_path / "raw"
    record(replay_dir, "coincap/assets/page-0001.json", coincap_page(1, 3))
    settings = coincap_settings(api_key=None, page_size=3, max_pages=4)

    extracted = extract_api(
        coincap.SOURCE,
        settings,
        raw_root=raw_root,
        run_id="run-1",
        started_at=STARTED_AT,
        replay_dir=replay_dir,
    )

    assert extracted.records == 3
    assert extracted.requests == 2
    assert extracted.raw_files == [
        "source=coincap/date=2026-11-24/run=run-1/assets-page-0001.parquet",
        "source=coincap/date=2026-11-24/run=run-1/assets-page-0002.parquet",
    ]
    empty_page = pl.read_parquet(raw_root / extracted.raw_files[1])
    assert empty_page["record"].to_list() == [None]
    assert empty_page["envelope"].to_list() == ['{"data": []}']


# --- recording helpers -----------------------------------------------------------------------


def test_write_recording_creates_directories_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "coingecko" / "coins_markets" / "page-0001.json"

    write_recording(target, b"[1]")
    write_recording(target, b"[2]")

    assert target.read_bytes() == b"[2]"
    assert [p.name for p in target.parent.iterdir()] == ["page-0001.json"]


def test_check_replay_dir_rejects_a_missing_directory_with_what_to_do(tmp_path: Path) -> None:
    check_replay_dir(tmp_path)  # exists: accepted

    with pytest.raises(ReplayError, match=r"does not exist.*kasparro record"):
        check_replay_dir(tmp_path / "nope")


def test_copy_csv_files_copies_into_the_csv_subdirectory(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.csv").write_bytes(b"x\n")
    (source / "b.csv").write_bytes(b"y\n")

    copied = copy_csv_files([source / "a.csv", source / "b.csv"], tmp_path / "replay")

    assert copied == 2
    assert (tmp_path / "replay" / "csv" / "a.csv").read_bytes() == b"x\n"
    assert (tmp_path / "replay" / "csv" / "b.csv").read_bytes() == b"y\n"
