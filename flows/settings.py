"""Settings of the ingest flow itself (sources have their own, in flows.sources.settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_", extra="ignore")

    overrides_file: Path = Field(
        default=Path("data/asset_overrides.csv"),
        description="Curated entity-resolution overrides: source,source_asset_id,coin_id,note.",
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
