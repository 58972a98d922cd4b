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


MEMORY_SIZE = r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"


class StoreSettings(BaseSettings):
    """Location of the warehouse, the serving snapshot and the raw zone."""

    model_config = SettingsConfigDict(env_prefix="KASPARRO_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data/local"),
        description="Directory holding warehouse.duckdb, serving.duckdb and raw/ (git-ignored).",
    )

    duckdb_memory_limit: str = Field(
        default="256MiB",
        pattern=MEMORY_SIZE,
        description="Memory DuckDB may use while writing the warehouse (ingest, rebuild): its "
        "buffer pool keeps table blocks up to this and spills to disk beyond it. DuckDB's own "
        "default is 80% of the machine's RAM. At 64 MiB a 100k-quote first ingest (tens of "
        "thousands of new assets) runs out of memory.",
    )
    duckdb_merge_memory_limit: str = Field(
        default="64MiB",
        pattern=MEMORY_SIZE,
        description="Memory DuckDB may use while merging a load's quotes, the step that grows "
        "with a file's size (see store.memory): a 500 MB CSV file's process peaked at 437 MiB "
        "with 64 and 618 MiB with 256, in the same time.",
    )
    quote_layout: bool = Field(
        default=True,
        description="Lay out the quotes (store.quote_layout) after each publish: the API "
        "then serves pages of quotes from it, ~17 times the requests a second of reading them "
        "from the snapshot at 10M quotes. It takes ~3 times the snapshot's size on disk; a "
        "publish lays out what changed since the last base (~1 s at 10M quotes), a base takes "
        "~3 s per million quotes. Off: no layout is built, and any is removed.",
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
