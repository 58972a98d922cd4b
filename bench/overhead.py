"""Prefect's share of a demo-sized ingest: the flow (tasks, artifacts, states) against the same
steps called as plain functions, both on the bundled recording, against a running Prefect API."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.harness import Timing, timed
from bench.incremental import ingest_once
from store.settings import get_store_settings

DEMO = Path("data/demo")


def measure_overhead(repeat: int) -> tuple[Timing, Timing]:
    """(flow, plain) timings of a first ingest of the demo into an empty data dir."""
    from prefect.testing.utilities import prefect_test_harness  # noqa: PLC0415 - starts a server

    from flows.ingest import ingest  # noqa: PLC0415 - imports Prefect

    work = Path(tempfile.mkdtemp(prefix="kasparro-overhead-"))

    def fresh() -> None:
        shutil.rmtree(work / "data", ignore_errors=True)

    os.environ["KASPARRO_DATA_DIR"] = str(work / "data")
    get_store_settings.cache_clear()
    try:
        plain = timed(lambda: ingest_once(DEMO, work / "data", "plain"), setup=fresh, repeat=repeat)
        with prefect_test_harness(server_startup_timeout=120):
            ingest(replay_dir=str(DEMO))  # warm: the first flow run registers the flow
            flow = timed(lambda: ingest(replay_dir=str(DEMO)), setup=fresh, repeat=repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        get_store_settings.cache_clear()
    return flow, plain
