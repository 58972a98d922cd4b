"""The curated files resolution honours: the overrides (``data/asset_overrides.csv``) and an
authoritative crosswalk (``KASPARRO_CROSSWALK_FILE``); see :mod:`flows.resolution`."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flows.errors import CrosswalkError, OverridesError
from flows.sources import SOURCE_NAMES

_COIN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,95}$")


@dataclass(frozen=True)
class Override:
    coin_id: str
    note: str
    line: int


def read_overrides(path: Path) -> dict[tuple[str, str], Override]:
    """The curated overrides; a malformed file is an error naming the line, never half-read."""
    if not path.exists():
        return {}
    overrides: dict[tuple[str, str], Override] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        expected = {"source", "source_asset_id", "coin_id", "note"}
        if set(reader.fieldnames or ()) != expected:
            raise OverridesError(
                f"{path}: header must be source,source_asset_id,coin_id,note; "
                f"got {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            source, asset, coin = (
                row["source"].strip(),
                row["source_asset_id"].strip(),
                row["coin_id"].strip(),
            )
            if source not in SOURCE_NAMES:
                raise OverridesError(
                    f"{path}:{line}: unknown source {source!r}; one of {SOURCE_NAMES}"
                )
            if not asset:
                raise OverridesError(f"{path}:{line}: source_asset_id is empty")
            if not _COIN_ID.match(coin):
                raise OverridesError(
                    f"{path}:{line}: coin_id {coin!r} must be lowercase letters, digits and '-'"
                )
            if (source, asset) in overrides:
                raise OverridesError(
                    f"{path}:{line}: {source}/{asset} is already overridden on line "
                    f"{overrides[(source, asset)].line}"
                )
            overrides[(source, asset)] = Override(coin, row["note"].strip(), line)
    return overrides


Crosswalk = Mapping[tuple[str, str], frozenset[tuple[str, str]]]
"""(source, source_asset_id) -> the same asset's ids in the other sources."""
CROSSWALK_SOURCES = ("coingecko", "coinpaprika", "coincap")


def read_crosswalk(path: Path) -> Crosswalk:
    """An authoritative crosswalk: each row names one asset's ids in two or more sources. A
    malformed file is an error naming the line, never half-read."""
    crosswalk: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}
    line_of: dict[tuple[str, str], int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or ()]
        unknown = sorted(set(columns) - set(CROSSWALK_SOURCES))
        if unknown or len(columns) < 2:
            raise CrosswalkError(
                f"{path}: header must name two or more of {CROSSWALK_SOURCES}; got {columns}"
            )
        for line, row in enumerate(reader, start=2):
            ids = frozenset(
                (source, value.strip())
                for source, value in zip(columns, row.values(), strict=False)
                if isinstance(value, str) and value.strip()
            )
            if len(ids) < 2:
                raise CrosswalkError(f"{path}:{line}: a row must name the asset in two sources")
            for asset in sorted(ids):
                if asset in crosswalk:
                    raise CrosswalkError(
                        f"{path}:{line}: {asset[0]}/{asset[1]} is already on line {line_of[asset]}"
                    )
                crosswalk[asset], line_of[asset] = ids - {asset}, line
    return crosswalk
