"""Drifted CoinGecko payloads, written from the demo recording: each function copies the demo's
``coingecko`` directory into ``replay`` and changes ``coins_markets`` records as a source that
drifted would serve them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import DEMO_DIR

Record = dict[str, Any]
Change = Callable[[int, Record], Record | None]
"""A record's replacement (None: the record is no longer served)."""


def drifted_coingecko(replay: Path, change: Change) -> Path:
    """The demo's CoinGecko recording in ``replay/coingecko``, every ``coins_markets`` record
    (numbered across pages from 0) replaced by ``change(number, record)``."""
    target = replay / "coingecko"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(DEMO_DIR / "coingecko", target)
    number = 0
    for page in sorted((target / "coins_markets").glob("page-*.json")):
        records = json.loads(page.read_text())
        changed = []
        for record in records:
            if (kept := change(number, dict(record))) is not None:
                changed.append(kept)
            number += 1
        page.write_text(json.dumps(changed))
    return replay


def renamed(old: str, new: str, *, every: int = 1) -> Callable[[int, Record], Record]:
    """``old`` renamed ``new`` in every ``every``-th record (all by default)."""

    def change(number: int, record: Record) -> Record:
        if number % every == 0 and old in record:
            record = {(new if k == old else k): v for k, v in record.items()}
        return record

    return change


def removed(name: str) -> Callable[[int, Record], Record]:
    def change(number: int, record: Record) -> Record:
        record.pop(name, None)
        return record

    return change


def as_strings(*names: str) -> Callable[[int, Record], Record]:
    """``names`` served as JSON strings of their numbers (``"91315.3"``)."""

    def change(number: int, record: Record) -> Record:
        for name in names:
            if isinstance(record.get(name), int | float):
                record[name] = json.dumps(record[name])
        return record

    return change


def retyped_to_object(name: str, *, every: int = 1) -> Callable[[int, Record], Record]:
    """``name`` served as an object (``{"usd": 91315.3}``), as an API that went multi-currency,
    in every ``every``-th record."""

    def change(number: int, record: Record) -> Record:
        if name in record and number % every == 0:
            record[name] = {"usd": record[name]}
        return record

    return change


def scaled(factor: float, *names: str) -> Callable[[int, Record], Record]:
    """Money fields multiplied by ``factor``: the listing quoted in another currency."""

    def change(number: int, record: Record) -> Record:
        for name in names:
            if isinstance(record.get(name), int | float):
                record[name] = record[name] * factor
        return record

    return change


def added(name: str, value: object) -> Callable[[int, Record], Record]:
    def change(number: int, record: Record) -> Record:
        record[name] = value
        return record

    return change


def replaced(name: str, value: object) -> Callable[[int, Record], Record]:
    def change(number: int, record: Record) -> Record:
        record[name] = value
        return record

    return change


def chained(*changes: Change) -> Change:
    def change(number: int, record: Record) -> Record | None:
        kept: Record | None = record
        for one in changes:
            if kept is None:
                return None
            kept = one(number, kept)
        return kept

    return change


def later(minutes: int) -> Callable[[int, Record], Record]:
    """``last_updated`` moved ``minutes`` on: a newer observation, which the load merges."""

    def change(number: int, record: Record) -> Record:
        if isinstance(record.get("last_updated"), str):
            moved = datetime.fromisoformat(record["last_updated"]) + timedelta(minutes=minutes)
            record["last_updated"] = moved.isoformat().replace("+00:00", "Z")
        return record

    return change
