"""Settings of the ingest flow itself (sources have their own, in flows.sources.settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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


@lru_cache(maxsize=1)
def get_ingest_settings() -> IngestSettings:
    return IngestSettings()


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
