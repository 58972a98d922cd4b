"""Raw-zone rows -> one staged frame of text columns in canonical names, per source spec.

Staging only maps: it pulls each canonical field out of the record (JSON path or CSV column) as
text, parses the observation time in the source's format and turns sentinel values into nulls.
Typing and validation of the values happen in :mod:`flows.transform.quotes`, once for all sources.

A record polars cannot decode against the declared shape (a field that became an object, bad
JSON, a CSV line with the wrong number of fields) is rejected with a reason, not dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from flows.drift import get_drift_settings, renamed_spec
from flows.sources import csv_files, spec_for
from flows.sources.csv_files import UNREADABLE, split_fields
from flows.sources.spec import (
    CANONICAL_FIELDS,
    ENVELOPE_PREFIX,
    SUBJECT_FIELDS,
    SUBJECT_PREFIX,
    RecordFormat,
    SourceSpec,
)
from store.schema import UTC_TIME

LINEAGE = ("source", "run_id", "raw_file", "raw_record", "record_sha256", "record", "fetched_at")
CSV_PREFIX = "csv:"
TEXT_FIELDS = tuple(f for f in CANONICAL_FIELDS if f != "observed_at")

STAGED = pl.Schema(
    {
        "source": pl.String(),
        "run_id": pl.String(),
        "raw_file": pl.String(),
        "raw_record": pl.Int32(),
        "record_sha256": pl.String(),
        "record": pl.String(),
        "fetched_at": UTC_TIME,
        "kind": pl.String(),
        **dict.fromkeys(TEXT_FIELDS, pl.String()),
        "observed_at_text": pl.String(),
        "observed_at": UTC_TIME,
    }
)
REJECTED = pl.Schema(
    {
        "source": pl.String(),
        "run_id": pl.String(),
        "raw_file": pl.String(),
        "raw_record": pl.Int32(),
        "record_sha256": pl.String(),
        "record": pl.String(),
        "reason": pl.String(),
        "detail": pl.String(),
    }
)


@dataclass(frozen=True)
class Staged:
    rows: pl.DataFrame
    """Schema :data:`STAGED`."""
    rejected: pl.DataFrame
    """Schema :data:`REJECTED`: records that could not be mapped at all."""
    folded: int = 0
    """Intraday points of a daily series folded into their day's last point."""


def stage(raw: pl.DataFrame) -> Staged:
    """Stage raw-zone rows of any mix of sources and endpoints."""
    # A CSV file that could never be loaded is kept in the raw zone, never staged.
    records = raw.filter(
        pl.col("record").is_not_null() & (pl.col("endpoint") != UNREADABLE)
    ).rename({"record_index": "raw_record"})
    rows: list[pl.DataFrame] = [STAGED.to_frame()]
    rejected: list[pl.DataFrame] = [REJECTED.to_frame()]
    folded = 0
    for (source, endpoint), group in records.group_by("source", "endpoint", maintain_order=True):
        # A field the operator mapped to its new name (a confirmed rename) is read under it.
        renames = get_drift_settings().renames.get(str(source), {})
        spec = renamed_spec(spec_for(str(source), str(endpoint)), renames)
        if source != csv_files.SOURCE_NAME and spec.endpoint(str(endpoint)).role != "quotes":
            continue  # contract listings are identity evidence: flows.transform.contracts
        good, bad = _STAGERS[spec.record_format](group, spec)
        staged = _finish(good, spec)
        if spec.record_format == "series":
            daily = _last_point_of_each_day(staged)
            folded += staged.height - daily.height
            staged = daily
        rows.append(staged)
        rejected.append(bad.select(REJECTED.names()))
    return Staged(pl.concat(rows, how="vertical"), pl.concat(rejected, how="vertical"), folded)


def _last_point_of_each_day(staged: pl.DataFrame) -> pl.DataFrame:
    """A daily series keeps one point per asset and UTC day: the day's last (its close). Points
    without a readable time are kept for validation to quarantine."""
    day = pl.col("observed_at").dt.date()
    last = pl.col("observed_at") == pl.col("observed_at").max().over("source_asset_id", day)
    return staged.filter(pl.col("observed_at").is_null() | last)


def _reject(group: pl.DataFrame, reason: str, details: list[str]) -> pl.DataFrame:
    return group.with_columns(
        reason=pl.lit(reason), detail=pl.Series(details, dtype=pl.String())
    ).select(REJECTED.names())


# --- JSON --------------------------------------------------------------------------------------


def _struct_for(paths: list[list[str]]) -> pl.Struct:
    """A nested struct dtype with a String leaf at every path."""
    tree: dict[str, object] = {}
    for path in paths:
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict)
            node = child
        node[path[-1]] = None

    def build(node: dict[str, object]) -> pl.Struct:
        return pl.Struct(
            {k: pl.String() if v is None else build(v) for k, v in node.items()}  # type: ignore[arg-type]
        )

    return build(tree)


def _field(column: str, path: list[str]) -> pl.Expr:
    expr = pl.col(column)
    for part in path:
        expr = expr.struct.field(part)
    return expr


DECODE_SLICE = 25_000
"""Rows per parallel JSON-decoding slice: ``str.json_decode`` runs on one core, slices on all."""


def _decode_in_parallel(texts: pl.Series, dtype: pl.DataType) -> pl.Series:
    slices = [
        pl.LazyFrame({"t": texts.slice(start, DECODE_SLICE)}).select(
            pl.col("t").str.json_decode(dtype)
        )
        for start in range(0, max(len(texts), 1), DECODE_SLICE)
    ]
    return pl.concat(pl.collect_all(slices))["t"]


def _decode(texts: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, list[int], list[str]]:
    """Decode every text; on failure find the offending rows one by one (the slow path runs
    only when a payload drifted)."""
    try:
        return _decode_in_parallel(texts, dtype), [], []
    except pl.exceptions.ComputeError:
        pass
    bad: list[int] = []
    errors: list[str] = []
    for i, text in enumerate(texts.to_list()):
        try:
            pl.Series([text], dtype=pl.String()).str.json_decode(dtype)
        except pl.exceptions.ComputeError as exc:
            bad.append(i)
            errors.append(str(exc).splitlines()[0])
    good = texts.clear() if len(bad) == len(texts) else texts.scatter(bad, None)
    return _decode_in_parallel(good, dtype), bad, errors


def _envelopes(
    group: pl.DataFrame, keys: list[str], leaf: pl.DataType | None = None
) -> tuple[pl.DataFrame, list[str]]:
    """Decode each distinct envelope once; return them and the ones that did not decode."""
    dtype = pl.Struct(dict.fromkeys(keys, leaf or pl.String()))
    decoded: list[pl.DataFrame] = []
    broken: list[str] = []
    for text in group["envelope"].unique(maintain_order=True).to_list():
        one = pl.DataFrame({"envelope": [text]}, schema={"envelope": pl.String()})
        try:
            decoded.append(one.with_columns(_envelope=pl.col("envelope").str.json_decode(dtype)))
        except pl.exceptions.ComputeError:
            broken.append(text)
    return pl.concat(decoded) if decoded else pl.DataFrame(
        schema={"envelope": pl.String(), "_envelope": dtype}
    ), broken


def _split_drifted(
    frame: pl.DataFrame, details: dict[int, str], spec: SourceSpec
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows that mapped, and the ``_row``s named in ``details`` as schema-drift rejects."""
    is_bad = pl.col("_row").is_in(list(details))
    bad_rows = frame.filter(is_bad).sort("_row")
    rejected = _reject(
        bad_rows,
        "schema_drift",
        [
            f"record does not match the documented {spec.title} shape: {details[row]}"
            for row in bad_rows["_row"].to_list()
        ],
    )
    return frame.filter(~is_bad), rejected


def _stage_json(group: pl.DataFrame, spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    record_paths = {
        f: p.split(".")
        for f, p in spec.columns.items()
        if not p.startswith((ENVELOPE_PREFIX, SUBJECT_PREFIX))
    }
    envelope_keys = {
        f: p.removeprefix(ENVELOPE_PREFIX) for f, p in spec.columns.items() if p.startswith("@")
    }
    decoded, bad, errors = _decode(group["record"], _struct_for(list(record_paths.values())))
    frame = group.with_columns(_decoded=decoded, _row=pl.int_range(pl.len()))
    details = dict(zip(bad, errors, strict=True))
    if envelope_keys:
        envelopes, broken = _envelopes(group, list(envelope_keys.values()))
        frame = frame.join(envelopes, on="envelope", how="left", nulls_equal=True)
        for row in frame.filter(pl.col("envelope").is_in(broken))["_row"].to_list():
            details.setdefault(row, f"the response envelope lacks a readable {envelope_keys}")
    frame = frame.with_columns(
        *[_field("_decoded", path).alias(f) for f, path in record_paths.items()],
        *[pl.col("_envelope").struct.field(key).alias(f) for f, key in envelope_keys.items()],
    )
    return _split_drifted(frame, details, spec)


# --- series ------------------------------------------------------------------------------------


def _stage_series(group: pl.DataFrame, spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Records ``[epoch_ms, value]``; each ``@key`` column is another ``[[epoch_ms, value]]``
    series of the envelope, matched on the same timestamp text."""
    pair = pl.List(pl.String())
    decoded, bad, errors = _decode(group["record"], pair)
    frame = group.with_columns(_pair=decoded, _row=pl.int_range(pl.len()))
    details = dict(zip(bad, errors, strict=True))
    indexed = {f: int(p) for f, p in spec.columns.items() if p.isdigit()}
    frame = frame.with_columns(
        pl.col("_pair").list.get(i, null_on_oob=True).alias(f) for f, i in indexed.items()
    )
    series = {
        f: p.removeprefix(ENVELOPE_PREFIX) for f, p in spec.columns.items() if p.startswith("@")
    }
    if series:
        envelopes, broken = _envelopes(group, list(series.values()), pl.List(pair))
        time_field = next(f for f, i in indexed.items() if i == 0)
        for field_name, key in series.items():
            points = (
                envelopes.select("envelope", pl.col("_envelope").struct.field(key).alias("_p"))
                .explode("_p")
                .select(
                    "envelope",
                    pl.col("_p").list.get(0, null_on_oob=True).alias(time_field),
                    pl.col("_p").list.get(1, null_on_oob=True).alias(field_name),
                )
                .unique(["envelope", time_field], keep="last", maintain_order=True)
            )
            frame = frame.join(points, on=["envelope", time_field], how="left", nulls_equal=True)
        for row in frame.filter(pl.col("envelope").is_in(broken))["_row"].to_list():
            details.setdefault(row, f"the response envelope lacks readable {list(series.values())}")
    return _split_drifted(frame, details, spec)


# --- CSV ---------------------------------------------------------------------------------------


def _stage_csv(group: pl.DataFrame, spec: SourceSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    staged: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = [REJECTED.to_frame()]
    # Files of one layout may still order their columns differently: one header at a time.
    for (header,), file_lines in group.group_by("envelope", maintain_order=True):
        lines = file_lines.filter(pl.col("record").str.strip_chars() != "")
        columns, fields = split_fields(str(header), lines["record"])
        counts = fields.list.len()
        fits = counts == len(columns)
        misfits = lines.filter(~fits)
        rejected.append(
            _reject(
                misfits,
                "wrong_field_count",
                [
                    f"expected {len(columns)} fields ({', '.join(columns)}), got {n}"
                    for n in counts.filter(~fits).to_list()
                ],
            )
        )
        good = fields.filter(fits)
        # Prefixed so a CSV column can never shadow a lineage column such as "source".
        names = [CSV_PREFIX + c for c in columns]
        table = pl.DataFrame(
            [good.list.get(i).str.strip_chars().alias(name) for i, name in enumerate(names)],
            schema=dict.fromkeys(names, pl.String()),
        )
        frame = pl.concat([lines.filter(fits), table], how="horizontal")
        if "asset_id" not in columns:
            # The daily-history layout has no id: SYMBOL:Name keeps same-symbol assets apart.
            frame = frame.with_columns(
                pl.format("{}:{}", pl.col("csv:Symbol"), pl.col("csv:Name")).alias("csv:asset_id")
            )
        frame = frame.with_columns(
            *[
                (
                    pl.col(CSV_PREFIX + column)
                    if CSV_PREFIX + column in frame.columns
                    else pl.lit(None, pl.String())
                ).alias(f)
                for f, column in spec.columns.items()
            ]
        )
        staged.append(frame)
    if not staged:
        return group.clear(), pl.concat(rejected)
    return pl.concat(staged, how="diagonal_relaxed"), pl.concat(rejected)


# --- common ------------------------------------------------------------------------------------

_STAGERS: dict[
    RecordFormat, Callable[[pl.DataFrame, SourceSpec], tuple[pl.DataFrame, pl.DataFrame]]
] = {
    "json": _stage_json,
    "csv": _stage_csv,
    "series": _stage_series,
}

_TIME_PARSERS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "iso8601": lambda text: text.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%#z", time_zone="UTC", time_unit="us", strict=False
    ),
    "epoch_ms": lambda text: (
        pl.from_epoch(text.str.to_integer(strict=False), time_unit="ms")
        .dt.replace_time_zone("UTC")
        .dt.cast_time_unit("us")
    ),
    # An offset is honoured; legacy CSVs mostly carry none, and those dates are read as UTC
    # (documented in the README).
    "csv_datetime": lambda text: pl.coalesce(
        text.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", time_zone="UTC", time_unit="us", strict=False
        ),
        pl.coalesce(
            text.str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False),
            text.str.to_datetime("%Y-%m-%d", time_unit="us", strict=False),
            text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False),
        ).dt.replace_time_zone("UTC"),
    ),
}


def _finish(frame: pl.DataFrame, spec: SourceSpec) -> pl.DataFrame:
    """Fill unmapped fields, apply sentinels, parse the time; return exactly :data:`STAGED`."""
    missing = [pl.lit(None, pl.String()).alias(f) for f in TEXT_FIELDS if f not in spec.columns]
    subject = pl.col("subject").str.json_decode(
        pl.Struct(dict.fromkeys(SUBJECT_FIELDS, pl.String()))
    )
    from_subject = [
        subject.struct.field(p.removeprefix(SUBJECT_PREFIX)).alias(f)
        for f, p in spec.columns.items()
        if p.startswith(SUBJECT_PREFIX)
    ]
    frame = frame.with_columns(*missing, *from_subject)
    sentinels = [
        pl.when(pl.col(f).str.strip_chars().cast(pl.Float64(), strict=False) == float(value))
        .then(None)
        .otherwise(pl.col(f))
        .alias(f)
        for f, value in spec.sentinel_nulls.items()
    ]
    text = pl.col("observed_at").str.strip_chars()
    return (
        frame.with_columns(*sentinels, kind=pl.lit(spec.kind))
        .with_columns(
            observed_at_text=pl.col("observed_at"),
            observed_at=_TIME_PARSERS[spec.time_format](text),
        )
        .select(STAGED.names())
        .cast(STAGED)
    )
