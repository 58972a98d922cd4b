"""Interactive speed on a large snapshot: ``/api/v1/data`` workloads beside ``/ping``, same run.

    python -m bench.api_workload [--quotes 10000000] [--seconds 10] [--urls 30000]
        [--costs-only | --after-publish N]

The snapshot is the benchmark raw zone of ``--quotes`` rebuilt (``bench.rebuild.raw_zone``;
generating 10M takes ~11 min once), published again by this Kasparro, and its quote layout built
(timed). One uvicorn worker, wrk
-t2 -c32 on 127.0.0.1, each workload for ``--seconds``:

* ``/ping``, the baseline;
* **distinct**: ``--urls`` different URLs (newest-first pages, ``coin_id=``, ``symbol=`` and
  next-page cursors of each), rotated by a Lua script so that no URL comes back within a run
  (more URLs than requests): the response cache cannot help; then again by a server started
  with the snapshot's quote layout moved aside (every page read from the snapshot);
* **popular**: ``/api/v1/data?limit=100`` repeated (kept since the publish), and the same with
  its ETag in ``If-None-Match`` (304).

Then the costliest requests a client without a token can send, one at a time, each URL new to
the cache: the server time each took (``server-timing``), the most of three. ``--costs-only``
measures just those, beside ``/ping``'s (no wrk, no publish timing: a quick check while changing
them). ``--after-publish N`` measures just the first request after the server starts and after
each of N publishes of the same warehouse.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

from bench.api import CONNECTIONS, THREADS, Load, _wrk, served
from bench.harness import CACHE, append_results
from bench.rebuild import raw_zone
from bench.scaling import measure_publish
from flows.rebuild import rebuild_from_raw
from flows.sources import SOURCE_NAMES
from store.connection import open_read_only
from store.quote_layout import layout_directory
from store.quote_layout_build import LayoutBuilt, build_quote_layout
from store.snapshot import publish_snapshot
from web.controllers.data import encode_cursor

SEED = 13
_LUA = """
local paths = {}
for line in io.lines("%(urls)s") do paths[#paths + 1] = line end
local threads = 0
function setup(thread)
  thread:set("start", threads)
  threads = threads + 1
end
function init(args)
  -- Each thread walks its own stretch of the list.
  counter = start * math.floor(#paths / %(threads)d)
end
function request()
  counter = counter + 1
  if counter > #paths then counter = 1 end
  return wrk.format("GET", paths[counter])
end
"""


def distinct_urls(serving: Path, count: int) -> list[str]:
    """Newest-first pages at cursors anywhere in the table, and first and next pages of coins and
    symbols, in equal parts, shuffled."""
    rng = random.Random(SEED)
    con = open_read_only(serving)
    try:
        keys = con.execute(
            f"""
            with picked as (
                select observed_at, coin_id, source
                from quotes using sample reservoir({count} rows) repeatable ({SEED})
            )
            select p.observed_at, p.coin_id, p.source, c.symbol
            from picked as p
            join coins as c using (coin_id)
            """
        ).fetchall()
    finally:
        con.close()
    urls = {"/api/v1/data?limit=100"}
    for observed_at, coin_id, source, symbol in keys:
        cursor = encode_cursor(observed_at, coin_id, source, "-observed_at")
        coin, sym = quote(coin_id, safe=""), quote(symbol, safe="")
        urls.add(
            rng.choice(
                [
                    f"/api/v1/data?limit=100&cursor={cursor}",
                    f"/api/v1/data?limit=100&coin_id={coin}",
                    f"/api/v1/data?limit=100&coin_id={coin}&cursor={cursor}",
                    f"/api/v1/data?limit=100&symbol={sym}",
                    f"/api/v1/data?limit=100&symbol={sym}&cursor={cursor}",
                ]
            )
        )
    ordered = sorted(urls)
    rng.shuffle(ordered)
    return ordered


def costly_urls(serving: Path) -> list[str]:
    """What a client without a token can ask that costs the most: the widest pages, the deepest
    offset, the oldest end, unbounded ranges, sparse filters, cursors at the far end."""
    con = open_read_only(serving)
    try:
        oldest = con.execute(
            "select observed_at, coin_id, source from quotes order by observed_at limit 1"
        ).fetchall()[0]
        busiest_symbol = con.execute(
            "select symbol from coins group by symbol order by count(*) desc limit 1"
        ).fetchall()[0][0]
        coin = con.execute("select coin_id from coins order by coin_id limit 1").fetchall()[0][0]
    finally:
        con.close()
    far = encode_cursor(oldest[0], oldest[1], oldest[2], "-observed_at")
    return [
        "/api/v1/data?limit=1000",
        "/api/v1/data?limit=1000&offset=1000",
        "/api/v1/data?limit=1000&sort=observed_at",
        "/api/v1/data?limit=1000&start=2000-01-01&end=2100-01-01",
        "/api/v1/data?limit=1000&source=csv",
        f"/api/v1/data?limit=1000&symbol={quote(busiest_symbol, safe='')}",
        f"/api/v1/data?limit=1000&coin_id={quote(coin, safe='')}",
        f"/api/v1/data?limit=1000&coin_id={quote(coin, safe='')}&sort=observed_at",
        "/api/v1/data?limit=1000&coin_id=no-such-coin",
        f"/api/v1/data?limit=1000&cursor={far}",
        "/api/v1/coins?limit=1000&offset=5000",
        "/api/v1/stats",
    ]


def server_ms(base: str, url: str, attempts: int = 3) -> tuple[float, int]:
    """The most server time of ``attempts`` requests of ``url``, each made new to the response
    cache by a smaller limit (the same work), and the status they answered (a refusal costs
    server time too)."""
    times, statuses = [], set()
    for n in range(attempts):
        found = re.search(r"limit=(\d+)", url)
        varied = url
        if found is not None:
            varied = url.replace(found.group(0), f"limit={int(found.group(1)) - n}")
        response = httpx.get(f"{base}{varied}", timeout=60)
        if response.status_code >= 500:
            response.raise_for_status()
        statuses.add(response.status_code)
        timing = response.headers["server-timing"]
        times.append(float(timing.split("dur=")[1]))
    return max(times), max(statuses)


def _cost_rows(costs: list[tuple[str, tuple[float, int]]]) -> list[str]:
    return [
        f"| `{url[:90]}` | {ms:.1f} ms |{'' if status == 200 else f' {status}'} |"
        for url, (ms, status) in costs
    ]


def snapshot_of(quotes: int, *, lay_out: bool = True) -> tuple[Path, LayoutBuilt | None]:
    data_dir = raw_zone(quotes)
    warehouse = data_dir / "warehouse.duckdb"
    if not warehouse.exists() or warehouse.stat().st_size < 2**30 * quotes / 10_000_000:
        rebuild_from_raw(data_dir, {}, recover=True)
    # Published by this Kasparro: the serving tables are this version's; and its layout built,
    # as the writer does after each publish.
    published = publish_snapshot(warehouse, data_dir / "serving.duckdb", sources=SOURCE_NAMES)
    return data_dir, build_quote_layout(published.path, base=True) if lay_out else None


@contextmanager
def without_layout(serving: Path) -> Iterator[None]:
    """The snapshot's quote layout moved aside: a server started inside reads every page from
    the snapshot, as before the layout (and as in the seconds between a publish and its
    layout)."""
    directory = layout_directory(serving)
    aside = directory.with_name(directory.name + ".aside")
    directory.rename(aside)
    try:
        yield
    finally:
        aside.rename(directory)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_workload", description=__doc__)
    parser.add_argument("--quotes", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--urls", type=int, default=30_000)
    parser.add_argument("--costs-only", action="store_true")
    parser.add_argument(
        "--after-publish",
        type=int,
        metavar="N",
        help="measure only the first request after the start and after each of N publishes",
    )
    args = parser.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    data_dir, layout = snapshot_of(args.quotes)
    serving = data_dir / "serving.duckdb"
    assert layout is not None
    layout_bytes = sum(
        f.stat().st_size for f in layout_directory(serving).rglob("*") if f.is_file()
    )
    print(f"layout {layout_bytes:,} bytes built in {layout.seconds:.1f} s", flush=True)
    if args.costs_only:
        print(costs_table(data_dir))
        return
    if args.after_publish:
        print(first_requests(data_dir, args.after_publish))
        return
    nbytes, publish = measure_publish(data_dir / "warehouse.duckdb", repeat=3)
    print(f"publish {nbytes:,} bytes: {publish}", flush=True)
    urls = distinct_urls(serving, args.urls)
    url_file = CACHE / "workload-urls.txt"
    url_file.write_text("\n".join(urls) + "\n")
    script = CACHE / "workload.lua"
    script.write_text(_LUA % {"urls": url_file.resolve(), "threads": THREADS})
    popular = "/api/v1/data?limit=100"
    with served(data_dir) as base:
        httpx.get(f"{base}{popular}", timeout=60).raise_for_status()
        for url in urls[:200]:  # the snapshot's pages in the OS cache, as a serving box has
            httpx.get(f"{base}{url}", timeout=60).raise_for_status()
        etag = httpx.get(f"{base}{popular}").headers["etag"]
        ping = _wrk(f"{base}/ping", args.seconds)
        print(ping, flush=True)
        distinct = _wrk(f"{base}/", args.seconds, script=script, label="distinct")
        print(distinct, flush=True)
        repeated = _wrk(f"{base}{popular}", args.seconds)
        print(repeated, flush=True)
        revalidated = _wrk_with_etag(f"{base}{popular}", args.seconds, etag)
        print(revalidated, flush=True)
        costs = [(url, server_ms(base, url)) for url in costly_urls(serving)]
    with without_layout(serving), served(data_dir) as base:
        for url in urls[:200]:
            httpx.get(f"{base}{url}", timeout=60).raise_for_status()
        unlaid = _wrk(f"{base}/", args.seconds, script=script, label="distinct, no layout")
        print(unlaid, flush=True)
    per_url = distinct.requests_per_second * args.seconds / len(urls)
    lines = [
        f"### API on {args.quotes:,} quotes (one uvicorn worker, wrk -t{THREADS} "
        f"-c{CONNECTIONS}, {args.seconds} s each, same run)\n",
        f"Snapshot {serving.stat().st_size / 2**20:,.0f} MiB. Publish of the "
        f"{nbytes / 2**20:,.0f} MiB warehouse (copy, serving tables, fsync): {publish} = "
        f"{publish.median / (nbytes / 1e9):.2f} s/GB. Then its quote layout "
        f"({layout_bytes / 2**20:,.0f} MiB): built in {layout.seconds:.1f} s "
        f"= {layout.seconds / (nbytes / 1e9):.1f} s per GB of snapshot.\n",
        "| workload | req/s | / `/ping` | p50 | p99 | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, load in (
        ("`/ping`", ping),
        (f"distinct: {len(urls):,} URLs ({per_url:.2f} requests per URL)", distinct),
        ("distinct, same URLs, no layout (read from the snapshot)", unlaid),
        (f"popular, repeated: `{popular}`", repeated),
        ("popular with its ETag (304)", revalidated),
    ):
        lines.append(
            f"| {name} | {load.requests_per_second:,.0f} "
            f"| {load.requests_per_second / ping.requests_per_second:.2f} | {load.p50_ms:.1f} ms "
            f"| {load.p99_ms:.1f} ms | {load.errors} |"
        )
    lines += [
        "\nCostliest requests without a token (server time, most of 3, each new to the cache):\n",
        "| request | server time | status |",
        "|---|---:|---:|",
        *_cost_rows(costs),
        f"\nMedian of those: {statistics.median(ms for _, (ms, _) in costs):.1f} ms.",
    ]
    body = "\n".join(lines)
    print(body)
    append_results(
        "API workloads (issue 13)",
        " ".join(["python -m bench.api_workload", *(argv if argv is not None else sys.argv[1:])]),
        body,
    )


def costs_table(data_dir: Path) -> str:
    """The costliest requests' server times beside ``/ping``'s, one server, nothing else."""
    with served(data_dir) as base:
        urls = costly_urls(data_dir / "serving.duckdb")
        for url in urls:  # the snapshot's pages in the OS cache, as a serving box has
            httpx.get(f"{base}{url}", timeout=60)
        ping, _ = server_ms(base, "/ping", attempts=20)
        costs = [(url, server_ms(base, url)) for url in urls]
    return "\n".join(
        [
            "| request | server time | status |",
            "|---|---:|---:|",
            f"| `/ping` (most of 20) | {ping:.1f} ms | |",
            *_cost_rows(costs),
        ]
    )


FIRST_URL = "/api/v1/data?limit={limit}"
"""The first request after a start or a publish (the dashboard's first; a new limit each time,
so that no response cache answers it)."""


def first_requests(data_dir: Path, publishes: int, pause: float = 2.0) -> str:
    """Server time of the first request after the server starts, then after each of
    ``publishes`` publishes of the same warehouse, each ``pause`` seconds after it (as a client
    that comes after a load, not during it)."""
    serving, warehouse = data_dir / "serving.duckdb", data_dir / "warehouse.duckdb"
    with served(data_dir) as base:
        time.sleep(pause)
        started, _ = server_ms(base, FIRST_URL.format(limit=100), attempts=1)
        after = []
        for n in range(publishes):
            publish_snapshot(warehouse, serving, sources=SOURCE_NAMES)
            time.sleep(pause)
            after.append(server_ms(base, FIRST_URL.format(limit=99 - n), attempts=1)[0])
    return (
        f"first request after the server started: {started:.1f} ms; "
        f"after each of {publishes} publishes: "
        + ", ".join(f"{ms:.1f}" for ms in after)
        + f" ms (median {statistics.median(after):.1f})"
    )


def _wrk_with_etag(url: str, seconds: int, etag: str) -> Load:
    script = CACHE / "etag.lua"
    script.write_text(f"wrk.headers['If-None-Match'] = '{etag}'\n")
    return _wrk(url, seconds, script=script, label="etag")


if __name__ == "__main__":
    main()
