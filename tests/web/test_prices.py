"""GET /api/v1/coins/{coin_id}/prices over the demo data: the consensus of the sources' latest
snapshot prices, checked against the quotes table; unknown coins are a 404."""

from __future__ import annotations

import shutil
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from store.connection import open_read_only
from tests.web.conftest import Published
from web.app import create_app
from web.settings import WebSettings

Client = TestClient[Litestar]


def get_json(client: Client, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def latest_snapshots(published: Published, coin_id: str) -> dict[str, tuple[datetime, Decimal]]:
    """Per source, its newest snapshot quote of the coin, read straight from quotes."""
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        rows = con.execute(
            "select source, observed_at, price_usd from quotes "
            "where coin_id = ? and kind = 'snapshot'",
            [coin_id],
        ).fetchall()
    finally:
        con.close()
    latest: dict[str, tuple[datetime, Decimal]] = {}
    for source, observed_at, price in rows:
        if source not in latest or observed_at > latest[source][0]:
            latest[source] = (observed_at, price)
    return latest


def exact_median(prices: list[Decimal]) -> Decimal:
    ordered = sorted(prices)
    middle = len(ordered) // 2
    with localcontext() as ctx:
        ctx.prec = 80
        median = (
            ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        )
        return median.quantize(Decimal("1e-18"), rounding=ROUND_HALF_UP)


def test_bitcoin_consensus_is_the_median_of_each_sources_latest_snapshot(
    client: Client, published: Published
) -> None:
    latest = latest_snapshots(published, "btc-bitcoin")
    assert len(latest) >= 3, latest
    body = get_json(client, "/api/v1/coins/btc-bitcoin/prices")

    assert body["coin_id"] == "btc-bitcoin"
    assert body["symbol"].lower() == "btc"
    assert body["sources"] == len(latest)
    median = exact_median([price for _, price in latest.values()])
    assert Decimal(body["consensus_price_usd"]) == median
    newest = max(at for at, _ in latest.values())
    assert datetime.fromisoformat(body["newest_observed_at"]) == newest
    prices = [price for _, price in latest.values()]
    assert body["spread"] == pytest.approx(float((max(prices) - min(prices)) / median), rel=1e-12)

    assert [p["source"] for p in body["prices"]] == sorted(latest)
    for entry in body["prices"]:
        observed_at, price = latest[entry["source"]]
        assert Decimal(entry["price_usd"]) == price
        assert datetime.fromisoformat(entry["observed_at"]) == observed_at
        deviation = (price - median) / median
        assert entry["deviation"] == pytest.approx(float(deviation), rel=1e-12, abs=1e-15)
        assert entry["deviates"] is (abs(deviation) > Decimal("0.05"))
        assert entry["stale"] is False
    # The csv source delivers daily history only: it never takes part.
    assert "csv" not in latest


def test_the_thresholds_are_in_the_response(client: Client) -> None:
    body = get_json(client, "/api/v1/coins/btc-bitcoin/prices")
    assert body["deviation_threshold"] == 0.05
    assert body["stale_after_seconds"] == 24 * 3600


def test_a_coin_with_history_only_has_no_consensus(client: Client, published: Published) -> None:
    con = open_read_only(published.data_dir / "serving.duckdb")
    try:
        (coin_id,) = con.execute(
            "select coin_id from coins where coin_id not in "
            "(select coin_id from quotes where kind = 'snapshot') order by coin_id limit 1"
        ).fetchall()[0]
    finally:
        con.close()
    body = get_json(client, f"/api/v1/coins/{coin_id}/prices")
    assert body["sources"] == 0
    assert body["consensus_price_usd"] is None
    assert body["prices"] == []


def test_an_unknown_coin_is_a_404_pointing_at_the_coin_list(client: Client) -> None:
    body = get_json(client, "/api/v1/coins/no-such-coin/prices", status=404)
    assert "no coin 'no-such-coin'" in body["detail"]
    assert "/api/v1/coins" in body["detail"]


def test_a_snapshot_from_before_the_view_is_a_503_saying_what_to_run(
    published: Published, tmp_path: Path
) -> None:
    old = tmp_path / "serving.duckdb"
    shutil.copyfile(published.data_dir / "serving.duckdb", old)
    with duckdb.connect(str(old)) as con:
        con.execute("drop view coin_prices_latest")
    app = create_app(WebSettings(), snapshot_path=old)
    with TestClient(app=app) as old_client:
        body = get_json(old_client, "/api/v1/coins/btc-bitcoin/prices", status=503)
    assert "kasparro ingest" in body["detail"]
