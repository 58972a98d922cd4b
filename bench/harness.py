"""What every benchmark shares: repeated timing, peak memory, and the results log.

Figures are medians of ``repeat`` runs with min and max, always printed beside a baseline measured
in the same process run, as a ratio: these machines are noisy (2 cores).
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

RESULTS = Path("docs/benchmarks.md")
CACHE = Path(".bench-cache")
"""Generated inputs, reused across runs (git-ignored)."""


@dataclass(frozen=True)
class Timing:
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def __str__(self) -> str:
        return f"{self.median:.3f} s (min {min(self.seconds):.3f}, max {max(self.seconds):.3f})"


def timed(
    work: Callable[[], object], *, repeat: int, setup: Callable[[], object] | None = None
) -> Timing:
    """Run ``setup`` (untimed) then ``work`` (timed), ``repeat`` times."""
    seconds = []
    for _ in range(repeat):
        if setup:
            setup()
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return Timing(seconds)


def environment() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    packages = ["duckdb", "polars", "prefect", "litestar"]
    if find_spec("dlt"):
        packages.append("dlt")
    versions = ", ".join(f"{p} {version(p)}" for p in packages)
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{commit}`, {versions}, Python "
        f"{platform.python_version()}, {platform.machine()}"
    )


def append_results(title: str, command: str, body: str) -> None:
    """Append one dated section to docs/benchmarks.md (results are never edited)."""
    section = f"\n## {title}\n\n{environment()}\n\n```console\n{command}\n```\n\n{body.strip()}\n"
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(section)
    print(section)
