"""API contract: typed bodies, filters and paging, JSON errors, request ids, run comparisons."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from litestar.testing import TestClient

from store.connection import open_read_only
from tests.web.conftest import NEW_TICKER, Published
from web.app import create_app
from web.settings import WebSettings

Client = TestClient  # type: ignore[type-arg]


def get_json(client: Client, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def snapshot_scalar(published: Published, sql: str) -> Any:
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


def test_health_reports_the_snapshot_and_the_last_run(client: Client, published: Published) -> None:
    body = get_json(client, "/health")
    assert body["snapshot"]["reachable"] is True
    assert body["last_run"]["run_id"] == published.head_run
    assert body["last_run"]["status"] == "completed"
    # The demo's runs finished seconds ago, so they are fresh: ok.
    assert body["status"] == "ok", body


def test_health_is_503_without_a_snapshot(tmp_path: Path) -> None:
    app = create_app(WebSettings(), snapshot_path=tmp_path / "serving.duckdb")
    with TestClient(app=app) as fresh:
        response = fresh.get("/health")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        data = fresh.get("/api/v1/data")
        assert data.status_code == 503
        assert "kasparro ingest" in data.json()["detail"]


def test_every_response_carries_a_request_id_and_its_latency(client: Client) -> None:
    for url in ("/ping", "/api/v1/coins?limit=1", "/api/v1/coins/no-such-coin", "/no/such/route"):
        response = client.get(url)
        assert len(response.headers["x-request-id"]) >= 16
        assert response.headers["server-timing"].startswith("app;dur=")
        assert float(response.headers["x-response-time-ms"]) >= 0
    echoed = client.get("/ping", headers={"x-request-id": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    hostile = client.get("/ping", headers={"x-request-id": "bad id\r\nx: y"})
    assert hostile.headers["x-request-id"] != "bad id\r\nx: y"


def test_unmatched_routes_and_methods_get_json_errors_with_a_request_id(client: Client) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    wrong_method = client.post("/api/v1/coins")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["request_id"] == wrong_method.headers["x-request-id"]


@pytest.mark.parametrize("url", ["/api/v1/coins", "/api/v1/runs", "/api/v1/data"])
def test_an_absurd_offset_is_a_400_not_a_500(client: Client, url: str) -> None:
    body = get_json(client, f"{url}?offset=99999999999999999999", status=400)
    assert "offset" in str(body["errors"])


def test_coins_sharing_a_symbol_are_listed_apart(client: Client) -> None:
    body = get_json(client, "/api/v1/coins?symbol=uni")
    names = sorted(c["name"] for c in body["items"])
    assert body["total"] == len(body["items"]) >= 2
    assert "Uniswap" in names
    assert len({c["coin_id"] for c in body["items"]}) == len(names)


def test_a_coin_lists_every_source_id_with_how_it_was_decided(client: Client) -> None:
    body = get_json(client, "/api/v1/coins/btc-bitcoin")
    by_source = {s["source"]: s for s in body["source_ids"]}
    assert set(by_source) == {"coingecko", "coinpaprika", "coincap", "csv"}
    assert by_source["coinpaprika"]["source_asset_id"] == "btc-bitcoin"
    paprika = by_source["coinpaprika"]
    assert (paprika["method"], paprika["confidence"] >= 0.9) == ("symbol_name_market", True)
    assert paprika["evidence"]["price_difference"] < 0.05  # the market agreed
    assert by_source["coingecko"]["method"] == "new"
    assert by_source["coingecko"]["evidence"]["match_key"] == "btc\x1fbitcoin"


def test_an_override_links_renamed_assets(client: Client) -> None:
    body = get_json(client, "/api/v1/coins/bnb-bnb")
    methods = {s["source"]: s["method"] for s in body["source_ids"]}
    assert methods["coinpaprika"] == "override"
    assert set(methods) >= {"coingecko", "coinpaprika", "coincap"}


def test_an_unknown_coin_is_a_json_404(client: Client) -> None:
    body = get_json(client, "/api/v1/coins/no-such-coin", status=404)
    assert body["status"] == 404
    assert "no-such-coin" in body["detail"]
    assert body["request_id"]


def test_quotes_filter_by_coin_source_and_time(client: Client) -> None:
    body = get_json(client, "/api/v1/data?coin_id=btc-bitcoin&limit=1000")
    assert {q["source"] for q in body["items"]} == {"coingecko", "coinpaprika", "coincap", "csv"}
    assert {q["coin_id"] for q in body["items"]} == {"btc-bitcoin"}
    only_csv = get_json(
        client,
        "/api/v1/data?coin_id=btc-bitcoin&source=csv&start=2026-11-01T00:00:00Z"
        "&end=2026-11-10T00:00:00Z&limit=1000",
    )
    times = [datetime.fromisoformat(q["observed_at"]) for q in only_csv["items"]]
    assert times, "the demo CSV holds daily BTC history in early November"
    assert all(t.isoformat() >= "2026-11-01" and t.isoformat() < "2026-11-10" for t in times)
    assert times == sorted(times, reverse=True), "newest first by default"


def test_symbol_filter_returns_only_that_symbols_coins(client: Client) -> None:
    body = get_json(client, "/api/v1/data?symbol=ETH&limit=1000")
    assert body["items"]
    assert {q["coin_id"] for q in body["items"]} == {"eth-ethereum"}


def test_cursor_paging_walks_every_quote_exactly_once(client: Client, published: Published) -> None:
    total = snapshot_scalar(published, "select count(*) from quotes")
    seen: list[tuple[datetime, str, str]] = []
    url = "/api/v1/data?limit=173&sort=observed_at"
    while True:
        page = get_json(client, url)
        seen += [
            (datetime.fromisoformat(q["observed_at"]), q["coin_id"], q["source"])
            for q in page["items"]
        ]
        if page["next_cursor"] is None:
            break
        url = f"/api/v1/data?limit=173&sort=observed_at&cursor={page['next_cursor']}"
    assert len(seen) == total
    assert len(set(seen)) == total
    assert seen == sorted(seen)


def test_money_is_exact_decimal_text(client: Client, published: Published) -> None:
    tiny = snapshot_scalar(
        published, "select coin_id from quotes where price_usd = 0.000000001258 limit 1"
    )
    body = get_json(client, f"/api/v1/data?coin_id={tiny}&limit=1000")
    assert "0.000000001258" in {q["price_usd"] for q in body["items"]}
    coincap = get_json(client, "/api/v1/data?coin_id=btc-bitcoin&source=coincap")["items"][0]
    assert len(coincap["price_usd"].split(".")[1]) > 10, "CoinCap's digits are all kept"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("offset=-1", "offset"),
        ("sort=price", "sort"),
        ("start=yesterday", "start"),
        ("cursor=not-a-cursor", "cursor"),
        ("start=2026-11-10T00:00:00Z&end=2026-11-01T00:00:00Z", "start must be before end"),
        ("offset=5&cursor=abc", "either cursor or offset"),
    ],
)
def test_bad_input_is_a_json_400(client: Client, query: str, fragment: str) -> None:
    body = get_json(client, f"/api/v1/data?{query}", status=400)
    assert body["status"] == 400
    assert fragment in (body["detail"] + str(body.get("errors")))
    assert body["request_id"]


def test_a_cursor_is_bound_to_its_sort_order(client: Client) -> None:
    cursor = get_json(client, "/api/v1/data?limit=1")["next_cursor"]
    body = get_json(client, f"/api/v1/data?limit=1&sort=observed_at&cursor={cursor}", status=400)
    assert "sort" in body["detail"]


def test_stats_agree_with_the_tables(client: Client, published: Published) -> None:
    body = get_json(client, "/api/v1/stats")
    assert body["totals"]["quotes"] == snapshot_scalar(published, "select count(*) from quotes")
    assert body["totals"]["coins"] == snapshot_scalar(published, "select count(*) from coins")
    assert body["totals"]["runs"] == 2
    by_source = {s["source"]: s for s in body["sources"]}
    assert set(by_source) == {"coingecko", "coinpaprika", "coincap", "csv"}
    assert sum(s["quotes"] for s in by_source.values()) == body["totals"]["quotes"]
    assert by_source["coincap"]["quarantined"] >= 1, "the demo's 'n/a' price is held back"
    assert by_source["coingecko"]["last_success_at"] is not None


def test_runs_are_listed_newest_first_with_per_source_counts(
    client: Client, published: Published
) -> None:
    body = get_json(client, "/api/v1/runs")
    assert [r["run_id"] for r in body["items"]] == [published.head_run, published.base_run]
    base = get_json(client, f"/api/v1/runs/{published.base_run}")
    sources = {s["source"]: s for s in base["sources"]}
    assert sources["coingecko"]["inserted"] == sources["coingecko"]["valid"] > 200
    assert sources["coincap"]["quarantined"] >= 1
    get_json(client, "/api/v1/runs/no-such-run", status=404)


def test_comparing_two_runs_shows_counts_coins_and_movers(
    client: Client, published: Published
) -> None:
    body = get_json(
        client, f"/api/v1/runs/compare?base={published.base_run}&head={published.head_run}"
    )
    paprika = next(s for s in body["sources"] if s["source"] == "coinpaprika")
    assert paprika["delta"]["fetched"] == 1, "one new ticker"
    assert paprika["head"]["inserted"] == 2, "Ethereum's new observation and the new asset"
    gecko = next(s for s in body["sources"] if s["source"] == "coingecko")
    assert gecko["head"]["inserted"] == 1
    assert gecko["head"]["unchanged"] == gecko["head"]["valid"] - 1
    coincap = next(s for s in body["sources"] if s["source"] == "coincap")
    assert coincap["head"]["inserted"] == coincap["head"]["valid"] > 200
    assert [c["name"] for c in body["coins_added"]] == [NEW_TICKER["name"]]
    assert body["coins_removed"] == []
    assert body["top_movers"][0]["coin_id"] == "eth-ethereum"
    # The median over four sources (one a day-old CSV close) moves by about the 80% of three.
    assert body["top_movers"][0]["pct_change"] == pytest.approx(80.0, abs=2.0)
    assert [a["subject"] for a in body["anomalies"] if a["kind"] == "price_move"] == [
        "eth-ethereum"
    ]
    distribution = body["price_change_distribution"]
    assert distribution["compared"] > 250
    assert distribution["p50"] == 0.0
    assert sum(b["coins"] for b in body["price_change_buckets"]) == distribution["compared"]

    reverse = get_json(
        client, f"/api/v1/runs/compare?base={published.head_run}&head={published.base_run}"
    )
    assert [c["name"] for c in reverse["coins_removed"]] == [NEW_TICKER["name"]]


def test_comparing_with_an_unknown_run_is_a_404_naming_it(
    client: Client, published: Published
) -> None:
    body = get_json(client, f"/api/v1/runs/compare?base={published.base_run}&head=nope", status=404)
    assert "head run 'nope'" in body["detail"]


def test_the_openapi_document_names_every_operation(client: Client) -> None:
    spec = get_json(client, "/schema/openapi.json")
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert operations == {
        "ping",
        "health",
        "getStats",
        "listCoins",
        "getCoin",
        "listQuotes",
        "listRuns",
        "getRun",
        "compareRuns",
        "getCoinPrices",
        "listConsensusPrices",
        "listReviewCandidates",
        "listDecisions",
        "postDecision",
        "listDriftEvents",
        "acknowledgeDriftEvent",
        "listQualityFindings",
        "getMetrics",
        "getReadiness",
        "startRun",
        "getRunPrefectState",
    }
    assert client.get("/schema/swagger").status_code == 200


def test_a_snapshot_from_before_run_seen_is_a_503_saying_what_to_run(
    published: Published, tmp_path: Path
) -> None:
    """The web app may be upgraded before the next ingest migrates the warehouse: the ledger's
    pages then say what to do instead of failing on a missing table."""
    old = tmp_path / "serving.duckdb"
    shutil.copyfile(published.data_dir / "serving.duckdb", old)
    with duckdb.connect(str(old)) as con:
        con.execute("drop table run_seen")
        con.execute("alter table run_sources drop column repeat_of")
    app = create_app(WebSettings(), snapshot_path=old)
    with TestClient(app=app) as old_client:
        listed = get_json(old_client, "/api/v1/runs", status=503)
        compared = get_json(
            old_client,
            f"/api/v1/runs/compare?base={published.base_run}&head={published.head_run}",
            status=503,
        )
    for body in (listed, compared):
        assert "older version" in body["detail"]
        assert "kasparro ingest" in body["detail"]
