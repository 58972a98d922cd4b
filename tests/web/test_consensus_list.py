"""GET /api/v1/prices: every listed coin's consensus in one request, equal coin by coin to
GET /api/v1/coins/{coin_id}/prices, largest market cap first; and the dashboard's files."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from store.connection import open_read_only
from tests.web.conftest import Published

Client = TestClient[Litestar]


def get_json(client: Client, url: str, **params: Any) -> Any:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_coin_equals_its_own_prices_endpoint(client: Client) -> None:
    page = get_json(client, "/api/v1/prices", limit=1000)
    assert page["total"] == len(page["items"]) > 300
    # The first coins, and every tenth after them (each /prices call costs ~20 ms).
    for item in page["items"][:10] + page["items"][10::10]:
        one = get_json(client, f"/api/v1/coins/{item['coin_id']}/prices")
        assert {k: v for k, v in item.items() if k != "market_cap_usd"} == one
        assert item["sources"] >= 1
    assert {i["sources"] for i in page["items"]} == {1, 2, 3}


def test_ordered_by_the_largest_latest_market_cap(client: Client, published: Published) -> None:
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        rows = con.execute(
            """
            select l.coin_id, max(q.market_cap_usd)
            from coin_prices_latest as l
            join quotes as q using (coin_id, source, observed_at)
            group by l.coin_id
            """
        ).fetchall()
    finally:
        con.close()
    caps: dict[str, Decimal | None] = dict(rows)
    items = get_json(client, "/api/v1/prices", limit=1000)["items"]
    assert [i["coin_id"] for i in items] == sorted(
        caps, key=lambda c: (caps[c] is None, -(caps[c] or 0), c)
    )
    for item in items:
        stated = caps[item["coin_id"]]
        assert (Decimal(item["market_cap_usd"]) if item["market_cap_usd"] else None) == stated


def test_pages_cover_the_list_once(client: Client) -> None:
    whole = get_json(client, "/api/v1/prices", limit=1000)
    pages = [get_json(client, "/api/v1/prices", limit=100, offset=o) for o in range(0, 400, 100)]
    assert [i["coin_id"] for p in pages for i in p["items"]] == [
        i["coin_id"] for i in whole["items"]
    ]
    assert {p["total"] for p in pages} == {whole["total"]}


def test_the_dashboard_and_its_assets_are_served(client: Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    for asset in ("/dashboard/app.js", "/dashboard/vendor/uplot/uPlot.esm.js"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert "javascript" in response.headers["content-type"]
    assert client.get("/dashboard/nope.js").status_code == 404
    schema = get_json(client, "/schema/openapi.json")
    assert "/api/v1/prices" in schema["paths"]
    assert "/" not in schema["paths"]
