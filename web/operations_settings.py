"""Settings of the operations endpoints (/ready, POST /api/v1/runs), read from
``KASPARRO_API_*`` like web.settings (kept apart while web.settings changes elsewhere; one class
to merge into WebSettings)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperationsSettings(BaseSettings):
    # The runs token is a secret: a validation error never echoes it.
    model_config = SettingsConfigDict(
        env_prefix="KASPARRO_API_", extra="ignore", hide_input_in_errors=True
    )

    ready_max_age_seconds: float = Field(
        default=2 * 3600.0,
        gt=0,
        description="/ready answers 503 when the snapshot is older than this: two intervals of "
        "the hourly schedule (prefect.yaml).",
    )
    runs_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token for POST /api/v1/runs (at least 16 characters); unset: "
        "starting runs from the API is disabled (403).",
    )
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_API_URL"),
        description="The Prefect API that POST /api/v1/runs starts deployments on (Prefect's "
        "own PREFECT_API_URL); unset: the endpoint answers 503.",
    )
    prefect_ui_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_UI_URL"),
        description="Base of the flow-run links returned (default: PREFECT_API_URL without /api).",
    )

    def flow_run_url(self, flow_run_id: object) -> str | None:
        """The Prefect UI's page of a flow run, when a Prefect URL is configured."""
        base = self.prefect_ui_url or (self.prefect_api_url or "").removesuffix("/api")
        return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None

    @field_validator("runs_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # compose passes an unset variable as "": that means disabled, not a short token.
        return None if value == "" else value


@lru_cache(maxsize=1)
def get_operations_settings() -> OperationsSettings:
    return OperationsSettings()
