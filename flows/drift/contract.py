"""Each source's schema contract, derived from its declaration (flows.sources.spec): the fields
its canonical mapping reads, their JSON types and nullability, and which of them the mapping
cannot do without.

The contract names only the mapped fields; every other field a source sends is known from the
previous run's observation (flows.drift.observe), against which additions and removals of
unmapped fields are judged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from flows.sources.spec import ENVELOPE_PREFIX, SUBJECT_PREFIX, SourceSpec

JSON_TYPES = ("number", "string", "boolean", "object", "array", "null")
REQUIRED = ("source_asset_id", "symbol", "name", "price_usd", "observed_at")
"""Canonical fields without which a record cannot be a quote (flows.sources.spec)."""
_TEXT = ("source_asset_id", "symbol", "name")


@dataclass(frozen=True)
class FieldContract:
    path: str
    """Dotted path in the record (``quotes.USD.price``)."""
    canonical: str
    """The canonical quote field it maps to."""
    json_type: str
    """The JSON type the source writes it as (null aside)."""
    nullable: bool
    required: bool


@dataclass(frozen=True)
class Contract:
    source: str
    endpoint: str
    fields: dict[str, FieldContract]
    """By path."""
    key: str
    """Path of the record's asset id: samples of values are keyed by it."""


def contract_of(spec: SourceSpec, endpoint: str) -> Contract:
    """The contract of ``spec``'s quote records from ``endpoint``."""
    fields: dict[str, FieldContract] = {}
    for canonical, path in spec.columns.items():
        if path.startswith((ENVELOPE_PREFIX, SUBJECT_PREFIX)):
            continue  # not in the record: the envelope's and the request's shapes are checked
        if canonical in _TEXT:
            json_type = "string"
        elif canonical == "observed_at":
            json_type = "string" if spec.time_format == "iso8601" else "number"
        else:
            json_type = spec.numbers_as
        required = canonical in REQUIRED
        fields[path] = FieldContract(path, canonical, json_type, not required, required)
    return Contract(spec.name, endpoint, fields, spec.columns["source_asset_id"])


def renamed_spec(spec: SourceSpec, renames: dict[str, str]) -> SourceSpec:
    """``spec`` reading each field renamed by the operator (served name -> contract name,
    ``KASPARRO_DRIFT_RENAMES``) under its served name."""
    if not renames:
        return spec
    served = {contract: new for new, contract in renames.items()}
    columns = {canonical: served.get(path, path) for canonical, path in spec.columns.items()}
    return dataclasses.replace(spec, columns=columns)
