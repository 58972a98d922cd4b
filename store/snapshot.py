"""Publishing the read-only serving snapshot.

DuckDB lets one process write a file or many read it, never both at once. So the flow writes
``warehouse.duckdb`` alone and, after each successful load, publishes a copy: checkpoint and close
the warehouse, copy it to a temporary file beside ``serving.duckdb``, fsync, and rename it over
the old snapshot. A reader that has the old file open keeps reading it (the rename does not touch
its inode); the next open sees the new one. Readers never see a half-written snapshot.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from store.errors import StoreError


@dataclass(frozen=True)
class Published:
    path: Path
    bytes: int
    seconds: float


def publish_snapshot(warehouse_path: Path, serving_path: Path) -> Published:
    """Copy a closed, checkpointed warehouse over the serving snapshot atomically."""
    wal = warehouse_path.with_name(warehouse_path.name + ".wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"{wal} is not empty: the warehouse is still open or was not checkpointed; "
            "close every connection to it before publishing"
        )
    started = time.perf_counter()
    tmp = serving_path.with_name(f".{serving_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(warehouse_path, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, serving_path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(serving_path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return Published(serving_path, serving_path.stat().st_size, time.perf_counter() - started)
