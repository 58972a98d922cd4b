"""`kasparro rebuild` against a Prefect server takes the warehouse writer's slot like an ingest."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prefect.concurrency.sync import concurrency
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

from flows.writer import WRITER_LIMIT, ensure_writer_limit, one_writer
from kasparro.cli import main
from store.connection import open_warehouse

pytestmark = pytest.mark.slow


def test_a_rebuild_waits_for_the_writer_slot(
    prefect_api: str, free_writer_slot: None, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    open_warehouse(data_dir / "warehouse.duckdb").close()
    ensure_writer_limit()
    codes: list[int] = []
    rebuild = threading.Thread(target=lambda: codes.append(main(["rebuild"])))
    with one_writer("an ingest", data_dir):
        rebuild.start()
        rebuild.join(timeout=4)
        assert rebuild.is_alive(), "the rebuild waits while the slot is taken"
        assert not (data_dir / "serving.duckdb").exists()
    rebuild.join(timeout=60)
    assert codes == [0]
    assert (data_dir / "serving.duckdb").exists()


def test_a_slot_whose_holder_is_gone_does_not_stall_the_next_writer(
    prefect_api: str, free_writer_slot: None, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_writer_limit()
    # Taken, with no process here holding the data directory: as a killed run's lease. Outside
    # a flow run, as in `kasparro rebuild`, which sets the same.
    with (
        temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}),
        concurrency(WRITER_LIMIT, occupy=1, strict=True),
    ):
        started = time.monotonic()
        with one_writer("ingest", data_dir) as waited:
            assert waited == 0.0
        assert time.monotonic() - started < 10, "not the 60 s of the dead holder's lease"
    assert "going on without waiting for its lease" in caplog.text
