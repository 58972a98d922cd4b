"""Settings of the HTTP API, read from ``KASPARRO_API_*``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    # The decisions token is a secret: a validation error never echoes it.
    model_config = SettingsConfigDict(
        env_prefix="KASPARRO_API_", extra="ignore", hide_input_in_errors=True
    )

    host: str = Field(default="127.0.0.1", description="Interface `kasparro serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `kasparro serve` binds to.")
    stale_after_seconds: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="/health reports `degraded` when the last run is older than this or failed.",
    )
    decisions_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token for POST /api/v1/resolution/decisions (at least 16 characters); "
        "unset: decisions are disabled (403).",
    )


@lru_cache(maxsize=1)
def get_web_settings() -> WebSettings:
    return WebSettings()
