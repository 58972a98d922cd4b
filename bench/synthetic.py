"""Write a synthetic replay recording of about N quotes across the three APIs.

    python -m bench.synthetic DIR --quotes 1000000 [--moment 2026-11-24T12:00:00Z]

Pages follow the replay layout at the page sizes the benchmarks configure (CoinGecko 250,
CoinCap 2000). A second ``--moment`` writes the same universe as seen later (every price
re-observed), for incremental-load measurements.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bench.payloads import (
    Source,
    Universe,
    build_universe,
    coincap_pages,
    coincap_records,
    coingecko_records,
    coinpaprika_records,
    json_body,
    json_pages,
)

SEED = 5
COINGECKO_PER_PAGE = 250
COINCAP_LIMIT = 2000
COVERAGE: dict[Source, float] = {"coingecko": 0.9, "coinpaprika": 0.9, "coincap": 0.9}


def universe_for(quotes: int, moment: datetime) -> Universe:
    # Each synthetic asset is listed by ~2.7 of the 3 sources.
    return build_universe(synthetic=round(quotes / 2.7), seed=SEED, as_of=moment, coverage=COVERAGE)


def write_recording(directory: Path, universe: Universe, moment: datetime) -> int:
    """Write the three APIs' responses at ``moment``; return the number of records."""
    written = 0
    gecko = directory / "coingecko" / "coins_markets"
    gecko.mkdir(parents=True, exist_ok=True)
    records = list(coingecko_records(universe, moment=moment, seed=SEED))
    written += len(records)
    for n, body in enumerate(json_pages(records, COINGECKO_PER_PAGE), start=1):
        (gecko / f"page-{n:04d}.json").write_bytes(body)
    paprika = list(coinpaprika_records(universe, moment=moment, seed=SEED))
    written += len(paprika)
    (directory / "coinpaprika").mkdir(parents=True, exist_ok=True)
    (directory / "coinpaprika" / "tickers.json").write_bytes(json_body(paprika))
    cap = directory / "coincap" / "assets"
    cap.mkdir(parents=True, exist_ok=True)
    assets = list(coincap_records(universe, moment=moment, seed=SEED))
    written += len(assets)
    for n, body in enumerate(coincap_pages(assets, COINCAP_LIMIT, moment), start=1):
        (cap / f"page-{n:04d}.json").write_bytes(body)
    return written


def bench_environment(pages: int) -> dict[str, str]:
    """Settings that let a replay of this recording read every page, unthrottled."""
    return {
        "KASPARRO_COINGECKO_MAX_PAGES": str(pages),
        "KASPARRO_COINCAP_PAGE_SIZE": str(COINCAP_LIMIT),
        "KASPARRO_COINCAP_MAX_PAGES": str(pages),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--quotes", type=int, default=100_000)
    parser.add_argument("--moment", default="2026-11-24T12:00:00+00:00")
    args = parser.parse_args(argv)
    moment = datetime.fromisoformat(args.moment)
    records = write_recording(args.dir, universe_for(args.quotes, moment), moment)
    print(f"{records} records written under {args.dir}")


if __name__ == "__main__":
    main()
