"""A writer refused by DuckDB's lock is told who holds it: a reader is named as a reader (close
it), not as a running ingest; a writer with its PID."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from store.connection import open_warehouse
from store.errors import WarehouseBusyError
from tests.helpers import warehouse_held_elsewhere


@contextmanager
def warehouse_read_elsewhere(path: Path) -> Iterator[int]:
    """Another process (a notebook, say) holds the warehouse open read-only; yields its PID."""
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; "
            f"con = duckdb.connect({str(path)!r}, read_only=True); print('reading', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "reading"
        yield reader.pid
    finally:
        reader.communicate("", timeout=30)


def test_a_reader_holding_the_warehouse_is_named_as_a_reader(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    open_warehouse(warehouse).close()
    with warehouse_read_elsewhere(warehouse) as pid, pytest.raises(WarehouseBusyError) as busy:
        open_warehouse(warehouse)
    message = str(busy.value)
    assert f"read-only by another process (PID {pid}" in message
    assert "close that reader" in message
    assert "running ingest" not in message
    assert busy.value.holder is not None
    assert busy.value.holder.kind == "reader"


def test_a_writer_holding_the_warehouse_is_named_with_its_pid(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    open_warehouse(warehouse).close()
    with warehouse_held_elsewhere(warehouse), pytest.raises(WarehouseBusyError) as busy:
        open_warehouse(warehouse)
    assert busy.value.holder is not None
    assert busy.value.holder.kind == "writer"
    assert f"PID {busy.value.holder.pid}: " in str(busy.value)
    assert "wait for the running ingest to finish" in str(busy.value)
