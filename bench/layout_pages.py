"""The server time of one page read from the quote layout, by kind of page, in process.

    python -m bench.layout_pages [--quotes 10000000] [--runs 4]

A copy of the benchmark warehouse of ``--quotes`` is published and laid out as a base, then
``--runs`` runs append a quote to every (coin, source) pair, each published and laid out as a
delta (as ``bench.publish_delta`` does). Every URL of the distinct-URL workload
(``bench.api_workload``) is then read through :func:`store.quote_pages.layout_page`, timed,
and the times are summed up by kind: what wrk's figures are made of, without the HTTP around it.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from bench.api_workload import distinct_urls
from bench.harness import CACHE, append_results
from bench.publish_delta import laid_out_copy, publish_run
from store.connection import open_read_only
from store.quote_layout import open_quote_layout
from store.quote_pages import QuoteFilter, layout_page
from store.serving import coin_index
from store.snapshot import file_identity
from web.controllers.data import decode_cursor


def _kind(query: dict[str, str]) -> str:
    chosen = "a coin" if "coin_id" in query else "a symbol" if "symbol" in query else "every coin"
    return chosen + (", at a cursor" if "cursor" in query else "")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.layout_pages", description=__doc__)
    parser.add_argument("--quotes", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--urls", type=int, default=30_000)
    args = parser.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    work = CACHE / "layout-pages"
    try:
        copy = laid_out_copy(args.quotes, work)
        serving = copy.serving
        for number in range(1, args.runs + 1):
            publish_run(copy, number, 0)
        layout = open_quote_layout(serving, file_identity(serving))
        assert layout is not None
        con = open_read_only(serving)
        try:
            coins = coin_index(con)
        finally:
            con.close()
        urls = distinct_urls(serving, args.urls)
        gc.collect()
        gc.freeze()  # as the API does once a layout is open (web.versioned)
        times: dict[str, list[float]] = {}
        for url in urls:
            query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            after = decode_cursor(query["cursor"], "-observed_at") if "cursor" in query else None
            flt = QuoteFilter(coin_id=query.get("coin_id"), symbol=query.get("symbol"), after=after)
            clock = time.perf_counter()
            layout_page(layout, flt, limit=100, offset=0, coins=coins)
            times.setdefault(_kind(query), []).append((time.perf_counter() - clock) * 1e6)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"{len(urls):,} distinct pages of 100 quotes over a base and {args.runs} runs' delta "
        f"({layout.quotes:,} quotes), each read once through `layout_page`:\n",
        "| page of | pages | mean | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, found in sorted(times.items()):
        found.sort()
        lines.append(
            f"| {kind} | {len(found):,} | {statistics.mean(found):.0f} us "
            f"| {found[len(found) // 2]:.0f} us | {found[int(len(found) * 0.99)]:.0f} us "
            f"| {found[-1]:.0f} us |"
        )
    print("\n".join(lines), flush=True)
    append_results(
        "Layout pages in process (issue 13)",
        " ".join(["python -m bench.layout_pages", *(argv if argv is not None else sys.argv[1:])]),
        "\n".join(lines),
    )


if __name__ == "__main__":
    main()
