"""/api/v1/data: parameter domains, bounded work, ETags and the cache, CSV and Parquet exports."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from litestar.testing import TestClient

from store import quote_pages
from store.connection import open_read_only, read_only_cursor
from tests.web.conftest import Published
from web.app import create_app
from web.controllers import data
from web.settings import WebSettings
from web.versioned import RESPONSES

Client = TestClient  # type: ignore[type-arg]
FILTERS = "coin_id=btc-bitcoin&limit=1000"


def get_json(client: Client, url: str, status: int = 200, **headers: str) -> Any:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def own_snapshot(published: Published, tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """A client over a copy of the published snapshot that the test may republish."""
    serving = tmp_path / "serving.duckdb"
    shutil.copyfile(published.data_dir / "serving.duckdb", serving)
    with TestClient(app=create_app(WebSettings(), snapshot_path=serving)) as client:
        yield client, serving


def republish(serving: Path) -> None:
    """The same data published again: a new file renamed over the old one."""
    fresh = serving.with_name("fresh.duckdb")
    shutil.copyfile(serving, fresh)
    os.replace(fresh, serving)


@pytest.mark.parametrize("source", ["nope", "CSV", "coin gecko"])
def test_an_unknown_source_is_a_400_listing_the_sources(client: Client, source: str) -> None:
    body = get_json(client, f"/api/v1/data?source={source}", status=400)
    assert repr(source) in body["detail"]
    assert "coingecko, coinpaprika, coincap, csv" in body["detail"]


def test_a_known_source_still_filters(client: Client) -> None:
    items = get_json(client, "/api/v1/data?source=csv&limit=50")["items"]
    assert items
    assert {q["source"] for q in items} == {"csv"}


def test_a_date_alone_means_its_utc_midnight(client: Client) -> None:
    base = "/api/v1/data?coin_id=btc-bitcoin&source=csv&limit=1000"
    dated = get_json(client, f"{base}&start=2026-11-01&end=2026-11-10")
    timed = get_json(client, f"{base}&start=2026-11-01T00:00:00Z&end=2026-11-10T00:00:00Z")
    assert dated["items"], "the demo CSV holds daily BTC history in early November"
    assert dated == timed


def test_a_malformed_date_is_a_400_naming_the_parameter(client: Client) -> None:
    body = get_json(client, "/api/v1/data?end=2026-13-01", status=400)
    assert "end=" in body["detail"]


def test_coin_ids_and_symbols_match_in_any_case(client: Client) -> None:
    lower = get_json(client, "/api/v1/data?coin_id=btc-bitcoin&limit=50")
    assert lower["items"]
    assert get_json(client, "/api/v1/data?coin_id=BTC-Bitcoin&limit=50") == lower
    assert get_json(client, "/api/v1/data?symbol=btc&limit=50") == get_json(
        client, "/api/v1/data?symbol=BTC&limit=50"
    )


def test_a_deep_offset_is_refused_naming_the_cursor(client: Client) -> None:
    body = get_json(client, f"/api/v1/data?offset={data.MAX_OFFSET + 1}", status=400)
    assert "cursor" in body["detail"]
    assert get_json(client, f"/api/v1/data?offset={data.MAX_OFFSET}&limit=1")["limit"] == 1


def test_a_json_page_above_the_limit_is_refused_naming_the_cursor(client: Client) -> None:
    body = get_json(client, "/api/v1/data?limit=1001", status=400)
    assert "cursor" in body["detail"]


def test_a_repeated_request_gets_304_for_its_etag_until_the_next_publish(
    own_snapshot: tuple[Client, Path],
) -> None:
    client, serving = own_snapshot
    first = client.get(f"/api/v1/data?{FILTERS}")
    etag = first.headers["etag"]
    again = client.get(f"/api/v1/data?{FILTERS}", headers={"if-none-match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = client.get("/api/v1/data?coin_id=eth-ethereum", headers={"if-none-match": etag})
    assert other.status_code == 200, "another request has another ETag"
    as_csv = client.get(
        f"/api/v1/data?{FILTERS}", headers={"if-none-match": etag, "accept": "text/csv"}
    )
    assert as_csv.status_code == 200, "the CSV body has its own ETag"

    republish(serving)
    after = client.get(f"/api/v1/data?{FILTERS}", headers={"if-none-match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert after.json() == first.json()


def test_a_kept_response_is_the_one_computed(own_snapshot: tuple[Client, Path]) -> None:
    client, _ = own_snapshot
    RESPONSES.put((0, 0, 0), "unrelated", b"{}", "application/json")  # another version's entry
    computed = client.get(f"/api/v1/data?{FILTERS}")
    kept = client.get(f"/api/v1/data?{FILTERS}")
    assert kept.content == computed.content
    assert kept.headers["etag"] == computed.headers["etag"]
    assert (computed.headers["cache-control"], computed.headers["vary"]) == ("no-cache", "accept")


def test_a_snapshot_republished_with_other_data_is_not_answered_from_the_cache(
    own_snapshot: tuple[Client, Path], tmp_path: Path
) -> None:
    client, serving = own_snapshot
    before = get_json(client, "/api/v1/data?limit=5")
    with_fewer = tmp_path / "fewer.duckdb"
    shutil.copyfile(serving, with_fewer)
    con = duckdb.connect(str(with_fewer))
    newest = con.execute("select max(observed_at) from quotes").fetchall()[0][0]
    con.execute("delete from quotes where observed_at = ?", [newest])
    con.execute("checkpoint")
    con.close()
    os.replace(with_fewer, serving)
    after = get_json(client, "/api/v1/data?limit=5")
    assert after["items"] != before["items"]


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _same(json_item: dict[str, Any], exported: dict[str, Any]) -> None:
    for field, value in json_item.items():
        got = exported[field]
        if field == "observed_at":
            assert datetime.fromisoformat(str(got)) == datetime.fromisoformat(value)
        elif value is None:
            assert got in ("", None), field
        elif isinstance(value, float):
            assert float(got) == value, field
        else:
            assert str(got) == str(value), field


@pytest.mark.parametrize(
    "query",
    [FILTERS, "limit=300", "symbol=eth&sort=observed_at&limit=20", "source=csv&start=2026-11-02"],
)
def test_a_csv_export_holds_the_json_page(client: Client, query: str) -> None:
    page = get_json(client, f"/api/v1/data?{query}")
    exported = client.get(f"/api/v1/data?{query}", headers={"accept": "text/csv"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = _csv_rows(exported.text)
    assert len(rows) == len(page["items"])
    for item, row in zip(page["items"], rows, strict=True):
        _same(item, row)
    assert exported.headers.get(data.NEXT_CURSOR_HEADER) == page["next_cursor"]
    assert client.get(f"/api/v1/data?{query}&format=csv").content == exported.content


def test_a_parquet_export_holds_the_json_page(client: Client) -> None:
    page = get_json(client, "/api/v1/data?limit=300")
    exported = client.get("/api/v1/data?limit=300&format=parquet")
    assert exported.status_code == 200
    table = pq.read_table(io.BytesIO(exported.content))
    assert table.num_rows == len(page["items"])
    for item, row in zip(page["items"], table.to_pylist(), strict=True):
        _same(item, row)


def test_an_export_may_exceed_a_json_page_and_continues_at_its_cursor(client: Client) -> None:
    everything = _csv_rows(client.get("/api/v1/data?limit=100000&format=csv").text)
    first = client.get("/api/v1/data?limit=1500&format=csv")
    rest = client.get(
        f"/api/v1/data?limit=100000&format=csv&cursor={first.headers[data.NEXT_CURSOR_HEADER]}"
    )
    assert _csv_rows(first.text) + _csv_rows(rest.text) == everything
    assert data.NEXT_CURSOR_HEADER not in rest.headers


def test_an_empty_export_is_a_header_row(client: Client) -> None:
    exported = client.get("/api/v1/data?coin_id=no-such-coin&format=csv")
    assert exported.text.splitlines()[0].startswith('"coin_id","source"')
    assert _csv_rows(exported.text) == []


class Counted:
    """A batch reader that records the size of each batch taken from it."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.schema = reader.schema
        self.reader = reader
        self.sizes: list[int] = []

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.reader:
            self.sizes.append(batch.num_rows)
            yield batch


def test_an_export_is_read_rendered_and_sent_a_batch_at_a_time(published: Published) -> None:
    """Memory holds one batch: the stream yields a chunk per batch of at most batch_rows rows."""
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        total = int(con.execute("select count(*) from quotes").fetchall()[0][0])
        for render in (data._csv_chunks, data._parquet_chunks):
            stream = quote_pages.stream_page(
                read_only_cursor(con), quote_pages.QuoteFilter(), limit=total, offset=0,
                batch_rows=100,
            )  # fmt: skip
            reader = Counted(stream.reader)
            chunks = sum(1 for _ in render(reader))  # type: ignore[arg-type]
            assert sum(reader.sizes) == total
            assert max(reader.sizes) <= 100
            assert chunks >= total // 100
    finally:
        con.close()


def test_a_coin_is_found_in_any_case_and_revalidates_by_etag(client: Client) -> None:
    for path in ("/api/v1/coins/{}", "/api/v1/coins/{}/prices"):
        exact = client.get(path.format("btc-bitcoin"))
        assert client.get(path.format("BTC-Bitcoin")).json() == exact.json()
        again = client.get(
            path.format("btc-bitcoin"), headers={"if-none-match": exact.headers["etag"]}
        )
        assert again.status_code == 304


def test_the_openapi_document_lists_the_export_bodies(client: Client) -> None:
    operation = client.get("/schema/openapi.json").json()["paths"]["/api/v1/data"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
    }
    assert "304" in operation["responses"]
    assert {p["name"] for p in operation["parameters"]} >= {"format", "cursor", "source"}
