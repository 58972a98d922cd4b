"""Response schemas of the HTTP API (msgspec Structs: typed, fast, in the OpenAPI document).

Money is a string holding the exact decimal (``"23197.5"``, ``"0.000000001258"``): JSON numbers
would round it in most clients. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec


class SnapshotInfo(msgspec.Struct):
    path: str
    reachable: bool
    published_at: datetime | None = None
    bytes: int | None = None
    problem: str | None = None
    """Why the snapshot cannot be served, and what to do (when ``reachable`` is false)."""


class LastRun(msgspec.Struct):
    run_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    age_seconds: float
    error: str | None = None
    problems: list[str] = msgspec.field(default_factory=list)
    """``source: status`` of the run's sources that failed or were degraded."""


class Health(msgspec.Struct):
    status: Literal["ok", "degraded", "unavailable"]
    snapshot: SnapshotInfo
    last_run: LastRun | None = None
    drift_alarms: int = 0
    """Drift events neither acknowledged nor info (GET /api/v1/drift?alarming=true)."""


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


ResolutionId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
"""A coin id, source asset id or name: 1 to 200 characters, no leading or trailing space."""


class DecisionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="action"):
    """An operator's decision on entity resolution; it applies on the next ingest run."""

    coin_id: ResolutionId
    decided_by: Annotated[
        ResolutionId, msgspec.Meta(description="Who decided (a name or an email address).")
    ]
    note: Annotated[str, msgspec.Meta(max_length=2000, description="Why, for the record.")] = ""


class AcceptLink(DecisionBody, tag="accept"):
    """The asset is coin_id: it moves there with its quotes; its old coin, if left empty,
    becomes an alias. Refused when coin_id holds another asset of the same source."""

    source: Annotated[ResolutionId, msgspec.Meta(description="coingecko, coinpaprika, ...")]
    source_asset_id: ResolutionId


class RejectLink(DecisionBody, tag="reject"):
    """The asset is not coin_id: resolution never links them again; if it is in coin_id now, it
    moves out to a coin of its own."""

    source: Annotated[ResolutionId, msgspec.Meta(description="coingecko, coinpaprika, ...")]
    source_asset_id: ResolutionId


class MergeCoins(DecisionBody, tag="merge"):
    """other_coin_id is coin_id: its links and quotes move to coin_id (which survives) and its
    id becomes an alias that redirects. Refused when both hold an asset of one source."""

    other_coin_id: ResolutionId


class SplitCoin(DecisionBody, tag="split"):
    """Undo a merge: coin_id (an alias) becomes a coin again, with the links that moved."""


DecisionRequest = AcceptLink | RejectLink | MergeCoins | SplitCoin


class DecisionReceipt(msgspec.Struct):
    decision_id: str
    action: str
    coin_id: str
    other_coin_id: str | None
    source: str | None
    source_asset_id: str | None
    decided_by: str
    decided_at: datetime
    note: str
    outcome: Literal["pending"]
    applies: str
    """When the decision takes effect: the next ingest run applies it."""


class DecisionRecord(msgspec.Struct):
    decision_id: str
    action: str
    source: str | None
    source_asset_id: str | None
    coin_id: str
    other_coin_id: str | None
    note: str
    decided_by: str
    decided_at: datetime
    outcome: str
    """pending, applied or refused."""
    detail: dict[str, Any]
    """What it did (applied), or why not (refused: ``refused`` and ``reason``)."""
    applied_at: datetime | None
    applied_by_run: str | None


class DecisionPage(msgspec.Struct):
    items: list[DecisionRecord]
    total: int
    limit: int
    offset: int


class ReviewCandidate(msgspec.Struct):
    source: str
    source_asset_id: str
    coin_id: str
    """The coin the asset holds meanwhile (one of its own)."""
    candidate_coin_id: str
    method: str
    confidence: float
    evidence: dict[str, Any]
    proposed_by_run: str
    proposed_at: datetime


class ReviewPage(msgspec.Struct):
    items: list[ReviewCandidate]
    total: int
    limit: int
    offset: int


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


class EncodedQuotePage(msgspec.Struct):
    """A :class:`QuotePage` whose quotes are JSON already (from the quote layout)."""

    items: list[msgspec.Raw]
    limit: int
    next_cursor: str | None


class SourceStats(msgspec.Struct):
    source: str
    quotes: int
    coins: int
    quarantined: int
    runs: int | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    """Of the latest failed or degraded attempt."""
    last_seconds: float | None
    avg_seconds: float | None
    last_degraded_at: datetime | None = None
    """Loaded only in part: valid share below the floor (flows.verdict)."""
    last_status: str | None = None
    """Of the latest attempt: loaded, degraded, failed or skipped."""


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
    rounded: int
    """Money values written as float noise (a binary float printed in full) and stored rounded
    to 18 decimal places; the exact text is in the raw zone."""
    inserted: int
    updated: int
    unchanged: int
    extract_seconds: float | None
    transform_seconds: float | None
    load_seconds: float | None
    error: str | None
    repeat_of: str | None
    """Set when the source delivered exactly the payloads of its previous load, that run: the
    payloads are in the raw zone, the counts are that load's, with every row unchanged."""


class Run(msgspec.Struct):
    run_id: str
    flow_run_id: str | None
    """The Prefect flow run that did the run's work (the last attempt's); none from plain calls."""
    prefect_url: str | None
    """That flow run's page in the Prefect UI (PREFECT_UI_URL, else PREFECT_API_URL without
    /api); none when no Prefect URL is configured. Its live state: /api/v1/runs/{id}/prefect."""
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


class SourceLatestPrice(msgspec.Struct):
    source: str
    source_asset_id: str
    price_usd: str
    """The source's latest snapshot price (history rows never count)."""
    observed_at: datetime
    deviation: float | None
    """(price_usd - consensus) / consensus, signed: 0.07 is 7% above the consensus."""
    deviates: bool
    """abs(deviation) exceeds deviation_threshold: a wrong, stale or mis-resolved price."""
    stale: bool
    """observed_at is more than stale_after_seconds behind the coin's newest observation."""


class ConsensusPrices(msgspec.Struct):
    coin_id: str
    symbol: str
    name: str
    sources: int
    """Sources with a snapshot of the coin; 0: none lists it (it has history rows only)."""
    consensus_price_usd: str | None
    """Median of the sources' latest prices, exact (two middle prices: their mean)."""
    spread: float | None
    """(max - min) / consensus across the sources' latest prices."""
    newest_observed_at: datetime | None
    deviation_threshold: float
    stale_after_seconds: int
    prices: list[SourceLatestPrice]


class DriftEvent(msgspec.Struct):
    event_id: str
    run_id: str
    source: str
    endpoint: str
    field: str
    drift_class: Literal[
        "field_added",
        "field_removed",
        "type_changed",
        "nullability_changed",
        "probable_rename",
        "domain_changed",
    ]
    related_field: str | None
    """Of a probable rename: the contract's (or previous run's) field it seems to replace."""
    confidence: float | None
    """Of a probable rename: 0..1, by name and value similarity."""
    required: bool
    """The canonical mapping cannot do without the field."""
    policy: Literal["evolve", "warn", "quarantine", "fail"]
    severity: Literal["info", "warning", "error"]
    detail: str
    affected: int
    """Records the event concerns (the quarantined ones under ``quarantine``)."""
    detected_at: datetime
    alarming: bool
    """Not acknowledged, and above info: /health reports degraded while any is."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_note: str | None = None
    acknowledgement_pending: bool = False
    """Acknowledged through the API; the next ingest run records it in the warehouse."""


class DriftPage(msgspec.Struct):
    items: list[DriftEvent]
    total: int
    limit: int
    offset: int


class Acknowledge(msgspec.Struct):
    acknowledged_by: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class QualityFinding(msgspec.Struct):
    run_id: str
    source: str
    check_name: str
    severity: Literal["info", "warning", "error"]
    field: str | None
    coin_id: str | None
    source_asset_id: str | None
    observed: str | None
    """The value checked, as text (exact for money)."""
    expected: str | None
    """What it was checked against (the consensus, the previous run's value, a bound)."""
    detail: str
    detected_at: datetime


class QualityPage(msgspec.Struct):
    items: list[QualityFinding]
    total: int
    limit: int
    offset: int
