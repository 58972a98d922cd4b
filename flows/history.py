"""Daily history backfill (``kasparro ingest --history``), resumable per (source, coin).

Each coin's checkpoint (stream ``history:<source asset id>``) is the last complete UTC day
loaded; the next backfill asks only for the days after it, up to yesterday (UTC): days already
stored are never fetched again, and the current, incomplete day never loaded. A coin backfilled
for the first time reaches back ``KASPARRO_HISTORY_DAYS`` days.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from flows import raw_zone
from flows.extract import Extracted, page_failure
from flows.sources import ApiSource
from flows.sources.api import HistoryRequest
from flows.sources.replay import replay_transport
from store import queries, runs

logger = logging.getLogger(__name__)

STREAM = "history:"


def plan_history(
    con: duckdb.DuckDBPyConnection,
    source: str,
    coins: list[str],
    *,
    today: date,
    days: int,
) -> tuple[list[HistoryRequest], list[str]]:
    """The requests a backfill of ``coins`` makes on ``source``, and notes on coins it skips."""
    last_complete = today - timedelta(days=1)
    assets = queries.source_assets(con, source, coins)
    loaded = runs.checkpoints_of(con, source, prefix=STREAM)
    notes = [
        f"{coin} has no {source} asset yet (run a snapshot ingest first); not backfilled"
        for coin in sorted(set(coins) - set(assets["coin_id"].to_list()))
    ]
    requests = []
    for asset, symbol, name in assets.select("source_asset_id", "symbol", "name").iter_rows():
        done = loaded.get(STREAM + asset)
        start = date.fromisoformat(done) + timedelta(days=1) if done else today - timedelta(days)
        if start > last_complete:
            logger.info("%s %s: history is complete up to %s", source, asset, done)
            continue
        requests.append(HistoryRequest(asset, symbol, name, start, last_complete))
    return requests, notes


def extract_history(
    source: ApiSource[Any],
    requests: list[HistoryRequest],
    *,
    raw_root: Path,
    run_id: str,
    started_at: datetime,
    replay_dir: Path | None = None,
) -> Extracted:
    """Fetch each request's days into the raw zone; checkpoints cover what was asked for."""
    assert source.history is not None
    clock = time.perf_counter()
    settings = source.settings_type()
    transport = (
        replay_transport(replay_dir, source.spec, source.history.spec) if replay_dir else None
    )
    http = source.open(
        settings, transport=transport, replay=replay_dir is not None, rate_limit=replay_dir is None
    )
    out = Extracted(source.spec.name)
    try:
        for request, page in zip(
            requests, source.history.pages(http, settings, requests), strict=True
        ):
            raw = raw_zone.write_page(raw_root, run_id, started_at, page)
            out.keep(raw, page)
            if page.shape_error:
                raise page_failure(page, raw.relative)
            out.checkpoints[STREAM + request.source_asset_id] = request.end.isoformat()
    finally:
        out.requests = http.requests
        out.seconds = time.perf_counter() - clock
        http.client.close()
    return out
