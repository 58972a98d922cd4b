"""Peak memory of loading one large CSV file in the daily-history layout.

    python -m bench.csv_memory [--megabytes 50] [--changed] [--no-append]

Generates (once, cached) a file in the layout of the widely used Kaggle daily dataset, with its
traps: prices written as Python prints a double (``0.00020473099721129984``, 17 significant
digits) for a third of the assets, exponents (``9.83e-05``), ``Volume`` ``0.0``. Then a fresh
process extracts it into the raw zone and loads it into an empty warehouse (the flow's steps as
plain calls, as :mod:`bench.incremental` does) and reports its own ``VmHWM``, the high-water mark
of its resident memory (see bench.scaling for why not ``ru_maxrss``). With ``--changed`` the
file is loaded, then a file of the same assets and days with other values (another seed) is
loaded over it, every row changed in one transaction: that second load is the one measured.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from bench.harness import CACHE, append_results
from store.settings import get_store_settings

HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"
FIRST_DAY = date(2013, 4, 29)
DAYS = 2_900
"""Days per asset (2013-04-29 .. 2021-04-15): as long as the dataset's longest histories."""


def _price(rng: random.Random, noisy: bool, level: float) -> str:
    value = level * rng.uniform(0.9, 1.1)
    # The dataset's noisy files hold float32 values printed as doubles (digits past the 7th
    # are noise: 0.000204731 as 0.00020473099721129984); the clean ones rounded to a few
    # places or written with an exponent.
    if noisy:
        return repr(struct.unpack("f", struct.pack("f", value))[0])
    return f"{value:.6g}"


def write_daily_history(path: Path, megabytes: int, seed: int = 7) -> int:
    """Write assets of :data:`DAYS` days each until the file holds ``megabytes`` MB; return
    its rows."""
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    rows = 0
    written = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        written += handle.write(HEADER + "\n")
        asset = 0
        while written < target:
            asset += 1
            noisy = asset % 3 == 0
            level = 10 ** rng.uniform(-4, 4)
            name, symbol = f"Coin {asset}", f"C{asset}"
            for day in range(DAYS):
                if written >= target:
                    break
                level *= rng.uniform(0.97, 1.03)
                when = FIRST_DAY + timedelta(days=day)
                prices = [_price(rng, noisy, level) for _ in range(4)]
                volume = "0.0" if day < 30 else f"{level * rng.uniform(1e6, 1e8):.1f}"
                cap = repr(level * 1e8 * rng.uniform(0.99, 1.01))
                rows += 1
                line = (
                    f"{day + 1},{name},{symbol},{when.isoformat()} 23:59:59,"
                    f"{','.join(prices)},{volume},{cap}\n"
                )
                written += handle.write(line)
    tmp.rename(path)
    return rows


def cached_file(megabytes: int, seed: int = 7) -> tuple[Path, int]:
    variant = "" if seed == 7 else f"-seed{seed}"
    path = CACHE / f"csv-daily-history-{megabytes}mb{variant}" / "csv" / "daily_history_big.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_daily_history(path, megabytes, seed)
    with path.open("rb") as handle:
        rows = sum(1 for _ in handle) - 1
    return path, rows


_LOAD_IN_THIS_PROCESS = """
import json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from flows.extract import extract
from flows.load import load_extracted
from store import runs
from store.connection import transaction, warehouse
replay, data_dir, run = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
started = time.perf_counter()
with warehouse(data_dir / "warehouse.duckdb") as con:
    with transaction(con):
        runs.start_run(con, run_id=run, flow_run_id=None, started_at=datetime.now(UTC),
                       sources=["csv"], replay_dir=str(replay))
    extracted = extract("csv", raw_root=data_dir / "raw", run_id=run,
                        started_at=datetime.now(UTC), replay_dir=replay)
    result = runs.SourceResult(run, "csv", "loaded")
    load_extracted(con, data_dir / "raw", extracted, result, {})
    runs.finish_run(con, run, "completed", None)
seconds = time.perf_counter() - started
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({
    "peak": int(status["VmHWM"].split()[0]) * 1024,
    "seconds": seconds,
    "valid": result.valid,
    "quarantined": result.quarantined,
    "inserted": result.inserted,
    "updated": result.updated,
    "rounded": getattr(result, "rounded", None),
}))
"""


def measure(*replays: Path) -> dict[str, float]:
    """Load each replay directory's CSV files in turn into a fresh data dir, each in a fresh
    process; return what the last load measured."""
    data_dir = CACHE / "csv-memory-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    try:
        for number, replay in enumerate(replays, 1):
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _LOAD_IN_THIS_PROCESS,
                    str(replay),
                    str(data_dir),
                    f"bench-csv-{number}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                last = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
                raise SystemExit(f"loading {replay} failed: {last[0]}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    measured: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument(
        "--changed", action="store_true", help="measure reloading the file with other values"
    )
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args(argv)
    path, rows = cached_file(args.megabytes)
    if args.changed:
        changed, _ = cached_file(args.megabytes, seed=8)
        result = measure(path.parent.parent, changed.parent.parent)
        into = "loaded over the same file with other values (every row changed)"
    else:
        result = measure(path.parent.parent)
        into = "loaded into an empty warehouse"
    body = (
        f"### Peak memory of one CSV file\n\n"
        f"A generated daily-history file of {path.stat().st_size / 1e6:.1f} MB ({rows:,} rows, "
        f"a third of its assets with float-noise prices), extracted and {into} by a fresh "
        f"process with KASPARRO_DUCKDB_MEMORY_LIMIT {get_store_settings().duckdb_memory_limit}"
        f" and KASPARRO_DUCKDB_MERGE_MEMORY_LIMIT {get_store_settings().duckdb_merge_memory_limit}:"
        f" peak RSS (VmHWM) {result['peak'] / 2**20:,.0f} MiB, "
        f"{result['seconds']:.1f} s; {result['valid']:,.0f} valid, "
        f"{result['quarantined']:,.0f} quarantined, {result['inserted']:,.0f} inserted, "
        f"{result['updated']:,.0f} updated"
        + (f", {result['rounded']:,.0f} values rounded." if result["rounded"] is not None else ".")
    )
    command = f"python -m bench.csv_memory --megabytes {args.megabytes}" + (
        " --changed" if args.changed else ""
    )
    if args.no_append:
        print(body)
    else:
        append_results("Benchmarks (CSV memory)", command, body)


if __name__ == "__main__":
    main()
