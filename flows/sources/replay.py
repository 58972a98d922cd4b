"""Replaying and recording source responses.

Layout of a replay directory (``--replay DIR``), one file per request, bodies exactly as served::

    DIR/coingecko/coins_markets/page-0001.json   page N of CoinGecko's markets endpoint
    DIR/coinpaprika/tickers.json                  CoinPaprika's (unpaged) tickers
    DIR/coincap/assets/page-0001.json             page N at the configured limit
    DIR/csv/*.csv                                 legacy CSV files
    DIR/coingecko/coins_market_chart_range/<id>.json   one coin's history (per-asset endpoints)
    DIR/coinpaprika/tickers_historical/<id>.json

A request with no recorded file gets an empty last page, or a 404 for an unpaged endpoint. The
replay is an ``httpx.MockTransport``: replays go through exactly the client code live runs use.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

import httpx

from flows.errors import ReplayError
from flows.sources.spec import SourceSpec

logger = logging.getLogger(__name__)


def replay_transport(replay_dir: Path, spec: SourceSpec, *more: SourceSpec) -> httpx.MockTransport:
    """Serve ``replay_dir/<source>`` for the endpoints of ``spec`` (and of ``more`` specs of the
    same source, e.g. its history endpoints)."""
    source_dir = replay_dir / spec.name
    endpoints = [e for s in (spec, *more) for e in s.endpoints]

    def handle(request: httpx.Request) -> httpx.Response:
        for endpoint in endpoints:
            if match := endpoint.path_pattern().search(request.url.path):
                query = dict(request.url.params)
                page = endpoint.page_of(query) if endpoint.page_of else None
                subject = unquote(match["subject"]) if endpoint.per_subject else None
                recorded = source_dir / endpoint.replay_file(page, subject)
                if recorded.is_file():
                    return httpx.Response(
                        200,
                        content=recorded.read_bytes(),
                        headers={"content-type": "application/json"},
                    )
                if endpoint.paged:
                    return httpx.Response(
                        200,
                        content=endpoint.empty_body,
                        headers={"content-type": "application/json"},
                    )
                return httpx.Response(404, json={"error": f"no recording at {recorded}"})
        return httpx.Response(
            404, json={"error": f"{spec.name} has no endpoint {request.url.path}"}
        )

    return httpx.MockTransport(handle)


def check_replay_dir(replay_dir: Path) -> None:
    if not replay_dir.is_dir():
        raise ReplayError(
            f"replay directory {replay_dir} does not exist; record one with `kasparro record DIR` "
            "or use the bundled data/demo"
        )


def write_recording(path: Path, body: bytes) -> None:
    """Write one recorded body atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    os.replace(tmp, path)


def copy_csv_files(files: Iterable[Path], replay_dir: Path) -> int:
    target = replay_dir / "csv"
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for file in files:
        shutil.copyfile(file, target / file.name)
        count += 1
    return count
