"""Response schemas of the HTTP API (msgspec Structs: typed, fast, in the OpenAPI document).

Money is a string holding the exact decimal (``"23197.5"``, ``"0.000000001258"``): JSON numbers
would round it in most clients. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec


class ErrorBody(msgspec.Struct):
    status_code: int
    detail: str
    request_id: str | None = None
    extra: dict[str, Any] | None = None


class SnapshotInfo(msgspec.Struct):
    path: str
    reachable: bool
    published_at: datetime | None = None
    bytes: int | None = None


class LastRun(msgspec.Struct):
    run_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    age_seconds: float
    error: str | None = None


class Health(msgspec.Struct):
    status: Literal["ok", "degraded", "unavailable"]
    snapshot: SnapshotInfo
    last_run: LastRun | None = None


class Coin(msgspec.Struct):
    coin_id: str
    symbol: str
    name: str
    first_seen_at: datetime
    sources: list[str]


class CoinPage(msgspec.Struct):
    items: list[Coin]
    total: int
    limit: int
    offset: int


class SourceId(msgspec.Struct):
    source: str
    source_asset_id: str
    method: str
    confidence: float
    evidence: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime


class CoinDetail(msgspec.Struct):
    coin_id: str
    symbol: str
    name: str
    first_seen_at: datetime
    source_ids: list[SourceId]


class Quote(msgspec.Struct):
    coin_id: str
    source: str
    source_asset_id: str
    observed_at: datetime
    symbol: str
    name: str
    price_usd: str
    market_cap_usd: str | None
    volume_24h_usd: str | None
    pct_change_24h: float | None
    circulating_supply: float | None
    total_supply: float | None
    max_supply: float | None
    rank: int | None
    run_id: str


class QuotePage(msgspec.Struct):
    items: list[Quote]
    limit: int
    next_cursor: str | None
    """Pass as ``cursor`` to get the next page; null on the last page."""


class SourceStats(msgspec.Struct):
    source: str
    quotes: int
    coins: int
    quarantined: int
    runs: int | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    last_seconds: float | None
    avg_seconds: float | None


class Totals(msgspec.Struct):
    coins: int
    quotes: int
    quarantined: int
    runs: int


class Stats(msgspec.Struct):
    totals: Totals
    sources: list[SourceStats]


class RunSource(msgspec.Struct):
    source: str
    status: str
    requests: int
    fetched: int
    valid: int
    quarantined: int
    duplicates: int
    inserted: int
    updated: int
    unchanged: int
    extract_seconds: float | None
    transform_seconds: float | None
    load_seconds: float | None
    error: str | None


class Run(msgspec.Struct):
    run_id: str
    flow_run_id: str | None
    mode: str
    """snapshot (the listings) or history (a daily-history backfill)."""
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    sources: list[RunSource]
    replay_dir: str | None
    error: str | None


class RunPage(msgspec.Struct):
    items: list[Run]
    limit: int
    offset: int


class SourceDelta(msgspec.Struct):
    source: str
    base_status: str | None
    head_status: str | None
    base: dict[str, int]
    head: dict[str, int]
    delta: dict[str, int]


class CoinPrice(msgspec.Struct):
    coin_id: str
    symbol: str
    name: str
    price: float


class PriceChange(msgspec.Struct):
    coin_id: str
    symbol: str
    name: str
    base_price: float
    head_price: float
    pct_change: float


class Bucket(msgspec.Struct):
    low: float | None
    """Inclusive lower bound in percent; null: no lower bound."""
    high: float | None
    """Exclusive upper bound in percent; null: no upper bound."""
    coins: int


class Anomaly(msgspec.Struct):
    kind: str
    subject: str
    detail: str


class RunComparison(msgspec.Struct):
    base: str
    head: str
    sources: list[SourceDelta]
    coins_added: list[CoinPrice]
    coins_removed: list[CoinPrice]
    price_change_distribution: dict[str, float | int | None]
    """Percent change of the median price across sources, for coins both runs saw."""
    price_change_buckets: list[Bucket]
    top_movers: list[PriceChange]
    anomalies: list[Anomaly]
