"""Publishing a large snapshot and laying out what each run changed, beside the base layout.

    python -m bench.publish_delta [--quotes 10000000] [--runs 4] [--rewrites 50] [--seconds 10]

A copy of the benchmark warehouse of ``--quotes`` (``bench.api_workload``'s) is published and
laid out as a base (timed). Then ``--runs`` runs, each as an ingest writes them: one new quote
for every (coin, source) pair, an hour after its last; and one more that also rewrites
``--rewrites`` old quotes (values a later delivery corrected, with the run's lineage: the delta
lays out each as a row that replaces the base's). After each, the publish and the layout of the
delta since the base are timed, as seconds per GB of snapshot, and a new base if the writer
would lay one out. Then the distinct-URL workload of ``bench.api_workload`` against that
snapshot (base and delta), beside ``/ping``, same run. Last, a new base is laid out and the
last run is retried under its run id (as a Prefect retry resumes it), appending a quote more to
each pair: its rows are the delta's, though the base names their run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.api import CONNECTIONS, THREADS, _wrk, served
from bench.api_workload import _LUA, distinct_urls, snapshot_of
from bench.harness import CACHE, append_results
from flows.sources import SOURCE_NAMES
from store.connection import open_warehouse
from store.quote_layout import layout_directory
from store.quote_layout_build import LayoutBuilt, build_quote_layout, should_compact
from store.schema import QUOTES
from store.snapshot import Published, copy_durably, publish_snapshot

_COLUMNS = ", ".join(QUOTES)


def _run_id(number: int) -> str:
    return f"bench-delta-{number}"


def _run(warehouse: Path, number: int, rewrites: int, run_id: str | None = None) -> None:
    """Write run ``number`` into ``warehouse`` as a load would: its own lineage on each row
    (``run_id``'s, when a retry resumes a run)."""
    run_id = run_id or _run_id(number)
    con = open_warehouse(warehouse)
    try:
        later = ", ".join(
            {
                "observed_at": "observed_at + interval 1 hour",
                "run_id": "? as run_id",
                "raw_file": "'bench-delta.parquet' as raw_file",
                "raw_record": "(row_number() over ())::integer as raw_record",
            }.get(column, column)
            for column in QUOTES
        )
        con.execute(
            f"""
            insert into quotes ({_COLUMNS})
            select {later} from quotes
            qualify row_number() over (partition by coin_id, source order by observed_at desc) = 1
            """,
            [run_id],
        )
        con.execute(
            f"""
            update quotes set price_usd = price_usd + 1, run_id = ?
            where rowid in (
                select rowid from quotes
                using sample reservoir({rewrites} rows) repeatable ({number})
            )
            """,
            [run_id],
        )
        con.execute("checkpoint")
    finally:
        con.close()


def _layout_bytes(serving: Path) -> int:
    return sum(f.stat().st_size for f in layout_directory(serving).rglob("*") if f.is_file())


def pages(work: Path, args: argparse.Namespace) -> list[str]:
    """The distinct-URL workload on ``work``'s snapshot, beside ``/ping``."""
    serving = work / "serving.duckdb"
    urls = distinct_urls(serving, args.urls)
    url_file = CACHE / "workload-urls.txt"
    url_file.write_text("\n".join(urls) + "\n")
    script = CACHE / "workload.lua"
    script.write_text(_LUA % {"urls": url_file.resolve(), "threads": THREADS})
    with served(work) as address:
        for url in urls[:200]:
            httpx.get(f"{address}{url}", timeout=60).raise_for_status()
        ping = _wrk(f"{address}/ping", args.seconds)
        distinct = _wrk(f"{address}/", args.seconds, script=script, label="distinct")
    lines = [
        f"\nPages of the snapshot after run {args.runs + 1} (base and delta), one uvicorn worker, "
        f"wrk -t{THREADS} -c{CONNECTIONS}, {args.seconds} s each, same run:\n",
        "| workload | req/s | / `/ping` | p50 | p99 | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, load in (("`/ping`", ping), (f"distinct: {len(urls):,} URLs", distinct)):
        lines.append(
            f"| {name} | {load.requests_per_second:,.0f} "
            f"| {load.requests_per_second / ping.requests_per_second:.2f} | {load.p50_ms:.1f} ms "
            f"| {load.p99_ms:.1f} ms | {load.errors} |"
        )
    print("\n".join(lines), flush=True)
    return lines


@dataclass(frozen=True)
class LaidOut:
    """A copy of the benchmark warehouse, published and laid out as a base."""

    warehouse: Path
    serving: Path
    published: Published
    base: LayoutBuilt


def laid_out_copy(quotes: int, work: Path) -> LaidOut:
    """The benchmark warehouse of ``quotes`` copied into ``work`` (emptied first), published
    and laid out as a base."""
    source_dir, _ = snapshot_of(quotes, lay_out=False)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    warehouse, serving = work / "warehouse.duckdb", work / "serving.duckdb"
    copy_durably(source_dir / "warehouse.duckdb", warehouse)
    published = publish_snapshot(warehouse, serving, sources=SOURCE_NAMES)
    return LaidOut(warehouse, serving, published, build_quote_layout(serving, base=True))


def publish_run(
    copy: LaidOut, number: int, rewrites: int, run_id: str | None = None
) -> tuple[Published, LayoutBuilt]:
    """Run ``number`` written into the copy's warehouse, published, and laid out as the writer
    does after a publish."""
    _run(copy.warehouse, number, rewrites, run_id)
    published = publish_snapshot(copy.warehouse, copy.serving, sources=SOURCE_NAMES)
    return published, build_quote_layout(copy.serving)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_delta", description=__doc__)
    parser.add_argument("--quotes", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--rewrites", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--urls", type=int, default=30_000)
    args = parser.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    work = CACHE / "publish-delta"
    copy = laid_out_copy(args.quotes, work)
    serving, published, base = copy.serving, copy.published, copy.base
    gb = published.bytes / 1e9
    lines = [
        f"### Publish and layout on {args.quotes:,} quotes ({published.bytes / 2**20:,.0f} MiB "
        f"snapshot)\n",
        f"Base layout: {base.rows:,} quotes in {base.seconds:.1f} s "
        f"({base.seconds / gb:.1f} s/GB; {_layout_bytes(serving) / 2**30:.1f} GiB).\n",
        "| run | quotes | rewrites | publish | layout (since base) | delta quotes "
        "| pairs masked | rows masked | publish + layout | per GB | new base after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print(lines[1], flush=True)
    measured: list[str] = []
    built = base
    for number in range(1, args.runs + 3):
        rewrites = args.rewrites if number == args.runs + 1 else 0
        retry = number == args.runs + 2
        if retry:
            # The run before published with a source failed, and a new base was laid out (as
            # once a delta has grown); the retry resumes it under its run id.
            if not should_compact(built):
                measured = pages(work, args)
            build_quote_layout(serving, base=True)
        run_id = _run_id(number - 1) if retry else None
        published, built = publish_run(copy, number, rewrites, run_id)
        total = published.seconds + built.seconds
        gb = published.bytes / 1e9
        after = "-"
        if should_compact(built):
            after = f"{build_quote_layout(serving, base=True).seconds:.1f} s"
        lines.append(
            f"| {number}{' (retry of ' + str(number - 1) + ', after a new base)' if retry else ''}"
            f" | {built.rows:,} | {rewrites} "
            f"| {published.seconds:.2f} s | {built.seconds:.2f} s ({built.kind}) "
            f"| {built.written:,} | {built.masked:,} | {built.masked_rows:,} | {total:.2f} s "
            f"| {total / gb:.2f} s/GB "
            f"| {after} |"
        )
        print(lines[-1], flush=True)
    body = "\n".join([*lines, *measured])
    shutil.rmtree(work, ignore_errors=True)
    append_results(
        "Publish and quote layout deltas (issue 13)",
        " ".join(["python -m bench.publish_delta", *(argv if argv is not None else sys.argv[1:])]),
        body,
    )


if __name__ == "__main__":
    main()
