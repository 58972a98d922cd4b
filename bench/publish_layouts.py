"""Publishing with the serving tables against the bare copy, alternated on one warehouse.

python -m bench.publish_layouts WAREHOUSE [--repeat 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.harness import CACHE, timed
from flows.sources import SOURCE_NAMES
from store.snapshot import copy_durably, publish_snapshot


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_layouts", description=__doc__)
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    target = CACHE / "publish-target.duckdb"
    size = args.warehouse.stat().st_size
    copies, publishes = [], []
    for _ in range(args.repeat):
        copies += timed(
            lambda: copy_durably(args.warehouse, target),
            setup=lambda: target.unlink(missing_ok=True),
            repeat=1,
        ).seconds
        publishes += timed(
            lambda: publish_snapshot(args.warehouse, target, sources=SOURCE_NAMES), repeat=1
        ).seconds
    target.unlink(missing_ok=True)
    for name, seconds in (("copy + fsync", copies), ("publish", publishes)):
        median = sorted(seconds)[len(seconds) // 2]
        print(
            f"| {name} | {median:.3f} s (min {min(seconds):.3f}, max {max(seconds):.3f}) "
            f"| {median / (size / 1e9):.2f} s/GB |"
        )


if __name__ == "__main__":
    main()
