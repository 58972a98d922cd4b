"""Cost against warehouse size: merging a fixed batch into more and more history, peak memory of
a rebuild, and publishing the serving snapshot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from bench.harness import CACHE, Timing, timed
from bench.rawzone import FIRST_CAPTURE, write_raw_zone
from flows.load import load_source
from flows.rebuild import raw_batches
from flows.sources import SOURCE_NAMES
from flows.transform import transform_raw_files
from store import runs
from store.connection import open_warehouse
from store.snapshot import publish_snapshot

BATCH_QUOTES = 100_000


def later_batch() -> Path:
    """A cached raw zone of ~100k quotes captured after every benchmark history (a new day)."""
    data_dir = CACHE / "batch-100k"
    if not (data_dir / "raw").is_dir():
        write_raw_zone(
            data_dir / "raw", quotes=BATCH_QUOTES, first_capture=FIRST_CAPTURE + timedelta(days=30)
        )
    return data_dir


def measure_batch_merge(warehouse: Path | None, batch: Path, repeat: int) -> tuple[int, Timing]:
    """Load the batch's runs into a copy of ``warehouse`` (None: an empty one)."""
    work = CACHE / "scaling-work.duckdb"
    batches = raw_batches(batch / "raw")
    validated = [(b, transform_raw_files(batch / "raw", b.files)) for b in batches]
    rows = sum(v.quotes.height for _, v in validated)

    def setup() -> None:
        work.unlink(missing_ok=True)
        if warehouse is not None:
            shutil.copyfile(warehouse, work)

    def merge() -> None:
        con = open_warehouse(work)
        try:
            for b, v in validated:
                load_source(
                    con, v, runs.SourceResult(b.run_id, b.source, "loaded"), {}, ledger=False
                )
        finally:
            con.close()

    timing = timed(merge, setup=setup, repeat=repeat)
    work.unlink(missing_ok=True)
    return rows, timing


_PEAK_OF_THIS_PROCESS = """
import json, sys
from pathlib import Path
from flows.rebuild import rebuild_from_raw
rebuild_from_raw(Path(sys.argv[1]), {}, recover=True)  # a raw zone without a warehouse
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps(int(status["VmHWM"].split()[0]) * 1024))
"""


def peak_rss_of_rebuild(data_dir: Path) -> int:
    """Peak resident memory (bytes) of a fresh process rebuilding ``data_dir``. Read from
    ``VmHWM`` (Linux), the process's own high-water mark: ``getrusage``'s ``ru_maxrss`` carries
    over the parent's peak through the vfork and exec that start the child, and reported 7.8 GiB
    for a rebuild that peaks at 1.3 GiB, once this harness had run dlt and the rebuilds."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_THIS_PROCESS, str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_publish(warehouse: Path, repeat: int) -> tuple[int, Timing]:
    target = CACHE / "publish-target.duckdb"
    timing = timed(lambda: publish_snapshot(warehouse, target, sources=SOURCE_NAMES), repeat=repeat)
    target.unlink(missing_ok=True)
    return warehouse.stat().st_size, timing
