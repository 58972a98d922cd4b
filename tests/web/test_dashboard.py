"""The dashboard at ``/`` in headless Chromium, over a snapshot of two runs of the demo recording.

The second run's capture (tests/web/conftest.py's, an hour later) is altered so that every
state the page shows occurs: CoinPaprika's Bitcoin 10% above the others (``deviates``),
CoinGecko's Solana a day and an hour ahead of the other sources (their Solana ``stale``), and a
new coin whose name is markup (the page must show it as text).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from flows.resolution import read_overrides
from tests.conftest import DEMO_DIR, REPO
from tests.helpers import ingest_without_prefect
from tests.web.conftest import NEW_TICKER, _second_capture
from web.app import create_app
from web.settings import WebSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MARKUP_NAME = '<img src="/xss-probe" onerror="window.__xss = 1">Evil <b>Coin</b>'
SCREENSHOT_COPY = REPO / "docs" / "dashboard.png"
"""Refreshed when KASPARRO_UPDATE_SCREENSHOT=1 (the README shows it); tests never write it else."""

pytestmark = pytest.mark.slow


def _altered_capture(tmp: Path) -> Path:
    replay = _second_capture(tmp)
    tickers_path = replay / "coinpaprika" / "tickers.json"
    tickers = json.loads(tickers_path.read_text())
    for ticker in tickers:
        if ticker["id"] == "btc-bitcoin":
            ticker["last_updated"] = "2026-11-24T13:00:00Z"
            ticker["quotes"]["USD"]["price"] *= 1.10
    evil = {**NEW_TICKER, "id": "evil-evil-coin", "symbol": "EVIL", "name": MARKUP_NAME}
    tickers_path.write_text(json.dumps([*tickers, evil]))
    markets_path = replay / "coingecko" / "coins_markets" / "page-0001.json"
    markets = json.loads(markets_path.read_text())
    for market in markets:
        if market["id"] == "solana":
            market["last_updated"] = "2026-11-25T13:00:00.000Z"
    markets_path.write_text(json.dumps(markets))
    return replay


@pytest.fixture(scope="module")
def serving_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dashboard")
    data_dir = tmp / "data"
    overrides = read_overrides(REPO / "data" / "asset_overrides.csv")
    ingest_without_prefect(
        DEMO_DIR, data_dir, run_id="20261124T120000Z-base00", overrides=overrides
    )
    # Daily history of the default coins from the APIs that have it, as `ingest --history`.
    ingest_without_prefect(
        DEMO_DIR,
        data_dir,
        run_id="20261124T120500Z-hist00",
        sources=("coingecko", "coinpaprika"),
        overrides=overrides,
        history=True,
    )
    ingest_without_prefect(
        _altered_capture(tmp), data_dir, run_id="20261124T130000Z-head00", overrides=overrides
    )
    return data_dir / "serving.duckdb"


@pytest.fixture(scope="module")
def base_url(serving_path: Path) -> Iterator[str]:
    """The app under uvicorn on a free loopback port (bound here, so no other process races
    for it), in a thread of this process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(WebSettings(), snapshot_path=serving_path)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "uvicorn did not start within 10 s"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class PageLog:
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    page: Any
    log: PageLog
    screenshot: Path


@pytest.fixture(scope="module")
def dashboard(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    if not CHROMIUM.exists():
        pytest.fail(
            "no /usr/bin/chromium: install it with "
            "`apt-get install -y --no-install-recommends chromium` (.ci/run does)"
        )
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (slow import, this test only)

    tmp = tmp_path_factory.mktemp("chromium")
    log = PageLog()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=tmp / "profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 1000},
            timezone_id="UTC",
        )
        page = context.new_page()
        page.on("console", lambda m: log.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: log.page_errors.append(str(e)))
        page.on("request", lambda r: log.requests.append(r.url))
        page.on("requestfailed", lambda r: log.failed.append(f"{r.url}: {r.failure}"))
        page.on(
            "response",
            lambda r: log.failed.append(f"{r.url}: {r.status}") if r.status >= 400 else None,
        )
        page.goto(f"{base_url}/")
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        screenshot = tmp / "dashboard.png"
        page.screenshot(path=screenshot, full_page=True)
        if os.environ.get("KASPARRO_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(screenshot, SCREENSHOT_COPY)
        yield Loaded(page, log, screenshot)
        context.close()


def _api(base_url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base_url}{path}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def test_loads_without_errors_and_stays_on_loopback(dashboard: Loaded, base_url: str) -> None:
    assert dashboard.log.console == []
    assert dashboard.log.page_errors == []
    assert dashboard.log.failed == []
    assert dashboard.log.requests, "the page made no request"
    assert all(url.startswith(f"{base_url}/") for url in dashboard.log.requests), [
        url for url in dashboard.log.requests if not url.startswith(f"{base_url}/")
    ]
    # The vendored chart library and the API were both used.
    assert f"{base_url}/dashboard/vendor/uplot/uPlot.esm.js" in dashboard.log.requests
    assert any("/api/v1/prices" in url for url in dashboard.log.requests)
    assert dashboard.screenshot.stat().st_size > 50_000


def test_price_rows_show_the_api_numbers_and_flags(dashboard: Loaded, base_url: str) -> None:
    api = _api(base_url, "/api/v1/prices", limit=1000)
    rows = dashboard.page.evaluate(
        """() => [...document.querySelectorAll('#prices tbody tr')].map((tr) => ({
            coin_id: tr.dataset.coinId,
            consensus: tr.querySelector('.consensus').textContent,
            spread: tr.querySelector('.spread').dataset.value,
            chips: [...tr.querySelectorAll('.chip')].map((c) => [
                c.dataset.source, c.dataset.deviates === 'true', c.dataset.stale === 'true',
                c.classList.contains('deviates'), c.classList.contains('stale')]),
        }))"""
    )
    assert len(rows) == api["total"] == len(api["items"])
    for row, item in zip(rows, api["items"], strict=True):
        assert row["coin_id"] == item["coin_id"]
        assert row["consensus"].replace(",", "") == item["consensus_price_usd"]
        assert (float(row["spread"]) if row["spread"] else None) == item["spread"]
        expected = [[p["source"], p["deviates"], p["stale"]] for p in item["prices"]]
        assert [chip[:3] for chip in row["chips"]] == expected
        # The flag is visible, not only in a data attribute.
        assert all(chip[1] == chip[3] and chip[2] == chip[4] for chip in row["chips"])
    flags = {
        (row["coin_id"], chip[0]): chip[1:3]
        for row in rows
        for chip in row["chips"]
        if chip[1] or chip[2]
    }
    assert flags == {
        ("btc-bitcoin", "coinpaprika"): [True, False],
        ("sol-solana", "coinpaprika"): [False, True],
    }


def test_third_party_names_are_text(dashboard: Loaded, base_url: str) -> None:
    page = dashboard.page
    (coin,) = _api(base_url, "/api/v1/coins", symbol="EVIL")["items"]
    assert coin["name"] == MARKUP_NAME
    row = page.locator(f'#prices tbody tr[data-coin-id="{coin["coin_id"]}"]')
    assert MARKUP_NAME in row.inner_text()
    assert row.locator("img, b").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert not any("xss-probe" in url for url in dashboard.log.requests)


def test_chart_draws_one_line_per_source(dashboard: Loaded, base_url: str) -> None:
    page = dashboard.page
    quotes = []
    cursor = None
    while True:
        body = _api(
            base_url,
            "/api/v1/data",
            coin_id="btc-bitcoin",
            limit=1000,
            **({"cursor": cursor} if cursor else {}),
        )
        quotes += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    chart = page.locator("#chart")
    assert chart.get_attribute("data-coin-id") == "btc-bitcoin"
    assert chart.get_attribute("data-points") == str(len(quotes))
    sources = sorted({q["source"] for q in quotes})
    assert len(sources) == 4  # three APIs' snapshots and history, the CSV's history
    legend = page.locator("#chart .u-legend .u-series th").all_inner_texts()
    assert [label.strip() for label in legend[1:]] == sources
    # Each source's line is on the canvas: with the other sources hidden through the legend (as
    # a user would click them), pixels of its colour (its legend marker's) are drawn.
    drawn = page.evaluate(
        """async (sources) => {
            const frame = () => new Promise((done) => requestAnimationFrame(() => done()));
            const canvas = document.querySelector('#chart canvas');
            const rows = [...document.querySelectorAll('#chart .u-legend .u-series')].slice(1);
            const counts = {};
            for (const [i, source] of sources.entries()) {
                const others = rows.filter((_, j) => j !== i);
                others.forEach((row) => row.click());
                await frame(); await frame();
                const [r, g, b] = rows[i].querySelector('.u-marker').style.borderColor
                    .match(/\\d+/g).map(Number);
                // Read through a copy made for reading (reading the chart's own canvas back
                // several times makes Chromium warn on the console).
                const copy = document.createElement('canvas');
                copy.width = canvas.width;
                copy.height = canvas.height;
                const context = copy.getContext('2d', { willReadFrequently: true });
                context.drawImage(canvas, 0, 0);
                const pixels = context.getImageData(0, 0, copy.width, copy.height).data;
                let count = 0;
                for (let p = 0; p < pixels.length; p += 4) {
                    const off = Math.abs(pixels[p] - r) + Math.abs(pixels[p + 1] - g)
                        + Math.abs(pixels[p + 2] - b);
                    if (off < 24 && pixels[p + 3] > 200) count += 1;
                }
                counts[source] = count;
                others.forEach((row) => row.click());
                await frame(); await frame();
            }
            return { width: canvas.width, height: canvas.height, counts };
        }""",
        sources,
    )
    assert drawn["width"] > 300
    assert drawn["height"] > 200
    assert all(count > 8 for count in drawn["counts"].values()), drawn["counts"]


def test_picking_a_coin_redraws_the_chart(dashboard: Loaded) -> None:
    page = dashboard.page
    page.locator('#prices tbody tr[data-coin-id="eth-ethereum"]').click()
    page.wait_for_selector('#chart[data-coin-id="eth-ethereum"]')
    assert page.locator("#chart canvas").count() == 1
    assert page.locator("#chart-title").inner_text().startswith("ETH")
    assert dashboard.log.console == []


def test_runs_comparison_and_review_queue(dashboard: Loaded, base_url: str) -> None:
    page = dashboard.page
    runs = _api(base_url, "/api/v1/runs")["items"]
    shown = page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert shown == [run["run_id"] for run in runs]
    # By default the newest run against the previous one of its mode (not the history run).
    base = page.locator("#compare-base").input_value()
    head = page.locator("#compare-head").input_value()
    assert (base, head) == ("20261124T120000Z-base00", "20261124T130000Z-head00")
    compared = _api(base_url, "/api/v1/runs/compare", base=base, head=head, top=5)
    stats = page.locator("#compare .stat-value").all_inner_texts()
    assert stats[:2] == [str(len(compared["coins_added"])), str(len(compared["coins_removed"]))]
    median = compared["price_change_distribution"]["p50"]
    assert abs(float(stats[2].rstrip("%")) - median) < 0.005
    assert stats[3] == str(len(compared["anomalies"]))
    assert page.locator("#compare table tbody tr").count() == len(compared["sources"])
    review = _api(base_url, "/api/v1/resolution/review", limit=200)
    assert review["total"] > 0
    assert page.locator("#review tbody tr").count() == len(review["items"])
    assert page.locator("#review-meta").inner_text() == f"{review['total']} waiting"
