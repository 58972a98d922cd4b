"""API throughput and latency with wrk: one uvicorn worker, 32 connections, on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CONNECTIONS = 32
THREADS = 2


@dataclass(frozen=True)
class Load:
    path: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _millis(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _wrk(url: str, seconds: int, script: Path | None = None, label: str | None = None) -> Load:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The latency distribution's own lines ("     50%   11.80ms"), not a percentage ending in
    # 50% elsewhere in the report.
    p50 = _millis(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _millis(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (int(timeouts.group(1)) if timeouts else 0)
    path = label if label is not None else url.split(":", 2)[2].split("/", 1)[1]
    return Load(path, rps, p50, p99, errors)


KASPARRO = "web.app:create_app"
NAIVE = "bench.naive_api:create_app"
"""The baseline: a naive Litestar + DuckDB endpoint over the same snapshot (bench.naive_api)."""


@contextmanager
def served(data_dir: Path, app: str = KASPARRO) -> Iterator[str]:
    """Serve ``data_dir``'s snapshot with ``app`` (a uvicorn factory, one worker); yield its
    base URL."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: `apt install wrk` (Debian) to measure the API")
    port = _free_port()
    env = {
        **os.environ,
        "KASPARRO_DATA_DIR": str(data_dir),
        "KASPARRO_NAIVE_SNAPSHOT": str(data_dir / "serving.duckdb"),
        # One client (wrk) makes every request: the per-client limit would measure itself.
        "KASPARRO_API_RATE_LIMIT_PER_MINUTE": "0",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", app]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/ping").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure_api(data_dir: Path, paths: list[str], seconds: int, app: str = KASPARRO) -> list[Load]:
    """Serve ``data_dir``'s snapshot with ``app`` (a uvicorn factory) and load each path in
    turn."""
    with served(data_dir, app) as base:
        for path in paths:  # warm the snapshot and each query once
            httpx.get(f"{base}{path}", timeout=60).raise_for_status()
        return [_wrk(f"{base}{path}", seconds) for path in paths]
