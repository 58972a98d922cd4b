"""Settings of the HTTP API, read from ``KASPARRO_API_*``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_API_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface `kasparro serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `kasparro serve` binds to.")
    stale_after_seconds: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="/health reports `degraded` when the last run is older than this or failed.",
    )


@lru_cache(maxsize=1)
def get_web_settings() -> WebSettings:
    return WebSettings()
