"""`kasparro record DIR` writes the replay layout byte for byte, and a replay serves it back."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from flows.extract import extract_api
from flows.raw_zone import read_raw
from flows.record import record
from flows.sources import API_SOURCES
from tests.flows.sources.payloads import coincap_page, coingecko_page, coinpaprika_tickers


@pytest.fixture
def fast_live_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for source in ("COINGECKO", "COINPAPRIKA", "COINCAP"):
        monkeypatch.setenv(f"KASPARRO_{source}_API_KEY", "secret-key")
        monkeypatch.setenv(f"KASPARRO_{source}_PAGE_SIZE", "2")
        monkeypatch.setenv(f"KASPARRO_{source}_REQUESTS_PER_MINUTE", "6000")
        monkeypatch.setenv(f"KASPARRO_{source}_CONTRACTS", "false")
    csv_dir = tmp_path / "inbox"
    csv_dir.mkdir()
    (csv_dir / "history.csv").write_text(
        "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n"
    )
    monkeypatch.setenv("KASPARRO_CSV_DIR", str(csv_dir))
    return csv_dir


def test_recording_writes_every_body_in_the_replay_layout(
    httpx_mock: HTTPXMock, fast_live_settings: Path, tmp_path: Path
) -> None:
    gecko = [coingecko_page(1, 2), coingecko_page(3, 1)]
    for page, body in enumerate(gecko, start=1):
        httpx_mock.add_response(
            url=f"https://api.coingecko.com/api/v3/coins/markets?vs_currency=usd"
            f"&order=market_cap_desc&per_page=2&page={page}",
            content=body,
        )
    tickers = coinpaprika_tickers(3)
    httpx_mock.add_response(
        url="https://api-pro.coinpaprika.com/v1/tickers?quotes=USD", content=tickers
    )
    assets = coincap_page(1, 1)
    httpx_mock.add_response(
        url="https://rest.coincap.io/v3/assets?limit=2&offset=0", content=assets
    )

    replay = tmp_path / "recording"
    counts = record(replay, ["coingecko", "coinpaprika", "coincap", "csv"])

    assert counts == {"coingecko": 2, "coinpaprika": 1, "coincap": 1, "csv": 1}
    assert (replay / "coingecko/coins_markets/page-0001.json").read_bytes() == gecko[0]
    assert (replay / "coingecko/coins_markets/page-0002.json").read_bytes() == gecko[1]
    assert (replay / "coinpaprika/tickers.json").read_bytes() == tickers
    assert (replay / "coincap/assets/page-0001.json").read_bytes() == assets
    assert (replay / "csv/history.csv").read_bytes() == (
        fast_live_settings / "history.csv"
    ).read_bytes()
    assert not list(replay.rglob("*.tmp")), "recordings are written atomically"
    for path in replay.rglob("*.json"):
        assert b"secret-key" not in path.read_bytes()


def test_a_recording_replays_the_same_records(
    httpx_mock: HTTPXMock, fast_live_settings: Path, tmp_path: Path
) -> None:
    tickers = coinpaprika_tickers(3)
    httpx_mock.add_response(
        url="https://api-pro.coinpaprika.com/v1/tickers?quotes=USD", content=tickers
    )
    replay = tmp_path / "recording"
    record(replay, ["coinpaprika"])

    api = API_SOURCES["coinpaprika"]
    raw_root = tmp_path / "raw"
    extracted = extract_api(
        api,
        api.settings_type(),
        raw_root=raw_root,
        run_id="replayed",
        started_at=datetime.now(UTC),
        replay_dir=replay,
    )
    raw = read_raw(raw_root, extracted.raw_files)
    assert raw["payload_sha256"].unique().to_list() == [hashlib.sha256(tickers).hexdigest()]
    assert raw.height == 3
