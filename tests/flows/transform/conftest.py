from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl
import pytest

from flows.raw_zone import RAW_SCHEMA

FETCHED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

RawOf = Callable[..., pl.DataFrame]


def raw_rows(
    source: str,
    endpoint: str,
    records: list[str],
    *,
    envelope: str = "[]",
    run_id: str = "run-1",
    raw_file: str = "file-1.parquet",
    fetched_at: datetime = FETCHED_AT,
    first_index: int = 0,
) -> pl.DataFrame:
    """Raw-zone rows for records of one source endpoint, as extract would write them."""
    n = len(records)
    return pl.DataFrame(
        {
            "run_id": [run_id] * n,
            "source": [source] * n,
            "endpoint": [endpoint] * n,
            "page": [1] * n,
            "request_url": ["https://example.test"] * n,
            "file_name": [None] * n,
            "fetched_at": [fetched_at] * n,
            "http_status": [200] * n,
            "payload_sha256": ["0" * 64] * n,
            "envelope": [envelope] * n,
            "record_index": list(range(first_index, first_index + n)),
            "record": records,
            "record_sha256": [hashlib.sha256(r.encode()).hexdigest() for r in records],
            "subject": [None] * n,
        },
        schema=RAW_SCHEMA,
    ).with_columns(raw_file=pl.lit(raw_file))


@pytest.fixture
def raw_of() -> RawOf:
    return raw_rows
