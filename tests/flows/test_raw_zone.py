"""The raw zone keeps every payload as received and is only ever added to."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from flows import raw_zone
from flows.extract import extract_csv
from flows.sources import API_SOURCES

STARTED = datetime(2026, 11, 24, 12, tzinfo=UTC)


def tickers(price: float) -> bytes:
    return (
        '[{"id": "btc-bitcoin", "name": "Bitcoin", "symbol": "BTC", "last_updated": '
        f'"2026-11-24T11:00:00Z", "quotes": {{"USD": {{"price": {price}}}}}}}]'
    ).encode()


def extract_serving(raw_root: Path, source: str, body: bytes) -> list[str]:
    """Extract ``source`` (run ``run-1``) from a server that answers every request with ``body``."""
    api = API_SOURCES[source]
    settings = api.settings_type(api_key="secret", requests_per_minute=6000)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    http = api.open(settings, transport=transport)
    try:
        pages = list(api.pages(http, settings))
    finally:
        http.client.close()
    return [raw_zone.write_page(raw_root, "run-1", STARTED, page).relative for page in pages]


def test_a_retried_extract_adds_files_and_never_replaces_one(tmp_path: Path) -> None:
    first = extract_serving(tmp_path, "coinpaprika", tickers(97000.5))
    retry = extract_serving(tmp_path, "coinpaprika", tickers(97111.5))
    assert first != retry
    assert (tmp_path / first[0]).exists()
    kept = raw_zone.read_raw(tmp_path, first + retry)["record"].to_list()
    assert any("97000.5" in r for r in kept)
    assert any("97111.5" in r for r in kept)
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"


def test_the_envelope_and_lineage_are_kept_with_every_record(tmp_path: Path) -> None:
    body = b'{"data": [{"id": "bitcoin", "priceUsd": "1.50"}], "timestamp": 1764000000000}'
    files = extract_serving(tmp_path, "coincap", body)
    row = raw_zone.read_raw(tmp_path, files).row(0, named=True)
    assert row["record"] == '{"id": "bitcoin", "priceUsd": "1.50"}'
    assert row["envelope"] == '{"data": [], "timestamp": 1764000000000}'
    assert row["request_url"] == "https://rest.coincap.io/v3/assets?limit=100&offset=0"
    assert row["http_status"] == 200
    assert row["fetched_at"].tzinfo is not None
    assert files[0].startswith("source=coincap/date=2026-11-24/run=run-1/assets-page-0001")


def test_an_unloadable_csv_file_is_kept_and_the_others_still_load(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a_good.csv").write_text(
        "asset_id,symbol,name,observed_at,price_usd\nbtc,BTC,Bitcoin,2026-11-20,97000.5\n"
    )
    (inbox / "b_export.csv").write_text("Date,Coin,Price\n2026-11-20,BTC,97000.5\n")
    raw_root = tmp_path / "raw"
    extracted = extract_csv(inbox, raw_root=raw_root, run_id="run-1", started_at=STARTED)
    assert len(extracted.raw_files) == 1
    assert "a_good" in extracted.raw_files[0]
    assert len(extracted.problems) == 1
    assert "b_export.csv: unrecognised header" in extracted.problems[0]
    assert set(extracted.checkpoints) == {"file:a_good.csv"}
    kept = sorted(p.name for p in raw_root.rglob("*.parquet"))
    assert len(kept) == 2, "the unloadable file is in the raw zone too"
    bad = raw_zone.read_raw(
        raw_root, [str(p.relative_to(raw_root)) for p in raw_root.rglob("csv-b_export*")]
    )
    assert bad["record"].to_list() == ["2026-11-20,BTC,97000.5"]
    assert bad["endpoint"].to_list() == ["unreadable"]


def test_a_csv_link_to_nothing_fails_the_source_rather_than_loading_nothing(
    tmp_path: Path,
) -> None:
    # A delivery whose file went missing used to load as a success with no rows.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a_gone.csv").symlink_to(tmp_path / "elsewhere" / "a.csv")
    (inbox / "b_folder.csv").mkdir()
    (inbox / "c_good.csv").write_text(
        "asset_id,symbol,name,observed_at,price_usd\nbtc,BTC,Bitcoin,2026-11-20,97000.5\n"
    )
    extracted = extract_csv(inbox, raw_root=tmp_path / "raw", run_id="run-1", started_at=STARTED)
    assert extracted.problems == [
        f"a_gone.csv: a symbolic link to {tmp_path / 'elsewhere' / 'a.csv'}, which does not "
        "exist; restore the file it names, or remove the link",
        "b_folder.csv: not a file; move it out of inbox/",
    ]
    assert set(extracted.checkpoints) == {"file:c_good.csv"}, "the readable file still loads"
