"""Pages served from the quote layout are the pages the snapshot gives; the app opens a layout
the writer builds after publishing, without a restart."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from store import quote_pages
from store.quote_layout import Manifest, QuoteLayout, layout_directory
from store.quote_layout_build import build_quote_layout
from tests.web.conftest import Published
from web import versioned, warmer
from web.app import create_app
from web.settings import WebSettings
from web.snapshot import Snapshot

Client = TestClient  # type: ignore[type-arg]

URLS = [
    "/api/v1/data?limit=7",
    "/api/v1/data?limit=500",
    "/api/v1/data?limit=50&sort=observed_at",
    "/api/v1/data?limit=20&offset=13",
    "/api/v1/data?limit=100&start=2026-11-24T12:30:00Z",
    "/api/v1/data?limit=100&end=2026-11-24T12:30:00Z&sort=observed_at",
    "/api/v1/data?coin_id=BTC-BITCOIN&limit=10",
    "/api/v1/data?coin_id=eth-ethereum&limit=10&sort=observed_at",
    "/api/v1/data?coin_id=eth-ethereum&source=coincap&limit=3",
    "/api/v1/data?symbol=eth&limit=5",
    "/api/v1/data?symbol=USDT&limit=1000",
    "/api/v1/data?symbol=no-such-symbol",
    "/api/v1/data?coin_id=no-such-coin",
]


def _read_from_the_snapshot(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the page was read from the snapshot, not the layout")


class _RawPage(msgspec.Struct):
    items: list[msgspec.Raw]
    next_cursor: str | None


def _walk(client: Client, url: str, pages: int = 4) -> list[_RawPage]:
    """The first ``pages`` pages of ``url``, following next_cursor (one with an offset: the
    API takes a cursor or an offset)."""
    pages = 1 if "offset=" in url else pages
    bodies = []
    cursor = None
    for _ in range(pages):
        response = client.get(url + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.text
        bodies.append(msgspec.json.decode(response.content, type=_RawPage))
        cursor = bodies[-1].next_cursor
        if cursor is None:
            break
    return bodies


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies kept by other tests must not answer these."""
    monkeypatch.setattr(versioned, "RESPONSES", versioned.ResponseCache())


@pytest.mark.usefixtures("fresh_cache")
def test_pages_from_the_layout_are_the_pages_the_snapshot_gives(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(quote_pages, "_page", _read_from_the_snapshot)
        from_layout = {url: _walk(client, url) for url in URLS}
    monkeypatch.setattr(versioned, "RESPONSES", versioned.ResponseCache())
    monkeypatch.setattr(versioned, "layout_of", lambda *args: None)
    from_snapshot = {url: _walk(client, url) for url in URLS}
    for url in URLS:
        # The snapshot's pages may end early where a scan stopped: the quotes walked agree,
        # byte for byte.
        layout_items = [bytes(item) for body in from_layout[url] for item in body.items]
        snapshot_items = [bytes(item) for body in from_snapshot[url] for item in body.items]
        assert layout_items[: len(snapshot_items)] == snapshot_items, url
    assert sum(len(b.items) for b in from_layout["/api/v1/data?limit=500"]) > 500


@pytest.fixture
def unbuilt(published: Published, tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """A client over a copy of the published snapshot, which has no layout yet."""
    serving = tmp_path / "serving.duckdb"
    shutil.copyfile(published.data_dir / "serving.duckdb", serving)
    with TestClient(app=create_app(WebSettings(), snapshot_path=serving)) as client:
        yield client, serving


@pytest.mark.usefixtures("fresh_cache")
def test_the_app_serves_from_a_layout_built_after_it_started(
    unbuilt: tuple[Client, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, serving = unbuilt
    url = "/api/v1/data?coin_id=eth-ethereum&limit=10"
    before = client.get(url).json()
    build_quote_layout(serving)
    deadline = time.monotonic() + 30
    layout = None
    while layout is None and time.monotonic() < deadline:
        time.sleep(0.05)
        layout = versioned._OPEN.layout
        if layout is not None and layout.directory != layout_directory(serving):
            layout = None  # another test's
    assert layout is not None, "the warmer opened the new layout"
    monkeypatch.setattr(versioned, "RESPONSES", versioned.ResponseCache())
    monkeypatch.setattr(quote_pages, "_page", _read_from_the_snapshot)
    assert client.get(url).json() == before


@pytest.fixture
def opened(published: Published, tmp_path: Path) -> Iterator[tuple[Snapshot, Path]]:
    """A snapshot (a copy of the published one) with its layout, opened as the warmer opens
    it; no app runs, so no warmer thread opens layouts meanwhile."""
    serving = tmp_path / "serving.duckdb"
    shutil.copyfile(published.data_dir / "serving.duckdb", serving)
    build_quote_layout(serving)
    snapshot = Snapshot(serving)
    layout = versioned.open_layout(snapshot, versioned.facts_of(snapshot))
    assert layout is not None
    assert layout.directory == layout_directory(serving)
    del layout  # held by the app alone
    # What the app holds when a layout opens is kept out of the collector's full passes
    # (each took 40-45 ms at 10M quotes, in the middle of requests).
    assert gc.get_freeze_count() > 0
    try:
        yield snapshot, serving
    finally:
        versioned._OPEN.keep(None, None)
        gc.unfreeze()
        snapshot.close()


def _segments(layout: QuoteLayout | None) -> set[str]:
    assert layout is not None
    return set(layout.segment_names)


def test_a_new_base_of_the_same_snapshot_is_opened_in_place_of_the_old(
    opened: tuple[Snapshot, Path],
) -> None:
    snapshot, serving = opened
    before = _segments(versioned._OPEN.layout)
    old = weakref.ref(versioned._OPEN.layout)
    build_quote_layout(serving, base=True)  # what the writer does when it compacts
    after = versioned.open_layout(snapshot, versioned.facts_of(snapshot))
    assert old() is None, "the old layout is not kept alive, frozen or otherwise"
    assert _segments(after) == {
        Manifest.read(p).base for p in layout_directory(serving).glob("*.json")
    }
    assert not _segments(after) & before, "the old base (its files removed) is let go of"


def test_a_new_base_that_cannot_be_opened_leaves_the_open_layout_until_a_good_one_comes(
    opened: tuple[Snapshot, Path],
) -> None:
    snapshot, serving = opened
    serving_before = versioned._OPEN.layout
    assert serving_before is not None
    damaged = build_quote_layout(serving, base=True)
    base = layout_directory(serving) / Manifest.read(damaged.path).base
    (base / "rows.arrow").write_bytes(b"not an Arrow file")
    for _ in range(2):  # tried once, not again while the manifest stays the same
        assert versioned.open_layout(snapshot, versioned.facts_of(snapshot)) is serving_before
    flt = quote_pages.QuoteFilter(coin_id="eth-ethereum")
    assert serving_before.read_page(flt, ["eth-ethereum"], limit=5, offset=0) is not None
    build_quote_layout(serving, base=True)  # the writer's next base
    after = versioned.open_layout(snapshot, versioned.facts_of(snapshot))
    assert after is not serving_before
    assert _segments(after) == {Manifest.read(damaged.path).base}


def test_the_layout_of_a_replaced_snapshot_is_let_go_of_before_the_new_one_is_laid_out(
    opened: tuple[Snapshot, Path],
) -> None:
    snapshot, serving = opened
    republished = serving.with_name("next.duckdb")
    shutil.copyfile(serving, republished)
    os.replace(republished, serving)  # a publish: a new file, not laid out yet
    assert versioned.open_layout(snapshot, versioned.facts_of(snapshot)) is None
    assert versioned._OPEN.layout is None, "the old snapshot's layout is not held open"


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_damaged_layout_is_said_once_and_pages_come_from_the_snapshot(
    published: Published, tmp_path: Path
) -> None:
    serving = tmp_path / "serving.duckdb"
    shutil.copyfile(published.data_dir / "serving.duckdb", serving)
    built = build_quote_layout(serving)
    base = layout_directory(serving) / Manifest.read(built.path).base
    (base / "rows.arrow").write_bytes(b"not an Arrow file")
    said = _Said()
    logger = logging.getLogger(versioned.__name__)
    logger.addHandler(said)
    try:
        with TestClient(app=create_app(WebSettings(), snapshot_path=serving)) as client:
            for _ in range(3):
                response = client.get("/api/v1/data?coin_id=eth-ethereum&limit=5")
                assert response.status_code == 200
                assert len(response.json()["items"]) == 5
                time.sleep(warmer.POLL_SECONDS)  # the warmer tries again, and says nothing
    finally:
        logger.removeHandler(said)
    unreadable = [m for m in said.messages if "rows.arrow is unreadable" in m]
    assert len(unreadable) == 1
    assert "pages are read from the snapshot" in unreadable[0]
    assert str(tmp_path) not in unreadable[0], "the data directory is not shown"
