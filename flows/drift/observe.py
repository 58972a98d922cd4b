"""The schema a run's payload actually had: per field (a dotted path), its JSON types, how
often it was present and null, and a sample of values keyed by asset id."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

SAMPLE_SIZE = 200
"""Values kept per field (of the first assets in key order): enough to compare value
distributions between runs, small enough to store every run."""


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def flatten(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every field, objects descended into (and listed themselves)."""
    for name, value in record.items():
        path = f"{prefix}{name}"
        yield path, value
        if isinstance(value, dict):
            yield from flatten(value, f"{path}.")


def value_at(record: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(present, value) of a dotted path."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


@dataclass
class FieldObservation:
    path: str
    records: int = 0
    present: int = 0
    nulls: int = 0
    types: dict[str, int] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)
    """Asset id -> value (scalars only)."""

    @property
    def absent(self) -> bool:
        return self.present == 0

    @property
    def null_share(self) -> float:
        """Of the records, the share without a value (absent or null)."""
        return 1.0 - (self.present - self.nulls) / self.records if self.records else 0.0

    def non_null_types(self) -> set[str]:
        return {t for t, n in self.types.items() if t != "null" and n}


@dataclass
class Observation:
    source: str
    endpoint: str
    records: int
    fields: dict[str, FieldObservation]

    def get(self, path: str) -> FieldObservation:
        return self.fields.get(path) or FieldObservation(path, self.records)


def observe(source: str, endpoint: str, records: Iterable[dict[str, Any]], key: str) -> Observation:
    """The observation of ``records`` (decoded JSON objects); ``key`` is the asset id path."""
    fields: dict[str, FieldObservation] = {}
    count = 0
    keyed: list[tuple[str, dict[str, Any]]] = []
    for record in records:
        count += 1
        for path, value in flatten(record):
            seen = fields.setdefault(path, FieldObservation(path))
            seen.present += 1
            kind = json_type(value)
            seen.types[kind] = seen.types.get(kind, 0) + 1
            seen.nulls += value is None
        _, asset = value_at(record, key)
        if isinstance(asset, str):
            keyed.append((asset, record))
    keyed.sort(key=lambda pair: pair[0])
    for seen in fields.values():
        seen.records = count
    for asset, record in keyed[:SAMPLE_SIZE]:
        for path, value in flatten(record):
            if not isinstance(value, dict | list) and value is not None:
                fields[path].sample.setdefault(asset, value)
    return Observation(source, endpoint, count, fields)


def types_text(observed: FieldObservation) -> str:
    return json.dumps(dict(sorted(observed.types.items())))
