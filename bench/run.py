"""``make bench`` (quick: 100k and 1M quotes, about five minutes once inputs are cached) and
``make bench-full`` (1M and 10M quotes): every measurement of the benchmark issue, printed and
appended to docs/benchmarks.md with the command that produced it.

    python -m bench.run [--full] [--repeat 3] [--skip api,overhead,...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.api import NAIVE, measure_api
from bench.harness import CACHE, append_results
from bench.incremental import LATER_RUNS, measure, measure_synthetic
from bench.overhead import measure_overhead
from bench.rebuild import measure_bare_merge, measure_dlt, measure_rebuild, raw_zone
from bench.scaling import later_batch, measure_batch_merge, measure_publish, peak_rss_of_rebuild


def rebuild(sizes: tuple[int, ...], repeat: int, dlt_sample: int) -> list[str]:
    lines = [
        "### Rebuild throughput (raw zone -> warehouse)\n",
        "| quotes | Kasparro rebuild | rows/s | bare DuckDB MERGE, typed Parquet | / bare |",
        "|---:|---:|---:|---:|---:|",
    ]
    ours = 0.0
    for size in sizes:
        data_dir = raw_zone(size)
        rows, ours_timing = measure_rebuild(data_dir, repeat)
        merged, bare = measure_bare_merge(data_dir, repeat)
        ours = rows / ours_timing.median
        lines.append(
            f"| {rows:,} | {ours_timing} | {ours:,.0f} | {bare} ({merged:,} rows) "
            f"| {ours_timing.median / bare.median:.1f}x |"
        )
    dlt = measure_dlt(raw_zone(sizes[0]), dlt_sample)
    if dlt is None:
        lines.append("\ndlt: not installed (`uv sync --group bench`); not measured.")
    else:
        dlt_rows, dlt_timing = dlt
        theirs = dlt_rows / dlt_timing.median
        lines.append(
            f"\ndlt merging {dlt_rows:,} of the same records, parsed to dicts: {dlt_timing} = "
            f"{theirs:,.0f} rows/s; Kasparro's largest rebuild: {ours:,.0f} rows/s "
            f"({ours / theirs:.1f}x dlt)."
        )
    return lines


def incremental(sizes: tuple[int, ...], repeat: int) -> list[str]:
    """The demo recording, and a generated one-capture recording (quick: 30k quotes; full:
    100k). A first load resolves every asset it meets: its time grows faster than the number of
    assets (see docs/benchmarks.md)."""
    quick = sizes[0] < 1_000_000
    measured = [
        ("`data/demo`", measure(Path("data/demo"), repeat)),
        ("generated, one capture", measure_synthetic(30_000 if quick else 100_000, repeat)),
    ]
    lines = [
        "\n### Incremental re-run over unchanged upstream data\n",
        f"| recording | quotes | first load | re-run | re-run / first | rows the re-run wrote "
        f"| re-run after {LATER_RUNS} more | / first re-run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in measured:
        lines.append(
            f"| {name} | {result.quotes:,} | {result.first} | {result.rerun} "
            f"| {result.rerun.median / result.first.median:.2f} | {result.written} "
            f"| {result.later} | {result.later.median / result.rerun.median:.2f} |"
        )
    return lines


def scaling(sizes: tuple[int, ...], repeat: int) -> list[str]:
    batch = later_batch()
    lines = [
        "\n### A ~100k-quote batch merged into growing history\n",
        "| warehouse holds | batch rows | merge | / empty |",
        "|---:|---:|---:|---:|",
    ]
    empty_rows, empty = measure_batch_merge(None, batch, repeat)
    lines.append(f"| 0 | {empty_rows:,} | {empty} | 1.0x |")
    for size in sizes:
        warehouse = raw_zone(size) / "warehouse.duckdb"
        if not warehouse.exists():
            measure_rebuild(raw_zone(size), 1)
        rows, timing = measure_batch_merge(warehouse, batch, repeat)
        lines.append(f"| {size:,} | {rows:,} | {timing} | {timing.median / empty.median:.2f}x |")
    return lines


def memory(sizes: tuple[int, ...], repeat: int) -> list[str]:
    peak = peak_rss_of_rebuild(raw_zone(sizes[-1]))
    return [
        f"\n### Memory\n\nPeak RSS of a rebuild of {sizes[-1]:,} quotes: {peak / 2**30:.2f} GiB."
    ]


def publish(sizes: tuple[int, ...], repeat: int) -> list[str]:
    lines = [
        "\n### Snapshot publish\n",
        "| warehouse | size | publish | s per GB |",
        "|---:|---:|---:|---:|",
    ]
    for size in sizes:
        warehouse = raw_zone(size) / "warehouse.duckdb"
        if warehouse.exists():
            nbytes, timing = measure_publish(warehouse, repeat)
            per_gb = timing.median / (nbytes / 1e9)
            lines.append(
                f"| {size:,} quotes | {nbytes / 2**20:,.0f} MiB | {timing} | {per_gb:.2f} |"
            )
    return lines


def overhead(sizes: tuple[int, ...], repeat: int) -> list[str]:
    measured = measure_overhead(repeat)
    flow, completed = measured.flow, measured.until_completed
    return [
        f"\n### Prefect overhead (demo recording)\n\nFlow: {flow}; the same steps as plain "
        f"functions: {measured.plain}; Prefect's share: {measured.share(flow):.0%}. Until the "
        f"flow run is Completed: {completed}; share {measured.share(completed):.0%} (the call "
        "then waits for Prefect's heartbeat thread, which sleeps in whole seconds)."
    ]


def api(sizes: tuple[int, ...], repeat: int) -> list[str]:
    """Kasparro's app and the naive baseline (bench.naive_api) on the same snapshot, each path
    loaded by one then the other."""
    paths = ["/ping", "/api/v1/data?limit=100", "/api/v1/data?limit=100&symbol=BTC"]
    data_dir = raw_zone(sizes[-1])
    ours = measure_api(data_dir, paths, seconds=10)
    naive = measure_api(data_dir, paths, seconds=10, app=NAIVE)
    lines = [
        f"\n### API ({sizes[-1]:,} quotes, one uvicorn worker, wrk -t2 -c32, 10 s)\n",
        "Beside a naive Litestar + DuckDB endpoint on the same snapshot (`bench/naive_api.py`: "
        "`order by observed_at desc limit 100` over the whole table, rows as dicts).\n",
        "| path | req/s | p50 | p99 | errors (non-2xx, timeouts) | naive req/s | naive p50 "
        "| naive p99 | req/s / naive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load, base in zip(ours, naive, strict=True):
        lines.append(
            f"| `/{load.path}` | {load.requests_per_second:,.0f} | {load.p50_ms:.1f} ms "
            f"| {load.p99_ms:.1f} ms | {load.errors} | {base.requests_per_second:,.0f} "
            f"| {base.p50_ms:.1f} ms | {base.p99_ms:.1f} ms "
            f"| {load.requests_per_second / base.requests_per_second:.2f} |"
        )
    return lines


PARTS: dict[str, Callable[[tuple[int, ...], int], list[str]]] = {
    "incremental": incremental,
    "scaling": scaling,
    "memory": memory,
    "publish": publish,
    "overhead": overhead,
    "api": api,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--full", action="store_true", help="1M and 10M quotes (long)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated: rebuild," + ",".join(PARTS))
    parser.add_argument("--dlt-sample", type=int, default=100_000)
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    sizes = (1_000_000, 10_000_000) if args.full else (100_000, 1_000_000)
    CACHE.mkdir(exist_ok=True)
    lines: list[str] = []
    if "rebuild" not in skip:
        lines += rebuild(sizes, args.repeat, args.dlt_sample)
        print("\n".join(lines), flush=True)
    for name, part in PARTS.items():
        if name not in skip:
            produced = part(sizes, args.repeat)
            print("\n".join(produced), flush=True)
            lines += produced
    command = " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])])
    append_results(f"Benchmarks ({'full' if args.full else 'quick'})", command, "\n".join(lines))


if __name__ == "__main__":
    main()
