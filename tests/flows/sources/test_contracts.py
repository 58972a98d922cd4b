"""Contract listings: fetched with the quotes, kept in the raw zone, made identity evidence."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from pytest_httpx import HTTPXMock

from flows.extract import extract_api
from flows.raw_zone import RAW_SCHEMA, read_raw
from flows.sources import coincap, coingecko, coinpaprika
from flows.sources.platforms import platforms
from flows.sources.replay import replay_transport
from flows.transform import transform_raw_files
from flows.transform.contracts import contracts_of
from tests.flows.sources.conftest import (
    OpenSource,
    coingecko_settings,
    coinpaprika_settings,
)
from tests.flows.sources.payloads import coingecko_page, coinpaprika_tickers

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
COINS_LIST = [
    {"id": "usd-coin", "symbol": "usdc", "name": "USDC",
     "platforms": {"ethereum": USDC, "solana": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
                   "some-new-chain": "0xabc", "arbitrum-one": ""}},
    {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "platforms": {}},
]  # fmt: skip


def test_coingecko_fetches_the_coin_list_with_platforms_after_the_markets(
    httpx_mock: HTTPXMock, open_source: OpenSource, tmp_path: Path
) -> None:
    markets = coingecko_page(1, 1)
    httpx_mock.add_response(
        url="https://pro-api.coingecko.com/api/v3/coins/markets?vs_currency=usd"
        "&order=market_cap_desc&per_page=2&page=1",
        content=markets,
    )
    httpx_mock.add_response(
        url="https://pro-api.coingecko.com/api/v3/coins/list?include_platform=true",
        json=COINS_LIST,
    )
    settings = coingecko_settings(plan="pro", contracts=True)
    extracted = extract_api(
        coingecko.SOURCE, settings, raw_root=tmp_path, run_id="r1", started_at=NOW
    )

    assert [Path(f).name for f in extracted.raw_files] == [
        "coins_markets-page-0001.parquet",
        "coins_list.parquet",
    ]
    assert extracted.warnings == []  # coins/list lacks the market fields: that is not drift
    validated = transform_raw_files(tmp_path, extracted.raw_files)
    assert validated.quotes.height == 1  # the coin list gives no quotes
    rows = validated.contracts.select("source_asset_id", "chain", "address").rows()
    # Unknown platforms and empty addresses are no evidence; both stay in the raw zone.
    assert rows == [
        ("usd-coin", "ethereum", USDC),
        ("usd-coin", "solana", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"),
    ]
    raw = read_raw(tmp_path, extracted.raw_files[1:])
    assert [json.loads(r) for r in raw["record"]] == COINS_LIST


def test_coinpaprika_asks_each_platform_and_a_failed_one_costs_only_its_evidence(
    httpx_mock: HTTPXMock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_response(
        url="https://api-pro.coinpaprika.com/v1/tickers?quotes=USD", content=coinpaprika_tickers(2)
    )
    for platform in platforms():
        url = f"https://api-pro.coinpaprika.com/v1/contracts/{platform.coinpaprika}"
        if platform.chain == "ethereum":
            httpx_mock.add_response(
                url=url, json=[{"address": USDC.upper().replace("0X", "0x"), "id": "usdc-usd-coin",
                                "type": "ERC20"}],
            )  # fmt: skip
        elif platform.chain == "tron":
            httpx_mock.add_response(url=url, status_code=404, json={"error": "id not found"})
        else:
            httpx_mock.add_response(url=url, json=[])
    settings = coinpaprika_settings(contracts=True)
    with caplog.at_level(logging.WARNING):
        extracted = extract_api(
            coinpaprika.SOURCE, settings, raw_root=tmp_path, run_id="r1", started_at=NOW
        )

    assert "contract addresses of trx-tron not fetched" in caplog.text
    (warning,) = extracted.warnings  # kept in the run ledger
    assert warning.startswith("contract addresses of trx-tron not fetched")
    validated = transform_raw_files(tmp_path, extracted.raw_files)
    assert validated.quotes.height == 2
    # EVM addresses are compared lowercased: their case is only a checksum.
    columns = ("source_asset_id", "chain", "address", "source_platform")
    assert validated.contracts.select(columns).rows() == [
        ("usdc-usd-coin", "ethereum", USDC, "eth-ethereum")
    ]
    assert "contracts-eth-ethereum.parquet" in {Path(f).name for f in extracted.raw_files}


@pytest.mark.parametrize(
    ("explorer", "expected"),
    [
        (f"https://etherscan.io/token/{USDC.upper().replace('0X', '0x')}", [("ethereum", USDC)]),
        ("https://bscscan.com/token/0xB8c77482e45F1F44dE1745F52C74426C631bDD52",
         [("binance-smart-chain", "0xb8c77482e45f1f44de1745f52c74426c631bdd52")]),
        ("https://solscan.io/token/EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
         [("solana", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")]),
        ("https://etherscan.io/", []),
        ("https://blockchain.info/", []),
        ("https://unknown-explorer.example/token/0xabc", []),
        (None, []),
    ],
)  # fmt: skip
def test_coincap_explorer_urls_name_a_token_contract(
    explorer: str | None, expected: list[tuple[str, str]]
) -> None:
    record = {"id": "asset", "symbol": "A", "name": "A", "priceUsd": "1", "explorer": explorer}
    raw = _raw_rows("coincap", "assets", [json.dumps(record)])
    assert contracts_of(raw).select("chain", "address").rows() == expected


def test_a_contract_published_by_several_runs_keeps_the_first(tmp_path: Path) -> None:
    record = json.dumps({"id": "usdc-usd-coin", "address": USDC, "type": "ERC20"})
    raw = _raw_rows("coinpaprika", "contracts", [record, record], runs=["r2", "r1"],
                    subject=json.dumps({"platform": "eth-ethereum"}))  # fmt: skip
    assert contracts_of(raw)["first_seen_run"].to_list() == ["r1"]


def test_contract_listings_are_served_by_the_replay(tmp_path: Path) -> None:
    (tmp_path / "coingecko").mkdir()
    (tmp_path / "coingecko" / "coins_list.json").write_text(json.dumps(COINS_LIST))
    client = httpx.Client(
        transport=replay_transport(tmp_path, coingecko.SPEC), base_url="https://x/api/v3"
    )
    response = client.get("coins/list", params={"include_platform": "true"})
    assert response.json() == COINS_LIST
    assert coincap.SPEC.quote_endpoints == coincap.SPEC.endpoints  # CoinCap has no listing


def _raw_rows(
    source: str,
    endpoint: str,
    records: list[str],
    *,
    runs: list[str] | None = None,
    subject: str | None = None,
) -> pl.DataFrame:
    n = len(records)
    frame = {name: [None] * n for name in RAW_SCHEMA}
    frame |= {
        "source": [source] * n,
        "endpoint": [endpoint] * n,
        "record": records,
        "run_id": runs or ["r1"] * n,
        "subject": [subject] * n,
    }
    return pl.DataFrame(frame, schema=RAW_SCHEMA)


# --- a bad listing costs only its evidence ---------------------------------------------------

LISTINGS_URL = "https://pro-api.coingecko.com/api/v3/coins/list?include_platform=true"
MARKETS_URL = (
    "https://pro-api.coingecko.com/api/v3/coins/markets?vs_currency=usd"
    "&order=market_cap_desc&per_page=2&page=1"
)
HTML_ERROR = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[]", "contract listing is empty"),
        (b'{"status": {"error_code": 429, "error_message": "Throttled"}}',
         "expected a JSON array"),
        (b'[{"id": "usd-coin", "platforms": {"ethereum": "0xa0b8', "not well-formed JSON"),
        (HTML_ERROR, "an HTML page ('502 Bad Gateway') instead of JSON"),
        (b'[{"coin": "usd-coin", "contracts": {}}]', "has no ['id', 'platforms'] in any record"),
    ],
    ids=["empty", "error-object", "truncated", "html", "other-fields"],
)  # fmt: skip
def test_a_bad_coingecko_listing_warns_keeps_the_payload_and_the_markets_still_load(
    httpx_mock: HTTPXMock, tmp_path: Path, body: bytes, expected: str
) -> None:
    httpx_mock.add_response(url=MARKETS_URL, content=coingecko_page(1, 1))
    httpx_mock.add_response(url=LISTINGS_URL, content=body, is_reusable=True)
    settings = coingecko_settings(plan="pro", contracts=True)

    extracted = extract_api(
        coingecko.SOURCE, settings, raw_root=tmp_path, run_id="r1", started_at=NOW
    )

    (warning,) = extracted.warnings
    assert expected in warning
    assert LISTINGS_URL in warning
    assert "resolved without its contract addresses" in warning
    assert extracted.records == 1
    validated = transform_raw_files(tmp_path, extracted.raw_files)
    assert validated.quotes.height == 1
    assert validated.contracts.is_empty()
    (listing,) = [f for f in extracted.raw_files if "coins_list" in f]
    kept = read_raw(tmp_path, [listing])
    assert kept["payload_sha256"].unique().to_list() == [hashlib.sha256(body).hexdigest()]
    assert f"kept in the raw zone at {listing}" in warning


def test_an_unusable_coinpaprika_platform_listing_costs_only_that_platform(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    """``[]`` for a platform is no evidence, not a warning (CoinPaprika lists no contract
    there); a listing of another shape is a warning, and the other platforms still count."""
    httpx_mock.add_response(
        url="https://api-pro.coinpaprika.com/v1/tickers?quotes=USD", content=coinpaprika_tickers(2)
    )
    for platform in platforms():
        url = f"https://api-pro.coinpaprika.com/v1/contracts/{platform.coinpaprika}"
        if platform.chain == "ethereum":
            httpx_mock.add_response(url=url, json=[{"address": USDC, "id": "usdc-usd-coin"}])
        elif platform.chain == "solana":
            httpx_mock.add_response(url=url, json={"error": "unexpected"})
        else:
            httpx_mock.add_response(url=url, json=[])
    settings = coinpaprika_settings(contracts=True)

    extracted = extract_api(
        coinpaprika.SOURCE, settings, raw_root=tmp_path, run_id="r1", started_at=NOW
    )

    (warning,) = extracted.warnings
    assert warning.startswith("contract listing of sol-solana unusable")
    assert "contracts-sol-solana.parquet" in warning
    validated = transform_raw_files(tmp_path, extracted.raw_files)
    assert validated.quotes.height == 2
    assert validated.contracts.select("source_asset_id", "chain").rows() == [
        ("usdc-usd-coin", "ethereum")
    ]


def test_coingecko_listing_records_without_an_id_are_no_evidence() -> None:
    records = [json.dumps({"platforms": {"ethereum": USDC}}),
               json.dumps({"id": 7, "platforms": {"ethereum": USDC}}),
               json.dumps({"id": "usd-coin", "platforms": {"ethereum": USDC}})]  # fmt: skip
    raw = _raw_rows("coingecko", "coins_list", records)
    assert contracts_of(raw).select("source_asset_id", "address").rows() == [("usd-coin", USDC)]


def test_a_coincap_explorer_that_is_not_a_string_costs_only_its_record() -> None:
    good = {"id": "usd-coin", "explorer": f"https://etherscan.io/token/{USDC}"}
    bad = {"id": "odd", "explorer": {"url": "https://etherscan.io/token/0xabc"}}
    raw = _raw_rows("coincap", "assets", [json.dumps(bad), json.dumps(good)])
    assert contracts_of(raw).select("source_asset_id", "address").rows() == [("usd-coin", USDC)]
