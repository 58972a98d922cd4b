"""Settings of the HTTP API, read from ``KASPARRO_API_*``."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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

    cors_origins: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Origins a browser may call the API from, comma-separated "
        "(`https://a.example,https://b.example`, or `*`); empty: no CORS headers, so browsers "
        "allow only the API's own origin.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=10_000_000,
        description="Largest request body accepted; a larger one is refused with 413 before it "
        "is read.",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        le=10_000_000,
        description="Requests one client address may make per minute (0: no limit); past it, "
        "429 with Retry-After. Counted per process: with N workers a client gets up to N times "
        "this. /ping and /health are not counted.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


@lru_cache(maxsize=1)
def get_web_settings() -> WebSettings:
    return WebSettings()
