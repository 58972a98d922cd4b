"""Prefect's share of a demo-sized ingest: the flow (tasks, artifacts, states) against the same
steps called as plain functions, both on the bundled recording, against a running Prefect API.

Both paths run once untimed (the flow's first run registers it; both warm imports and caches),
then alternate under the same running API, so that a busy machine slows both alike. Besides the
time the flow call takes, the time until its run is Completed is reported: a sync flow run's call
then waits for Prefect's heartbeat thread, which sleeps in whole seconds (Prefect 3.8), so the
call returns at the next whole second of its run (never in under ~1 s) after the run completed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Timing
from bench.incremental import ingest_once
from store.settings import get_store_settings

DEMO = Path("data/demo")


@dataclass(frozen=True)
class Overhead:
    flow: Timing
    """The flow call, start to return."""
    until_completed: Timing
    """The flow call's start to its run's Completed state."""
    plain: Timing

    def share(self, flow: Timing) -> float:
        return (flow.median - self.plain.median) / flow.median


def measure_overhead(repeat: int) -> Overhead:
    """Timings of a first ingest of the demo into an empty data dir, flow and plain alternated."""
    from prefect.testing.utilities import prefect_test_harness  # noqa: PLC0415 - starts a server

    from flows.ingest import ingest  # noqa: PLC0415 - imports Prefect

    work = Path(tempfile.mkdtemp(prefix="kasparro-overhead-"))
    data_dir = work / "data"

    def fresh() -> None:
        shutil.rmtree(data_dir, ignore_errors=True)

    def flow_once() -> tuple[float, float]:
        fresh()
        started, wall = time.perf_counter(), time.time()
        state = ingest(replay_dir=str(DEMO), return_state=True)
        returned = time.perf_counter() - started
        if not state.is_completed():
            raise RuntimeError(f"the demo ingest did not complete: {state.message}")
        return returned, state.timestamp.timestamp() - wall

    def plain_once() -> float:
        fresh()
        return ingest_once(DEMO, data_dir, "plain")

    os.environ["KASPARRO_DATA_DIR"] = str(data_dir)
    get_store_settings.cache_clear()
    flows: list[tuple[float, float]] = []
    plains: list[float] = []
    try:
        with prefect_test_harness(server_startup_timeout=120):
            flow_once(), plain_once()  # untimed warm-up
            for _ in range(repeat):
                flows.append(flow_once())
                plains.append(plain_once())
    finally:
        shutil.rmtree(work, ignore_errors=True)
        get_store_settings.cache_clear()
    return Overhead(
        flow=Timing([returned for returned, _ in flows]),
        until_completed=Timing([completed for _, completed in flows]),
        plain=Timing(plains),
    )
