"""A run's observation against the source's contract and its previous observation: the drift
events, each of one class (flows.drift.settings.DriftClass)."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from difflib import SequenceMatcher

from flows.drift.contract import Contract
from flows.drift.observe import FieldObservation, Observation
from flows.drift.settings import DriftClass

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}")
MIN_COMMON = 5
"""Assets two samples must share before their values are compared."""
UNIFORM = 0.02
"""Ratios of a field's values to the previous run's, asset by asset, spread within this share:
the field moved as a whole (a unit or currency), not with the market."""
NULL_SPIKE = 0.1
"""A required field null or absent in this much more of the records than in the previous run
has changed its nullability."""
NULL_MOSTLY = 0.5
"""... as has one null or absent in at least this share of the records, whatever came before."""
LOW_CARDINALITY = 12
"""A string field with at most this many distinct values has a domain (an enumeration)."""


@dataclass(frozen=True)
class Found:
    field: str
    drift_class: DriftClass
    detail: str
    required: bool
    mapped: bool
    related_field: str | None = None
    confidence: float | None = None


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _tokens(name: str) -> list[str]:
    return [t for t in name.replace(".", "_").lower().split("_") if t]


def name_similarity(a: str, b: str) -> float:
    """Of two field names: the better of their character similarity and how much of the longer
    one's words the shorter one's are (``price`` of ``current_price``: half)."""
    ratio = SequenceMatcher(None, a.lower(), b.lower()).ratio()
    ta, tb = _tokens(a), _tokens(b)
    short, long = sorted((ta, tb), key=len)
    if short and set(short) <= set(long):
        ratio = max(ratio, 0.4 + 0.6 * len(short) / len(long))
    return ratio


def value_similarity(before: dict[str, object], after: dict[str, object]) -> float | None:
    """The share of assets sampled in both whose values agree (numbers within 5%); None when
    fewer than :data:`MIN_COMMON` are in both."""
    common = before.keys() & after.keys()
    if len(common) < MIN_COMMON:
        return None
    agree = 0
    for asset in common:
        x, y = _as_number(before[asset]), _as_number(after[asset])
        if x is not None and y is not None:
            agree += abs(x - y) <= 0.05 * max(abs(x), abs(y))
        else:
            agree += before[asset] == after[asset]
    return agree / len(common)


def uniform_shift(before: dict[str, object], after: dict[str, object]) -> float | None:
    """The ratio by which a numeric field moved for every asset alike, or None."""
    ratios = []
    for asset in before.keys() & after.keys():
        x, y = _as_number(before[asset]), _as_number(after[asset])
        if x and y is not None:
            ratios.append(y / x)
    if len(ratios) < MIN_COMMON:
        return None
    deciles = statistics.quantiles(ratios, n=10)
    middle = statistics.median(ratios)
    if middle <= 0 or (deciles[-1] - deciles[0]) / middle > UNIFORM:
        return None
    return middle


Removed = tuple[str, bool, bool, FieldObservation | None]
"""A removed field: path, required, mapped, and its previous observation."""


def compare(
    contract: Contract,
    now: Observation,
    previous: Observation | None,
    *,
    rename_min_confidence: float,
    domain_shift: float,
) -> list[Found]:
    found: list[Found] = []
    removed: list[Removed] = []
    _against_contract(contract, now, previous, domain_shift, found=found, removed=removed)
    if previous is not None:
        _against_previous(contract, now, previous, domain_shift, found=found, removed=removed)
    known = set(previous.fields) if previous else set()
    added = [
        seen for path, seen in now.fields.items()
        if path not in contract.fields and path not in known
    ]  # fmt: skip
    if previous is not None:
        for seen in added:
            found.append(
                Found(seen.path, "field_added", f"{seen.path!r} is new: in {seen.present} of "
                      f"{seen.records} records, {sorted(seen.non_null_types())}", False, False)
            )  # fmt: skip
    # Any field the contract does not name may be the new name (a rename rolled out over two
    # runs was already there in the previous one); values and names decide.
    candidates = [seen for path, seen in now.fields.items() if path not in contract.fields]
    found.extend(_renames(contract, removed, candidates, rename_min_confidence))
    return found


def _against_contract(
    contract: Contract,
    now: Observation,
    previous: Observation | None,
    domain_shift: float,
    *,
    found: list[Found],
    removed: list[Removed],
) -> None:
    for path, expected in contract.fields.items():
        seen = now.get(path)
        before = previous.fields.get(path) if previous else None
        if seen.absent:
            found.append(
                Found(path, "field_removed", f"contract field {path!r} (mapped to "
                      f"{expected.canonical}) is absent from all {now.records} records",
                      expected.required, True)
            )  # fmt: skip
            removed.append((path, expected.required, True, before))
            continue
        wrong = seen.non_null_types() - {expected.json_type}
        if wrong:
            found.append(
                Found(path, "type_changed", f"{path!r} is {sorted(wrong)} in "
                      f"{sum(seen.types[t] for t in wrong)} records; the contract says "
                      f"{expected.json_type}", expected.required, True)
            )  # fmt: skip
        # A few records without a required value are record faults (validation quarantines
        # them); a change is a share well above the previous run's, or most records at once.
        was = before.null_share if before is not None else None
        if not expected.nullable and (
            seen.null_share >= NULL_MOSTLY
            or (was is not None and seen.null_share > was + NULL_SPIKE)
        ):
            found.append(
                Found(path, "nullability_changed", f"{path!r} is null or absent in "
                      f"{seen.records - seen.present + seen.nulls} of {seen.records} records; "
                      "the contract says it is never null", expected.required, True)
            )  # fmt: skip
        if before is not None and not wrong:
            found.extend(
                _domain(path, before, seen, domain_shift, required=expected.required, mapped=True)
            )


def _against_previous(
    contract: Contract,
    now: Observation,
    previous: Observation,
    domain_shift: float,
    *,
    found: list[Found],
    removed: list[Removed],
) -> None:
    """The fields the contract does not name, against the previous run's."""
    for path, before in previous.fields.items():
        if path in contract.fields:
            continue
        seen = now.get(path)
        if seen.absent:
            if not before.absent:
                found.append(
                    Found(path, "field_removed", f"{path!r} was in {before.present} records "
                          "of the previous run, in none of this one", False, False)
                )  # fmt: skip
                removed.append((path, False, False, before))
            continue
        was, now_types = before.non_null_types(), seen.non_null_types()
        if was and now_types and now_types != was:
            found.append(
                Found(path, "type_changed", f"{path!r} was {sorted(was)}, is "
                      f"{sorted(now_types)}", False, False)
            )  # fmt: skip
        elif seen.null_share > before.null_share + NULL_SPIKE:
            found.append(
                Found(path, "nullability_changed", f"{path!r} was null or absent in "
                      f"{before.null_share:.0%} of records, now in {seen.null_share:.0%}",
                      False, False)
            )  # fmt: skip
        elif was == now_types:
            found.extend(_domain(path, before, seen, domain_shift, required=False, mapped=False))


def _domain(
    path: str,
    before: FieldObservation,
    seen: FieldObservation,
    domain_shift: float,
    *,
    required: bool,
    mapped: bool,
) -> list[Found]:
    if seen.non_null_types() == {"string"} and all(
        _as_number(v) is None for v in seen.sample.values()
    ):
        if any(_TIMESTAMP.match(str(v)) for v in seen.sample.values()):
            return []  # times move on every run: not an enumeration
        was, now = set(map(str, before.sample.values())), set(map(str, seen.sample.values()))
        if 0 < len(was) <= LOW_CARDINALITY and 0 < len(now) <= LOW_CARDINALITY and now - was:
            return [
                Found(path, "domain_changed", f"{path!r} takes new values {sorted(now - was)} "
                      f"(it took {sorted(was)})", required, mapped)
            ]  # fmt: skip
        return []
    ratio = uniform_shift(before.sample, seen.sample)
    if ratio is not None and abs(ratio - 1) > domain_shift:
        return [
            Found(path, "domain_changed", f"every value of {path!r} moved by the same factor "
                  f"{ratio:.4g} since the previous run: a unit or currency switch?",
                  required, mapped)
        ]  # fmt: skip
    return []


def _renames(
    contract: Contract,
    removed: list[Removed],
    added: list[FieldObservation],
    min_confidence: float,
) -> list[Found]:
    """For each removed field, the added field most like it by name and values."""
    found = []
    for path, required, mapped, before in removed:
        expected = contract.fields.get(path)
        best: tuple[float, FieldObservation] | None = None
        for candidate in added:
            if (
                "." in candidate.path
                and candidate.path.rsplit(".", 1)[0] != path.rpartition(".")[0]
            ):
                continue
            by_name = name_similarity(path.rsplit(".", 1)[-1], candidate.path.rsplit(".", 1)[-1])
            by_value = value_similarity(before.sample, candidate.sample) if before else None
            if by_value is None:  # nothing to compare with: the type is all there is
                types = candidate.non_null_types()
                by_value = 0.5 if expected and types == {expected.json_type} else 0.0
            confidence = 0.5 * by_name + 0.5 * by_value
            if best is None or confidence > best[0]:
                best = (confidence, candidate)
        if best is not None and best[0] >= min_confidence:
            confidence, candidate = best
            found.append(
                Found(candidate.path, "probable_rename", f"{path!r} seems renamed "
                      f"{candidate.path!r} (confidence {confidence:.2f}, by name and values)",
                      required, mapped, related_field=path, confidence=round(confidence, 3))
            )  # fmt: skip
    return found
