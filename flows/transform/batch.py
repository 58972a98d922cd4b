"""One extracted batch, from its raw-zone files to validated quotes, quarantine rows and the
contract addresses its sources published.

A batch larger than :data:`PART_ROWS` records is validated in parts held on disk
(:func:`transformed`), so that memory stays bounded however large one file is: a 50 MB CSV file
held ~290 MB more while it loaded whole."""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import overload

import polars as pl

from flows import raw_zone
from flows.faults import fault_point
from flows.transform.contracts import contracts_of
from flows.transform.quotes import Checked, Validated, check, settle
from flows.transform.staging import stage
from store.schema import ASSET_CONTRACTS_KEY, QUARANTINE_KEY

BATCH_ROWS = 50_000
"""Raw records staged and checked at a time. Staging a CSV line costs ~2 kB of Python objects
while it is split into fields (a 50 MB file of 428k lines peaked at 1 GiB in one batch); typed
and checked, a row keeps ~300 bytes until the load."""

PART_ROWS = 50_000
"""Records per part of a batch validated in parts (:func:`transformed`)."""

SPILL_PREFIX = ".transform-"
"""Name prefix of the directories that hold a batch's parts, beside the raw zone. One left by a
killed process is removed by the next transform (the warehouse has one writer at a time)."""


def transform_raw_files(
    raw_root: Path, files: Iterable[str], *, batch_rows: int = BATCH_ROWS
) -> Validated:
    """Stage and check the files' records ``batch_rows`` at a time (see
    :func:`flows.raw_zone.read_raw_batches`), then settle duplicates across all of them: the
    result does not depend on the batch size."""
    checked, contracts = _checked(raw_root, files, batch_rows)
    return dataclasses.replace(
        settle(checked, lambda wanted: _records_of(raw_root, wanted)),
        contracts=_published(contracts),
    )


class Parts(Sequence[Validated]):
    """A batch validated in parts, each read from disk when asked for. Every row of an asset
    (``source``, ``source_asset_id``) is in one part, and every quarantined record of one
    key: what is decided per asset (duplicates, its newest snapshot, its resolution inputs)
    is decided within one part exactly as over the whole batch. The first part carries the
    batch's contract addresses."""

    def __init__(self, directory: Path, count: int, contracts: pl.DataFrame) -> None:
        self._directory, self._count, self._contracts = directory, count, contracts
        self._meta: list[tuple[int, int, datetime | None]] = []

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Validated: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Validated]: ...
    def __getitem__(self, index: int | slice) -> Validated | Sequence[Validated]:
        if isinstance(index, slice):
            return [self[i] for i in range(self._count)[index]]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        index %= self._count
        duplicates, rounded, turns = self._meta[index]
        return Validated(
            pl.read_parquet(self._file("quotes", index)),
            pl.read_parquet(self._file("quarantine", index)),
            duplicates,
            contracts=self._contracts if index == 0 else self._contracts.clear(),
            verdicts_until=turns,
            rounded=rounded,
        )

    def _file(self, kind: str, index: int) -> Path:
        return self._directory / f"{kind}-{index:04d}.parquet"

    def _keep(self, index: int, part: Validated) -> None:
        part.quotes.write_parquet(self._file("quotes", index))
        part.quarantine.write_parquet(self._file("quarantine", index))
        self._meta.append((part.duplicates, part.rounded, part.verdicts_until))


@contextmanager
def transformed(
    raw_root: Path,
    files: Iterable[str],
    *,
    part_rows: int | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[Sequence[Validated]]:
    """The files' records validated as :func:`transform_raw_files` validates them, as parts of
    about ``part_rows`` records: one part in memory when they fit, else :class:`Parts` on disk
    (removed on exit). Loading the parts one after the other loads what the whole would."""
    relative = list(files)
    part_rows = part_rows or PART_ROWS
    total = raw_zone.count_records(raw_root, relative)
    if total <= part_rows:
        yield [transform_raw_files(raw_root, relative, batch_rows=batch_rows)]
        return
    count = math.ceil(total / part_rows)
    for stale in raw_root.parent.glob(f"{SPILL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=SPILL_PREFIX, dir=raw_root.parent))
    try:
        yield _spill(raw_root, relative, directory, count, batch_rows)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _spill(raw_root: Path, files: list[str], directory: Path, count: int, batch_rows: int) -> Parts:
    contracts: list[pl.DataFrame] = []
    turns: list[datetime] = []
    folded = 0
    for batch, checked in enumerate(_checked_batches(raw_root, files, batch_rows, contracts)):
        folded += checked.folded
        if checked.verdicts_until is not None:
            turns.append(checked.verdicts_until)
        good = checked.good.with_columns(_part=_part_of(["source", "source_asset_id"], count))
        bad = checked.quarantine.with_columns(_part=_part_of(list(QUARANTINE_KEY), count))
        for (index,), rows in good.partition_by("_part", as_dict=True, include_key=False).items():
            rows.write_parquet(directory / f"good-{index:04d}-{batch:05d}.parquet")
        for (index,), rows in bad.partition_by("_part", as_dict=True, include_key=False).items():
            rows.write_parquet(directory / f"bad-{index:04d}-{batch:05d}.parquet")
        del checked, good, bad
    parts = Parts(directory, count, _published(contracts))
    empty = _checked(raw_root, [], batch_rows)[0][0]
    for index in range(count):
        checked = Checked(
            _read_all(directory, f"good-{index:04d}-*", empty.good),
            _read_all(directory, f"bad-{index:04d}-*", empty.quarantine),
            folded if index == 0 else 0,
            min(turns, default=None),
        )
        parts._keep(index, settle([checked], lambda wanted: _records_of(raw_root, wanted)))
        for done in directory.glob(f"*-{index:04d}-*.parquet"):
            done.unlink()
    return parts


def _part_of(columns: list[str], count: int) -> pl.Expr:
    return (pl.struct(columns).hash(seed=0) % count).cast(pl.Int64)


def _read_all(directory: Path, pattern: str, empty: pl.DataFrame) -> pl.DataFrame:
    files = sorted(directory.glob(f"{pattern}.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else empty


def _checked_batches(
    raw_root: Path, files: Iterable[str], batch_rows: int, contracts: list[pl.DataFrame]
) -> Iterator[Checked]:
    now = datetime.now(UTC)
    for raw in raw_zone.read_raw_batches(raw_root, files, batch_rows):
        staged = stage(raw)
        fault_point("mid_transform", source=raw["source"][0] if raw.height else None)
        contracts.append(contracts_of(raw))
        yield check(staged, now=now)
        del raw, staged


def _checked(
    raw_root: Path, files: Iterable[str], batch_rows: int
) -> tuple[list[Checked], list[pl.DataFrame]]:
    contracts: list[pl.DataFrame] = []
    return list(_checked_batches(raw_root, files, batch_rows, contracts)), contracts


def _published(contracts: list[pl.DataFrame]) -> pl.DataFrame:
    return (
        pl.concat(contracts)
        .sort("first_seen_run")
        .unique(subset=list(ASSET_CONTRACTS_KEY), keep="first")
        .sort(*ASSET_CONTRACTS_KEY)
    )


def _records_of(raw_root: Path, wanted: pl.DataFrame) -> pl.DataFrame:
    return wanted.join(
        raw_zone.records_at(raw_root, wanted), on=["raw_file", "raw_record"], how="left"
    )
