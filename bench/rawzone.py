"""Write a realistic raw zone directly: hourly captures of a ~10k-asset market by the three APIs.

    python -m bench.rawzone DIR --quotes 1000000 [--assets 10000]

A real history is many snapshots of a few thousand listed assets, not one snapshot of a million:
each capture (one run) lists every asset a source covers, priced afresh, pages as the APIs serve
them (CoinGecko 250 a page, CoinCap 2000, CoinPaprika one body), written through the raw zone's
own writer with the records' JSON text. Deterministic for given arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.payloads import (
    Record,
    Universe,
    build_universe,
    coincap_records,
    coingecko_records,
    coinpaprika_records,
    epoch_ms,
    paginate,
)
from bench.synthetic import COVERAGE
from flows import raw_zone
from flows.sources import coincap, coingecko, coinpaprika
from flows.sources.http import Page
from flows.sources.records import SplitBody
from flows.sources.spec import Endpoint

SEED = 11
FIRST_CAPTURE = datetime(2026, 10, 1, tzinfo=UTC)
PAGE_SIZES = {"coingecko": 250, "coincap": 2000}


def _page(
    source: str,
    *,
    endpoint: Endpoint,
    number: int | None,
    records: list[str],
    envelope: str,
    moment: datetime,
) -> Page:
    return Page(
        source=source,
        endpoint=endpoint,
        page=number,
        url=f"https://bench.invalid/{source}/{endpoint.path}?page={number}",
        status=200,
        fetched_at=moment,
        body=b"",
        split=SplitBody(records, envelope, frozenset()),
        stored_sha256="0" * 64,
    )


def _pages(universe: Universe, moment: datetime) -> Iterator[Page]:
    def texts(records: Iterator[Record]) -> list[str]:
        return [json.dumps(r) for r in records]

    gecko = texts(coingecko_records(universe, moment=moment, seed=SEED))
    for n, chunk in enumerate(paginate(gecko, PAGE_SIZES["coingecko"]), start=1):
        yield _page(
            "coingecko", endpoint=coingecko.MARKETS, number=n, records=chunk, envelope="[]",
            moment=moment,
        )  # fmt: skip
    yield _page(
        "coinpaprika",
        endpoint=coinpaprika.TICKERS,
        number=None,
        records=texts(coinpaprika_records(universe, moment=moment, seed=SEED)),
        envelope="[]",
        moment=moment,
    )
    cap = texts(coincap_records(universe, moment=moment, seed=SEED))
    envelope = json.dumps({"data": [], "timestamp": epoch_ms(moment)})
    for n, chunk in enumerate(paginate(cap, PAGE_SIZES["coincap"]), start=1):
        yield _page(
            "coincap", endpoint=coincap.ASSETS, number=n, records=chunk, envelope=envelope,
            moment=moment,
        )  # fmt: skip


def write_raw_zone(
    raw_root: Path,
    *,
    quotes: int,
    assets: int = 10_000,
    first_capture: datetime = FIRST_CAPTURE,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write about ``quotes`` records as hourly runs from ``first_capture``; return the run ids,
    oldest first."""
    universe = build_universe(synthetic=assets, seed=SEED, as_of=FIRST_CAPTURE, coverage=COVERAGE)
    per_run = sum(1 for s in ("coingecko", "coinpaprika", "coincap") for _ in universe.listed_on(s))
    run_ids = []
    written = 0
    for hour in range(math.ceil(quotes / per_run)):
        moment = first_capture + timedelta(hours=hour)
        run_id = f"{moment:%Y%m%dT%H%M%SZ}-bench{hour:05d}"
        for page in _pages(universe, moment):
            written += raw_zone.write_page(raw_root, run_id, moment, page).records
        run_ids.append(run_id)
        if progress:
            progress(written)
    return run_ids


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rawzone", description=__doc__)
    parser.add_argument("dir", type=Path, help="the data dir; the raw zone goes to DIR/raw")
    parser.add_argument("--quotes", type=int, default=1_000_000)
    parser.add_argument("--assets", type=int, default=10_000)
    args = parser.parse_args(argv)
    clock = time.perf_counter()
    runs = write_raw_zone(args.dir / "raw", quotes=args.quotes, assets=args.assets)
    print(
        f"{len(runs)} runs written under {args.dir / 'raw'} in {time.perf_counter() - clock:.0f} s"
    )


if __name__ == "__main__":
    main()
