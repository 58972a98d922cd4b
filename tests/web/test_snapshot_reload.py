"""The API follows published snapshots without a restart, and readers never see a broken one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import duckdb
import pytest
from litestar.testing import TestClient

from flows.resolution import read_overrides
from tests.conftest import REPO
from tests.helpers import ingest_without_prefect
from web import snapshot as web_snapshot
from web import versioned
from web.app import create_app
from web.settings import WebSettings
from web.snapshot import Snapshot


def test_the_api_serves_a_newly_published_snapshot_without_restarting(
    tmp_path: Path, demo_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    overrides = read_overrides(REPO / "data" / "asset_overrides.csv")
    ingest_without_prefect(
        demo_dir, data_dir, run_id="run-1", sources=("coingecko",), overrides=overrides
    )
    app = create_app(WebSettings(), snapshot_path=data_dir / "serving.duckdb")
    with TestClient(app=app) as client:
        assert client.get("/api/v1/stats").json()["totals"]["runs"] == 1
        ingest_without_prefect(
            demo_dir, data_dir, run_id="run-2", sources=("coincap",), overrides=overrides
        )
        stats = client.get("/api/v1/stats").json()
        assert stats["totals"]["runs"] == 2
        assert {s["source"] for s in stats["sources"]} == {"coingecko", "coincap"}


def test_concurrent_readers_keep_answering_while_snapshots_are_published(
    tmp_path: Path, demo_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    ingest_without_prefect(demo_dir, data_dir, run_id="run-0", sources=("coinpaprika",))
    # Four readers in a loop are far past any per-client rate limit: this is about snapshots.
    settings = WebSettings(rate_limit_per_minute=0)
    app = create_app(settings, snapshot_path=data_dir / "serving.duckdb")
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def read(client: TestClient) -> None:  # type: ignore[type-arg]
        while not stop.is_set():
            response = client.get("/api/v1/data?limit=50&source=coinpaprika")
            if response.status_code != 200 or not response.json()["items"]:
                failures.append(f"{response.status_code}: {response.text[:200]}")
            answered[0] += 1

    with TestClient(app=app) as client:
        readers = [threading.Thread(target=read, args=(client,)) for _ in range(4)]
        for reader in readers:
            reader.start()
        for i in range(1, 4):
            ingest_without_prefect(demo_dir, data_dir, run_id=f"run-{i}", sources=("coinpaprika",))
        stop.set()
        for reader in readers:
            reader.join(timeout=60)
        assert client.get("/api/v1/stats").json()["totals"]["runs"] == 4
    assert failures == []
    assert answered[0] > 4


def test_cursors_are_reused_and_never_outlive_their_snapshot(
    tmp_path: Path, demo_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    ingest_without_prefect(demo_dir, data_dir, run_id="run-1", sources=("coingecko",))
    snapshot = Snapshot(data_dir / "serving.duckdb")
    try:
        with snapshot.borrowed_cursor() as first:
            pass
        with snapshot.borrowed_cursor() as again, snapshot.borrowed_cursor() as held:
            assert again is first, "a cursor given back is the next one lent"
            assert held is not first, "two requests at once never share one"
            ingest_without_prefect(demo_dir, data_dir, run_id="run-2", sources=("coincap",))
            with snapshot.borrowed_cursor() as fresh:
                assert fresh.execute("select count(*) from runs").fetchall() == [(2,)]
            assert held.execute("select count(*) from runs").fetchall() == [(1,)], (
                "a request under way keeps reading the snapshot it started on"
            )
        snapshot.settle()
        for stale in (first, held):
            with pytest.raises(duckdb.ConnectionException):
                stale.execute("select 1")
        with snapshot.borrowed_cursor() as reused:
            assert reused is fresh
        with pytest.raises(RuntimeError), snapshot.borrowed_cursor() as failed:
            raise RuntimeError("the request failed")
        snapshot.settle()
        with pytest.raises(duckdb.ConnectionException):
            failed.execute("select 1")
    finally:
        snapshot.close()


class HeldBack(Executor):
    """Runs nothing until told: what a request would otherwise have done itself stays visible."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], object]] = []

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Future[Any]:
        self.pending.append(lambda: fn(*args, **kwargs))
        done: Future[Any] = Future()
        done.set_result(None)
        return done

    def run(self) -> None:
        while self.pending:
            self.pending.pop(0)()


def test_a_replaced_snapshot_is_closed_off_the_request_that_finds_the_new_one(
    tmp_path: Path, demo_dir: Path
) -> None:
    """Letting go of a replaced 1.3 GB snapshot frees the file (230-340 ms at 10M quotes): the
    closer does it, not the first request after a publish."""
    data_dir = tmp_path / "data"
    ingest_without_prefect(demo_dir, data_dir, run_id="run-1", sources=("coingecko",))
    closer = HeldBack()
    snapshot = Snapshot(data_dir / "serving.duckdb", closer=closer)
    try:
        with snapshot.borrowed_cursor() as old:
            pass
        ingest_without_prefect(demo_dir, data_dir, run_id="run-2", sources=("coincap",))
        with snapshot.borrowed_cursor() as new:
            assert new.execute("select count(*) from runs").fetchall() == [(2,)]
        assert old.execute("select count(*) from runs").fetchall() == [(1,)], (
            "the request that found the new snapshot left the old one to the closer"
        )
        closer.run()
        with pytest.raises(duckdb.ConnectionException):
            old.execute("select 1")
        with snapshot.borrowed_cursor() as again:
            assert again is new, "the current snapshot's cursors stay pooled"
    finally:
        closer.run()
        snapshot.close()


def test_a_published_snapshot_is_opened_and_read_before_a_request_asks_for_it(
    tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first request after a publish opened the new file and read its coin index itself:
    # 52-78 ms of it at 10M quotes. The app's warmer does it first.
    data_dir = tmp_path / "data"
    ingest_without_prefect(demo_dir, data_dir, run_id="run-1", sources=("coingecko",))
    work: list[str] = []

    def on_thread(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            work.append(f"{name} on {threading.current_thread().name}")
            return function(*args, **kwargs)

        return recorded

    monkeypatch.setattr(
        web_snapshot, "open_read_only", on_thread("open", web_snapshot.open_read_only)
    )
    monkeypatch.setattr(versioned, "coin_index", on_thread("index", versioned.coin_index))
    app = create_app(WebSettings(), snapshot_path=data_dir / "serving.duckdb")
    with TestClient(app=app) as client:
        # At startup, before the first request.
        assert [w.split(" on ")[0] for w in work] == ["open", "index"]
        assert client.get("/api/v1/data?limit=5").status_code == 200
        ingest_without_prefect(demo_dir, data_dir, run_id="run-2", sources=("coincap",))
        deadline = time.monotonic() + 30
        while len(work) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert work[2:] == ["open on snapshot-warmer", "index on snapshot-warmer"]
        assert client.get("/api/v1/data?limit=5&source=coincap").json()["items"]
        assert len(work) == 4, "the request found the new snapshot open and its facts read"
