"""What the pipeline does about each class of drift, per source: ``KASPARRO_DRIFT_*``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DriftClass = Literal[
    "field_added",
    "field_removed",
    "type_changed",
    "nullability_changed",
    "probable_rename",
    "domain_changed",
]
Policy = Literal["evolve", "warn", "quarantine", "fail"]


class DriftSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KASPARRO_DRIFT_", extra="ignore")

    policies: dict[str, dict[DriftClass, Policy]] = Field(
        default_factory=dict,
        description="Per source (or '*' for all), per drift class, the policy that replaces the "
        'default, as JSON: {"coingecko": {"type_changed": "evolve"}}. Defaults: a required '
        "field removed or retyped fails; a mapped field retyped or its domain changed "
        "quarantines its rows; an added field evolves; everything else warns.",
    )
    renames: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per source, a served field name -> the contract's name it replaces, as "
        'JSON: {"coingecko": {"price": "current_price"}}. A probable rename is only warned '
        "about until it is mapped here; `kasparro rebuild --from-raw` then re-derives the "
        "rows of earlier runs.",
    )
    rename_min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="Least confidence at which a rename is reported."
    )
    domain_shift: float = Field(
        default=0.03,
        gt=0,
        le=10,
        description="A numeric field whose values moved uniformly (same ratio for every asset "
        "compared with the previous run) by more than this share is a domain change: a unit "
        "or currency switch.",
    )


@lru_cache(maxsize=1)
def get_drift_settings() -> DriftSettings:
    return DriftSettings()
