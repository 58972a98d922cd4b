"""One extracted batch, from its raw-zone files to validated quotes, quarantine rows and the
contract addresses its sources published."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from flows import raw_zone
from flows.faults import fault_point
from flows.transform.contracts import contracts_of
from flows.transform.quotes import Validated, check, settle
from flows.transform.staging import stage
from store.schema import ASSET_CONTRACTS_KEY

BATCH_ROWS = 100_000
"""Raw records staged and checked at a time. Staging a CSV line costs ~2 kB of Python objects
while it is split into fields (a 50 MB file of 428k lines peaked at 1 GiB in one batch); typed
and checked, a row keeps ~300 bytes until the load."""


def transform_raw_files(
    raw_root: Path, files: Iterable[str], *, batch_rows: int = BATCH_ROWS
) -> Validated:
    """Stage and check the files' records ``batch_rows`` at a time (see
    :func:`flows.raw_zone.read_raw_batches`), then settle duplicates across all of them: the
    result does not depend on the batch size."""
    now = datetime.now(UTC)
    checked = []
    contracts = []
    for raw in raw_zone.read_raw_batches(raw_root, files, batch_rows):
        staged = stage(raw)
        fault_point("mid_transform", source=raw["source"][0] if raw.height else None)
        checked.append(check(staged, now=now))
        contracts.append(contracts_of(raw))
        del raw, staged
    published = (
        pl.concat(contracts)
        .sort("first_seen_run")
        .unique(subset=list(ASSET_CONTRACTS_KEY), keep="first")
        .sort(*ASSET_CONTRACTS_KEY)
    )
    return dataclasses.replace(
        settle(checked, lambda wanted: _records_of(raw_root, wanted)), contracts=published
    )


def _records_of(raw_root: Path, wanted: pl.DataFrame) -> pl.DataFrame:
    files = wanted["raw_file"].unique().to_list()
    text = raw_zone.read_raw(raw_root, files).select(
        "raw_file", pl.col("record_index").alias("raw_record"), "record", "record_sha256"
    )
    return wanted.join(text, on=["raw_file", "raw_record"], how="left")
