"""The warehouse writer's connection: bounded memory, as configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from store.connection import warehouse
from store.settings import get_store_settings


def test_the_writer_keeps_to_the_configured_memory_limit(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_DUCKDB_MEMORY_LIMIT", "128MiB")
    get_store_settings.cache_clear()
    with warehouse(data_dir / "warehouse.duckdb") as con:
        (limit,) = con.execute("select current_setting('memory_limit')").fetchall()[0]
    assert limit == "128.0 MiB"


def test_a_memory_limit_that_is_not_a_size_is_refused_before_duckdb_sees_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_DUCKDB_MEMORY_LIMIT", "1GB'; drop table quotes; --")
    get_store_settings.cache_clear()
    with pytest.raises(ValidationError, match="duckdb_memory_limit"):
        get_store_settings()
