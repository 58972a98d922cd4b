"""Settings of the ingest flow itself (sources have their own, in flows.sources.settings)."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from store.quality import Thresholds


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_", extra="ignore")

    overrides_file: Path = Field(
        default=Path("data/asset_overrides.csv"),
        description="Curated entity-resolution overrides: source,source_asset_id,coin_id,note.",
    )
    crosswalk_file: Path | None = Field(
        default=None,
        description="An authoritative crosswalk for entity resolution: a CSV with columns "
        "coingecko,coinpaprika,coincap naming one asset per row (e.g. exported from "
        "CoinPaprika's paid coins/mappings). Unset: no crosswalk.",
    )
    extract_retries: int = Field(
        default=2, ge=0, le=10, description="Prefect task retries of a source's whole extract."
    )
    extract_retry_delay_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="Delay before a whole-extract retry."
    )
    min_valid_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A source whose share of valid records (of those it delivered) is below "
        "this is recorded degraded, not loaded; one with no valid record at all is failed.",
    )


@lru_cache(maxsize=1)
def get_ingest_settings() -> IngestSettings:
    return IngestSettings()


class QualitySettings(BaseSettings):
    """Thresholds of the data-quality checks every load runs (store.quality)."""

    model_config = SettingsConfigDict(env_prefix="KASPARRO_QUALITY_", extra="ignore")

    market_cap_tolerance: float = Field(
        default=0.1, gt=0, le=10, description="Market cap vs price x supply, relative."
    )
    stale_after_hours: int = Field(
        default=24, ge=1, le=24 * 365, description="A record older than this at its run is stale."
    )
    null_spike: float = Field(
        default=0.2, gt=0, le=1, description="Null share above the recent mean that flags."
    )
    price_jump: float = Field(
        default=0.5, gt=0, le=100, description="Relative price move between consecutive runs."
    )
    top_n: int = Field(default=100, ge=1, le=100_000, description="Ranks watched for departures.")
    count_drop: float = Field(
        default=0.5, gt=0, le=1, description="Relative drop of the delivered asset count."
    )
    consensus: float = Field(
        default=0.05, gt=0, le=10, description="Deviation from the consensus price that flags."
    )
    outlier_share: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Share of a source's coins deviating beyond which the source is flagged.",
    )

    peg: float = Field(
        default=0.03,
        gt=0,
        le=1,
        description="A US dollar stablecoin quoted further than this from 1 flags the listing.",
    )

    def thresholds(self) -> Thresholds:
        return Thresholds(
            market_cap_tolerance=self.market_cap_tolerance,
            stale_after=timedelta(hours=self.stale_after_hours),
            null_spike=self.null_spike,
            price_jump=self.price_jump,
            top_n=self.top_n,
            count_drop=self.count_drop,
            consensus=self.consensus,
            outlier_share=self.outlier_share,
            peg=self.peg,
        )


class HistorySettings(BaseSettings):
    """What ``kasparro ingest --history`` backfills."""

    model_config = SettingsConfigDict(env_prefix="KASPARRO_HISTORY_", extra="ignore")

    coins: Annotated[list[str], NoDecode] = Field(
        default=["btc-bitcoin", "eth-ethereum"],
        description="Canonical coin ids to backfill, comma-separated (btc-bitcoin,eth-ethereum).",
    )
    days: int = Field(
        default=30, ge=1, le=3650, description="How far back a coin's first backfill reaches."
    )

    @field_validator("coins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
