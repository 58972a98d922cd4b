"""Per-source settings, read from ``KASPARRO_<SOURCE>_*`` environment variables.

API keys are ``SecretStr``: they print as ``**********`` and go only into request headers, never
into URLs, logs or the raw zone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.sources.http import RetryPolicy


class HttpSourceSettings(BaseSettings):
    """Settings every HTTP source has."""

    model_config = SettingsConfigDict(extra="ignore")

    api_key: SecretStr | None = Field(default=None, description="API key; never logged.")
    base_url: str | None = Field(
        default=None, description="Override the API base URL (defaults depend on the key/plan)."
    )
    page_size: int = Field(default=250, ge=1, le=2000, description="Records per page request.")
    max_pages: int = Field(default=4, ge=1, le=100_000, description="Stop after this many pages.")
    requests_per_minute: float = Field(
        default=30.0, gt=0, le=6000, description="Client-side rate limit for this source."
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Per-request timeout.")
    max_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts per request for transient failures."
    )
    backoff_seconds: float = Field(
        default=1.0, ge=0, le=60, description="First retry delay; doubles each attempt."
    )
    max_backoff_seconds: float = Field(
        default=30.0, ge=0, le=600, description="Ceiling of one backoff delay."
    )
    max_retry_after_seconds: float = Field(
        default=120.0, ge=0, le=3600, description="Longest Retry-After honoured before giving up."
    )

    contracts: bool = Field(
        default=True,
        description="Also fetch the source's contract addresses each run (identity evidence "
        "for entity resolution), where it publishes them.",
    )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
            max_retry_after_seconds=self.max_retry_after_seconds,
        )


class CoinGeckoSettings(HttpSourceSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_COINGECKO_", extra="ignore")

    plan: Literal["demo", "pro"] = Field(
        default="demo",
        description="demo: api.coingecko.com with x-cg-demo-api-key; "
        "pro: pro-api.coingecko.com with x-cg-pro-api-key.",
    )
    page_size: int = Field(default=250, ge=1, le=250, description="per_page (CoinGecko max 250).")


class CoinPaprikaSettings(HttpSourceSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_COINPAPRIKA_", extra="ignore")

    requests_per_minute: float = Field(
        default=10.0, gt=0, le=6000, description="Client-side rate limit for this source."
    )


class CoinCapSettings(HttpSourceSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_COINCAP_", extra="ignore")

    page_size: int = Field(default=100, ge=1, le=2000, description="limit per request.")
    max_pages: int = Field(default=3, ge=1, le=100_000, description="Stop after this many pages.")


class CsvSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_CSV_", extra="ignore")

    dir: Path = Field(
        default=Path("data/csv"),
        description="Directory of legacy CSV files to load (*.csv); replays use <DIR>/csv.",
    )
