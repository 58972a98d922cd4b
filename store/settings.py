"""Where Kasparro keeps its runtime data.

Every other tool and test relies on these names: ``warehouse.duckdb`` (written by the ingest flow
only), ``serving.duckdb`` (the read-only snapshot the API and analysts open), ``raw/`` (the raw
zone, Parquet, every payload as received) and ``decisions/inbox/`` (operator decisions the API
received, which the next run applies; see :mod:`store.resolution`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

WAREHOUSE_FILE = "warehouse.duckdb"
SERVING_FILE = "serving.duckdb"
RAW_DIR = "raw"
DECISIONS_INBOX = Path("decisions", "inbox")
DRIFT_ACKS = Path("drift", "acks")
"""Operators' acknowledgements of drift events, waiting for the next run (store.drift)."""


class StoreSettings(BaseSettings):
    """Location of the warehouse, the serving snapshot and the raw zone."""

    model_config = SettingsConfigDict(env_prefix="KASPARRO_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data/local"),
        description="Directory holding warehouse.duckdb, serving.duckdb and raw/ (git-ignored).",
    )

    duckdb_memory_limit: str = Field(
        default="256MiB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory DuckDB may use while writing the warehouse (ingest, rebuild): its "
        "buffer pool keeps table blocks up to this and spills to disk beyond it. DuckDB's own "
        "default is 80% of the machine's RAM. The process holds several times this of "
        "DuckDB's: a 150 MB CSV file peaked at ~1 GiB with 256, ~600 MiB with 128 and "
        "409 MiB with 64; but at 64 a 1M-quote `rebuild --from-raw --recover` and a 100k-quote "
        "first ingest (resolution's market lookup) ran out of memory, so 256 stays the default.",
    )

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / WAREHOUSE_FILE

    @property
    def serving_path(self) -> Path:
        return self.data_dir / SERVING_FILE

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / RAW_DIR

    @property
    def decisions_inbox(self) -> Path:
        return self.data_dir / DECISIONS_INBOX

    @property
    def drift_acks(self) -> Path:
        return self.data_dir / DRIFT_ACKS


@lru_cache(maxsize=1)
def get_store_settings() -> StoreSettings:
    return StoreSettings()
