"""The shapes of the warehouse tables as polars schemas, and their natural keys.

Loaders accept frames of exactly these schemas; the DDL in ``store/migrations`` matches them.
"""

from __future__ import annotations

import hashlib

import polars as pl

MONEY = pl.Decimal(38, 18)
"""Prices, market caps and volumes: exact decimals, 18 places, never a float on the way in."""
UTC_TIME = pl.Datetime("us", "UTC")

QUOTES = pl.Schema(
    {
        "coin_id": pl.String(),
        "source": pl.String(),
        "observed_at": UTC_TIME,
        "kind": pl.String(),
        "source_asset_id": pl.String(),
        "symbol": pl.String(),
        "name": pl.String(),
        "price_usd": MONEY,
        "market_cap_usd": MONEY,
        "volume_24h_usd": MONEY,
        "pct_change_24h": pl.Float64(),
        "circulating_supply": pl.Float64(),
        "total_supply": pl.Float64(),
        "max_supply": pl.Float64(),
        "rank": pl.Int32(),
        "run_id": pl.String(),
        "raw_file": pl.String(),
        "raw_record": pl.Int32(),
    }
)
QUOTES_KEY = ("coin_id", "source", "observed_at")
QUOTES_LINEAGE = ("run_id", "raw_file", "raw_record")
QUOTES_VALUES = tuple(c for c in QUOTES if c not in QUOTES_KEY and c not in QUOTES_LINEAGE)
"""Columns whose change makes a re-delivered observation an update (lineage alone does not)."""

QUARANTINE = pl.Schema(
    {
        "source": pl.String(),
        "record_sha256": pl.String(),
        "reason": pl.String(),
        "detail": pl.String(),
        "source_asset_id": pl.String(),
        "record": pl.String(),
        "raw_file": pl.String(),
        "raw_record": pl.Int32(),
        "first_run_id": pl.String(),
    }
)
QUARANTINE_KEY = ("source", "record_sha256", "reason")

COINS = pl.Schema(
    {
        "coin_id": pl.String(),
        "symbol": pl.String(),
        "name": pl.String(),
        "first_seen_at": UTC_TIME,
        "created_by_run": pl.String(),
    }
)

COIN_SOURCE_IDS = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "symbol": pl.String(),
        "name": pl.String(),
        "match_key": pl.String(),
        "method": pl.String(),
        "confidence": pl.Float64(),
        "evidence": pl.String(),
        "first_seen_at": UTC_TIME,
        "last_seen_at": UTC_TIME,
        "last_snapshot_at": UTC_TIME,
        "decided_by_run": pl.String(),
    }
)
COIN_SOURCE_IDS_KEY = ("source", "source_asset_id")

SEEN = pl.Schema(
    {
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "observed_at": UTC_TIME,
    }
)
"""What a source delivered in a run: its latest valid observation of each asset."""

KINDS = ("snapshot", "history")
"""A quote's kind: a live listing, or a daily history row (API or CSV)."""

ASSET_CONTRACTS = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "chain": pl.String(),
        "address": pl.String(),
        "source_platform": pl.String(),
        "first_seen_run": pl.String(),
    }
)
ASSET_CONTRACTS_KEY = ("source", "source_asset_id", "chain", "address")

RESOLUTION_REVIEW = pl.Schema(
    {
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "candidate_coin_id": pl.String(),
        "coin_id": pl.String(),
        "method": pl.String(),
        "confidence": pl.Float64(),
        "evidence": pl.String(),
        "status": pl.String(),
        "proposed_by_run": pl.String(),
        "proposed_at": UTC_TIME,
    }
)
"""New candidates for the review queue (the operator's columns stay null until decided)."""
RESOLUTION_REVIEW_KEY = ("source", "source_asset_id", "candidate_coin_id")


def suffixed_coin_id(coin_id: str, source: str, source_asset_id: str) -> str:
    """The id an asset takes when ``coin_id`` is not its to take (another coin or an alias holds
    it, or an operator rejected the asset from it): ``coin_id`` plus 8 hex digits of the sha256 of
    ``source:source_asset_id``. Resolution and decisions both use it, so a rebuild that replays
    them gives the same ids."""
    digest = hashlib.sha256(f"{source}:{source_asset_id}".encode()).hexdigest()[:8]
    return f"{coin_id}-{digest}"
