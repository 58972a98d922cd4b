"""One source's extract against its contract: observe, compare, decide by policy, record.

Runs before the transform. ``fail`` raises :class:`flows.errors.DriftError` (after the events
are recorded); ``quarantine`` moves the affected records to quarantine with the event as the
reason; ``warn`` adds a ledger warning; ``evolve`` only records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from flows import raw_zone
from flows.drift.compare import Found, compare
from flows.drift.contract import Contract, contract_of, renamed_spec
from flows.drift.observe import (
    FieldObservation,
    Observation,
    json_type,
    observe,
    types_text,
    value_at,
)
from flows.drift.settings import DriftSettings, Policy, get_drift_settings
from flows.errors import DriftError
from flows.sources import csv_files, spec_for
from flows.transform.quotes import Validated
from store import drift as stored
from store.connection import transaction
from store.schema import QUARANTINE, QUARANTINE_KEY

SEVERITY: dict[Policy, str] = {
    "evolve": "info",
    "warn": "warning",
    "quarantine": "warning",
    "fail": "error",
}


def default_policy(found: Found) -> Policy:
    """The issue's defaults: never load a wrong value, keep going on additions."""
    match found.drift_class:
        case "field_added":
            return "evolve"
        case "field_removed":
            return "fail" if found.required else "warn"
        case "type_changed":
            return "fail" if found.required else "quarantine" if found.mapped else "warn"
        case "domain_changed":
            return "quarantine" if found.mapped else "warn"
        case _:
            return "warn"


def policy_of(source: str, found: Found, settings: DriftSettings) -> Policy:
    for scope in (source, "*"):
        configured = settings.policies.get(scope, {}).get(found.drift_class)
        if configured is not None:
            return configured
    return default_policy(found)


@dataclass
class DriftCheck:
    events: list[stored.DriftEvent] = field(default_factory=list)
    quarantine: pl.DataFrame = field(default_factory=QUARANTINE.to_frame)
    """Records a ``quarantine`` policy took out of the load."""
    warnings: list[str] = field(default_factory=list)

    def apply(self, parts: Sequence[Validated]) -> Sequence[Validated]:
        """``parts`` without the quarantined records, which join their quarantine."""
        if self.quarantine.is_empty():
            return parts
        lineage = self.quarantine.select("raw_file", "raw_record")
        applied = []
        for number, part in enumerate(parts):
            quarantine = part.quarantine
            if number == 0:
                quarantine = pl.concat([quarantine, self.quarantine]).unique(
                    subset=list(QUARANTINE_KEY), keep="first", maintain_order=True
                )
            applied.append(
                dataclasses.replace(
                    part,
                    quotes=part.quotes.join(lineage, on=["raw_file", "raw_record"], how="anti"),
                    quarantine=quarantine,
                )
            )
        return applied


def _event_id(run_id: str, source: str, endpoint: str, found: Found) -> str:
    text = "\x1f".join((run_id, source, endpoint, found.field, found.drift_class))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _affected(found: Found, contract: Contract, record: dict[str, Any]) -> bool:
    present, value = value_at(record, found.field)
    match found.drift_class:
        case "field_removed":
            return not present
        case "nullability_changed":
            return value is None
        case "type_changed":
            expected = contract.fields.get(found.field)
            return value is not None and (
                expected is None or not _is_type(value, expected.json_type)
            )
        case _:
            return present and value is not None


def _is_type(value: object, expected: str) -> bool:
    return json_type(value) == expected


def _observed_rows(
    run_id: str, observation: Observation, now: datetime
) -> list[stored.ObservedField]:
    return [
        stored.ObservedField(
            run_id,
            observation.source,
            observation.endpoint,
            seen.path,
            seen.records,
            seen.present,
            seen.nulls,
            types_text(seen),
            json.dumps(seen.sample),
            now,
        )
        for seen in observation.fields.values()
    ]


def _previous(rows: list[stored.ObservedField]) -> Observation | None:
    if not rows:
        return None
    fields = {
        r.field: FieldObservation(
            r.field, r.records, r.present, r.nulls, json.loads(r.types), json.loads(r.sample)
        )
        for r in rows
    }
    return Observation(rows[0].source, rows[0].endpoint, rows[0].records, fields)


def check_extract(
    con: duckdb.DuckDBPyConnection, raw_root: Path, files: Sequence[str], run_id: str, source: str
) -> DriftCheck:
    """Observe the JSON quote records of ``files`` per endpoint, compare, decide and record.
    Sources of CSV files and daily series are not observed (their shape is checked as they are
    staged). Raises DriftError when a ``fail`` policy applies."""
    if source == csv_files.SOURCE_NAME:
        return DriftCheck()  # lines of a file, not JSON: their shape is checked as they stage
    settings = get_drift_settings()
    raw = raw_zone.read_raw(raw_root, files).filter(pl.col("record").is_not_null())
    result = DriftCheck()
    observed: list[stored.ObservedField] = []
    quarantined: list[pl.DataFrame] = []
    failures: list[str] = []
    now = datetime.now(UTC)
    for (endpoint,), group in raw.group_by("endpoint", maintain_order=True):
        spec = renamed_spec(spec_for(source, str(endpoint)), settings.renames.get(source, {}))
        if spec.record_format != "json" or spec.endpoint(str(endpoint)).role != "quotes":
            continue
        contract = contract_of(spec, str(endpoint))
        records = [json.loads(text) for text in group["record"]]
        objects = [r if isinstance(r, dict) else {} for r in records]
        observation = observe(source, str(endpoint), objects, contract.key)
        before = _previous(stored.previous_observation(con, source, str(endpoint), before=run_id))
        observed += _observed_rows(run_id, observation, now)
        findings = compare(
            contract,
            observation,
            before,
            rename_min_confidence=settings.rename_min_confidence,
            domain_shift=settings.domain_shift,
        )
        for found in findings:
            policy = policy_of(source, found, settings)
            hit = [i for i, r in enumerate(objects) if _affected(found, contract, r)]
            result.events.append(
                stored.DriftEvent(
                    _event_id(run_id, source, str(endpoint), found),
                    run_id,
                    source,
                    str(endpoint),
                    found.field,
                    found.drift_class,
                    found.related_field,
                    found.confidence,
                    found.required,
                    policy,
                    SEVERITY[policy],
                    found.detail,
                    len(hit),
                    now,
                )
            )
            note = f"schema drift ({found.drift_class}, {policy}): {endpoint}: {found.detail}"
            if policy == "fail":
                failures.append(f"{found.drift_class} {found.field!r}: {found.detail}")
            elif policy == "warn":
                result.warnings.append(note)
            elif policy == "quarantine" and hit:
                result.warnings.append(f"{note}; {len(hit)} records quarantined")
                quarantined.append(
                    group[hit].select(
                        "source",
                        "record_sha256",
                        reason=pl.lit(f"drift_{found.drift_class}"),
                        detail=pl.lit(f"{found.detail} (policy quarantine)"),
                        source_asset_id=pl.Series(
                            [_text(value_at(objects[i], contract.key)[1]) for i in hit],
                            dtype=pl.String(),
                        ),
                        record=pl.col("record"),
                        raw_file=pl.col("raw_file"),
                        raw_record=pl.col("record_index"),
                        first_run_id=pl.col("run_id"),
                    )
                )
    with transaction(con):
        stored.record_drift(con, run_id, source, observed, result.events)
    if failures:
        raise DriftError(
            source,
            "the payload drifted from the contract, and the policy for it is fail, so nothing "
            f"was loaded: {'; '.join(failures)}. The payloads are in the raw zone; update the "
            "contract (KASPARRO_DRIFT_RENAMES, KASPARRO_DRIFT_POLICIES) or the source mapping, "
            "then run `kasparro rebuild --from-raw`",
        )
    if quarantined:
        result.quarantine = pl.concat(quarantined).cast(QUARANTINE)
    return result


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
