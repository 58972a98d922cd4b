"""Staged text -> typed, validated quotes; everything else -> quarantine with a reason.

One set of whole-frame polars expressions for every source:

* money (price, market cap, volume) is parsed from its text straight to DECIMAL(38, 18), exactly:
  decimal strings and exponents alike (``1.258e-09`` stays 0.000000001258). A value that needs more
  than 18 decimal places or is >= 1e20 is quarantined as ``not_representable``, never rounded,
  unless its text is *float noise* (:func:`float_noise`): a binary double printed in full, whose
  digits past the 15th hold no information. That value is stored rounded to 18 places (half to
  even), the text stays in the raw zone, and :attr:`Validated.rounded` counts it.
* the price must be present, finite and positive; amounts and supplies must not be negative;
* ``observed_at`` must parse, be no later than the fetch (plus clock skew) and no earlier than
  Bitcoin's genesis block (which catches two-digit years);
* a record with a present-but-unparseable number is quarantined, not nulled.

A record is quarantined with the first rule it breaks; the rest of the batch loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from flows.transform.staging import TEXT_FIELDS, Staged
from store.schema import ASSET_CONTRACTS, MONEY, QUARANTINE, QUARANTINE_KEY, QUOTES

CLOCK_SKEW = timedelta(minutes=5)
MONEY_SCALE = MONEY.scale or 0
RANK_MAX = 2**31 - 1
GENESIS = datetime(2009, 1, 3, tzinfo=UTC)
MONEY_FIELDS = ("price_usd", "market_cap_usd", "volume_24h_usd")
FLOAT_FIELDS = ("pct_change_24h", "circulating_supply", "total_supply", "max_supply")
NON_NEGATIVE = ("market_cap_usd", "volume_24h_usd", "circulating_supply", "total_supply",
                "max_supply")  # fmt: skip
NATURAL_KEY = ("source", "source_asset_id", "observed_at")
"""Key of a validated observation before resolution assigns the coin."""

VALIDATED = pl.Schema({name: dtype for name, dtype in QUOTES.items() if name != "coin_id"})


@dataclass(frozen=True)
class Validated:
    quotes: pl.DataFrame
    """Schema :data:`VALIDATED`, one row per natural key."""
    quarantine: pl.DataFrame
    """Schema :data:`store.schema.QUARANTINE`."""
    duplicates: int
    """Identical re-deliveries of an observation in the batch (kept once), and intraday points
    of a daily series folded into their day's close."""
    contracts: pl.DataFrame = dataclasses.field(default_factory=ASSET_CONTRACTS.to_frame)
    """Schema :data:`store.schema.ASSET_CONTRACTS`: contract addresses the batch published."""
    verdicts_until: datetime | None = None
    """When the first verdict that depends on the moment of reading may turn: a record observed
    in the future is valid once that moment is near enough, a daily value once its day is over.
    None when no verdict depends on it. The same bytes read again before then load the same."""
    rounded: int = 0
    """Money values of the quotes written as float noise (:func:`float_noise`), stored rounded
    to 18 decimal places; their exact text is in the raw zone."""


_FLOAT_PREFIX = "_float:"
NUMERIC_FIELDS = (*MONEY_FIELDS, *FLOAT_FIELDS, "rank")


def _float(name: str) -> pl.Expr:
    """The field read as a float (null when it is not a number), parsed once per batch by
    :func:`_parse_numbers`: the rules read it many times."""
    return pl.col(_FLOAT_PREFIX + name)


def _parse_numbers() -> list[pl.Expr]:
    return [
        pl.col(f).cast(pl.Float64, strict=False).alias(_FLOAT_PREFIX + f) for f in NUMERIC_FIELDS
    ]


_NOISE_PREFIX = "_noise:"


def _noise(name: str) -> pl.Expr:
    """Whether the money field is float noise to be stored rounded (:func:`_find_noise`)."""
    return pl.col(_NOISE_PREFIX + name)


def _find_noise() -> list[pl.Expr]:
    """Per money field: float noise that does not fit 18 places and would not round to zero
    (a price of 0 is no price: such a value stays ``not_representable``)."""
    return [
        (
            float_noise(pl.col(f), _float(f))
            & (decimal_places(pl.col(f)) > MONEY_SCALE)
            & (pl.col(f).str.to_decimal(scale=MONEY_SCALE) != 0)
        )
        .fill_null(False)
        .alias(_NOISE_PREFIX + f)
        for f in MONEY_FIELDS
    ]


def _length(text: pl.Expr) -> pl.Expr:
    return text.str.len_bytes().cast(pl.Int64)


def decimal_places(text: pl.Expr) -> pl.Expr:
    """Decimal places a number's text needs to be held exactly (``1.2500e-3`` needs 5): the
    fraction's digits, less the exponent, less the trailing zeros of all the digits (none for
    zero). Plain string arithmetic, no regex: it runs on every money field of every record. Texts
    that are not numbers give a meaningless count; the rules reject those first
    (``not_a_number``)."""
    exponent_at = text.str.find("[eE]")
    mantissa = pl.when(exponent_at.is_null()).then(text).otherwise(text.str.slice(0, exponent_at))
    exponent = text.str.slice(exponent_at + 1).cast(pl.Int64, strict=False).fill_null(0)
    fraction = (_length(mantissa) - mantissa.str.find(".", literal=True) - 1).fill_null(0)
    digits = mantissa.str.replace(".", "", literal=True).str.strip_chars_start("+-")
    significant = _length(digits.str.strip_chars_end("0"))
    places = fraction - exponent - (_length(digits) - significant)
    # Zero needs no places however it is written (``0e-30``).
    return pl.when(significant == 0).then(0).otherwise(pl.max_horizontal(places, pl.lit(0)))


def significant_digits(text: pl.Expr) -> pl.Expr:
    """The digits of a number's text without sign, point, exponent, or leading and trailing
    zeros (``-0.0012500e3`` -> ``125``): with :func:`decimal_places`, its exact value."""
    exponent_at = text.str.find("[eE]")
    mantissa = pl.when(exponent_at.is_null()).then(text).otherwise(text.str.slice(0, exponent_at))
    digits = mantissa.str.replace(".", "", literal=True).str.strip_chars_start("+-")
    return digits.str.strip_chars_start("0").str.strip_chars_end("0")


DOUBLE_DIGITS = 15
"""Significant decimal digits every binary double keeps (C's ``DBL_DIG``): any decimal of 15
digits or fewer reads into a double and prints back unchanged."""


def float_noise(text: pl.Expr, as_float: pl.Expr) -> pl.Expr:
    """Whether a number's text is a binary float printed in full ("float noise") rather than a
    decimal the source stated. Both must hold:

    * the text is exactly the shortest decimal that reads back as its double, as Python's
      ``repr``, JavaScript and Rust print one (so at most 17 significant digits);
    * it has more significant digits than the binary float it denotes carries: 16 or 17 (a
      double keeps 15, ``DBL_DIG``), or, when the double is exactly a float32, more than that
      float32's own shortest text: a float32 widened to double and printed, as in the Kaggle
      daily files (``0.00020473099721129984`` is float32 ``0.000204731``,
      ``9.66399020398967e-05`` is ``0.0000966399``).

    So the digits the warehouse drops come from the binary conversion, not from the data. Not
    noise, so never rounded: a short decimal (``1e-30``, ``0.0000000000000000015``: a double
    holds it as written, and no float32 is that double), 18 or more digits (no float printer
    writes them: a decimal source stated them), 16-17 digits that are not the shortest text of
    their double (a decimal, or a double printed with ``%.17g``: ``0.10000000000000001``). A
    decimal source that writes exactly the digits of a double's shortest text cannot be told
    from a double.

    ``as_float`` is ``text`` read as a Float64 (null when it is not a number)."""
    digits = _length(significant_digits(text))
    shortest = as_float.cast(pl.String)
    is_shortest = (significant_digits(text) == significant_digits(shortest)) & (
        decimal_places(text) == decimal_places(shortest)
    )
    single = as_float.cast(pl.Float32)
    widened_single = (single.cast(pl.Float64) == as_float) & (
        digits > _length(significant_digits(single.cast(pl.String)))
    )
    return is_shortest & ((digits > DOUBLE_DIGITS) | widened_single)


VERDICT_TURNS = {
    "observed_at_in_future": pl.col("observed_at") - CLOCK_SKEW,
    "incomplete_day": pl.col("observed_at").dt.truncate("1d").dt.offset_by("1d"),
}
"""For the rules below whose verdict depends on the moment of reading: from when a record they
quarantined would pass them (:attr:`Validated.verdicts_until`)."""


def _checks(now: datetime) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(reason, broken-when, detail) in priority order; the first broken rule is reported."""
    checks: list[tuple[str, pl.Expr, pl.Expr]] = [
        ("missing_id", pl.col("source_asset_id").is_null(), pl.lit("the asset id is missing")),
        ("missing_symbol", pl.col("symbol").is_null(), pl.lit("the symbol is missing")),
        ("missing_name", pl.col("name").is_null(), pl.lit("the name is missing")),
        (
            "missing_observed_at",
            pl.col("observed_at_text").is_null(),
            pl.lit("the observation time is missing"),
        ),
        (
            "bad_observed_at",
            pl.col("observed_at").is_null(),
            pl.format("observed_at is not a time with a UTC offset: '{}'", "observed_at_text"),
        ),
        (
            "observed_at_in_future",
            pl.col("observed_at")
            > pl.max_horizontal(pl.col("fetched_at"), pl.lit(now)) + CLOCK_SKEW,
            pl.format("observed_at {} is later than the moment it was fetched", "observed_at"),
        ),
        (
            "incomplete_day",
            (pl.col("kind") == "history")
            & (pl.col("observed_at") >= pl.col("fetched_at").dt.truncate("1d")),
            pl.format(
                "observed_at {} is on the day it was fetched: a daily value is loaded once its "
                "UTC day is complete",
                "observed_at",
            ),
        ),
        (
            "observed_at_implausible",
            pl.col("observed_at") < GENESIS,
            pl.format("observed_at {} is before 2009-01-03 (two-digit year?)", "observed_at"),
        ),
        ("missing_price", pl.col("price_usd").is_null(), pl.lit("price_usd is missing")),
    ]
    for field in NUMERIC_FIELDS:
        checks.append(
            (
                "not_a_number",
                pl.col(field).is_not_null() & _float(field).is_null(),
                pl.format(f"{field} is not a number: '{{}}'", field),
            )
        )
        checks.append(
            (
                "not_finite",
                _float(field).is_nan() | _float(field).is_infinite(),
                pl.format(f"{field} is not finite: '{{}}'", field),
            )
        )
    for field in MONEY_FIELDS:
        # Decided from the text, not a float: DECIMAL(38, 18) holds the value exactly, or it is
        # float noise (stored rounded and counted), or the record is quarantined; str.to_decimal
        # would otherwise round silently.
        too_big = pl.col(field).str.to_decimal(scale=MONEY_SCALE).is_null()
        lossy = ((decimal_places(pl.col(field)) > MONEY_SCALE) & ~_noise(field)) | too_big
        checks.append(
            (
                "not_representable",
                pl.col(field).is_not_null() & _float(field).is_not_null() & lossy,
                pl.format(
                    f"{field} '{{}}' needs more than 18 decimal places or is >= 1e20 (and is "
                    "not a double printed in full, which would be stored rounded)",
                    field,
                ),
            )
        )
    checks.append(
        (
            "rank_out_of_range",
            (_float("rank") < 0) | (_float("rank") > RANK_MAX),
            pl.format("rank is outside 0..2147483647: '{}'", "rank"),
        )
    )
    checks.append(
        (
            "price_not_positive",
            _float("price_usd") <= 0,
            pl.format("price_usd must be positive, got '{}'", "price_usd"),
        )
    )
    for field in NON_NEGATIVE:
        checks.append(
            (
                "negative_value",
                _float(field) < 0,
                pl.format(f"{field} must not be negative, got '{{}}'", field),
            )
        )
    checks.append(
        (
            "not_a_number",
            _float("rank").is_not_null() & (_float("rank") != _float("rank").round(0)),
            pl.format("rank is not a whole number: '{}'", "rank"),
        )
    )
    return checks


@dataclass(frozen=True)
class Checked:
    """One batch of staged records after the rules that look at one record at a time:
    :func:`settle` then decides across batches (duplicates)."""

    good: pl.DataFrame
    """Typed rows that broke no rule, with ``_rounded`` (their float-noise values). Without
    their record text: only a conflicting duplicate needs it, to be quarantined as received,
    and :func:`settle` looks those few up (a record is most of a row's size)."""
    quarantine: pl.DataFrame
    """Schema :data:`store.schema.QUARANTINE`: records staging rejected or a rule broke."""
    folded: int
    verdicts_until: datetime | None


def check(staged: Staged, *, now: datetime) -> Checked:
    """Type and check each staged record against the rules of :func:`_checks`."""
    checks = _checks(now)
    frame = (
        staged.rows.with_columns(
            # Surrounding whitespace (NBSP included) is not data; an empty field is a missing one.
            pl.col(f).str.strip_chars().replace("", None).alias(f)
            for f in TEXT_FIELDS
        )
        .with_columns(_parse_numbers())
        .with_columns(_find_noise())
        .with_columns(
            reason=pl.coalesce(pl.when(broken).then(pl.lit(reason)) for reason, broken, _ in checks)
        )
    )
    # Details are worded for the few records that broke a rule, not for every record.
    bad = frame.filter(pl.col("reason").is_not_null()).with_columns(
        detail=pl.coalesce(pl.when(broken).then(detail) for _, broken, detail in checks)
    )
    good = frame.filter(pl.col("reason").is_null()).select(
        "source",
        "observed_at",
        "kind",
        "source_asset_id",
        "symbol",
        "name",
        *[pl.col(f).str.to_decimal(scale=MONEY_SCALE).alias(f) for f in MONEY_FIELDS],
        *[_float(f).alias(f) for f in FLOAT_FIELDS],
        _float("rank").cast(pl.Int32, strict=False).alias("rank"),
        "run_id",
        "raw_file",
        "raw_record",
        pl.sum_horizontal(_noise(f) for f in MONEY_FIELDS).cast(pl.Int64).alias("_rounded"),
    )
    quarantine = pl.concat(
        [
            _to_quarantine(staged.rejected.with_columns(source_asset_id=pl.lit(None, pl.String))),
            _to_quarantine(bad),
        ],
        how="vertical",
    )
    turns = bad.select(
        pl.coalesce(
            pl.when(pl.col("reason") == reason).then(turn) for reason, turn in VERDICT_TURNS.items()
        ).min()
    ).item()
    return Checked(good, quarantine, staged.folded, turns)


RecordsOf = Callable[[pl.DataFrame], pl.DataFrame]
"""(raw_file, raw_record) rows -> the same with ``record`` and ``record_sha256``."""


def settle(batches: list[Checked], records_of: RecordsOf) -> Validated:
    """The batches of one transform as one :class:`Validated`: duplicates are settled across
    them all, so a file read in several batches gives what it gives in one. ``records_of``
    finds the text of the conflicting duplicates to quarantine."""
    good = pl.concat([b.good for b in batches], how="vertical")
    kept, conflicts, duplicates = _dedupe(good)
    lineage = ["raw_file", "raw_record"]
    conflicts = conflicts.join(records_of(conflicts.select(lineage)), on=lineage, how="left")
    quarantine = pl.concat([*(b.quarantine for b in batches), _to_quarantine(conflicts)])
    # The earliest run to hold a bad record is the one that quarantined it.
    quarantine = quarantine.sort("raw_file", "raw_record").unique(
        subset=list(QUARANTINE_KEY), keep="first", maintain_order=True
    )
    turns = [b.verdicts_until for b in batches if b.verdicts_until is not None]
    return Validated(
        kept.select(VALIDATED.names()).cast(VALIDATED),
        quarantine,
        duplicates + sum(b.folded for b in batches),
        verdicts_until=min(turns, default=None),
        rounded=int(kept["_rounded"].sum()),
    )


def validate(staged: Staged, *, now: datetime | None = None) -> Validated:
    """Type and validate one batch of staged records."""
    text = staged.rows.select("raw_file", "raw_record", "record", "record_sha256")
    return settle(
        [check(staged, now=now or datetime.now(UTC))],
        lambda wanted: wanted.join(text, on=["raw_file", "raw_record"], how="left"),
    )


def _to_quarantine(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        "source",
        "record_sha256",
        "reason",
        "detail",
        "source_asset_id",
        "record",
        "raw_file",
        "raw_record",
        pl.col("run_id").alias("first_run_id"),
    ).cast(QUARANTINE)


def _dedupe(quotes: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """One row per observation within a run. Identical deliveries (a record repeated across
    pages when a listing shifts under pagination) are kept once, the last; an observation
    delivered with different values is ambiguous: no record says which is right, so every one
    of them is quarantined (``duplicate_conflict``) and none loads.

    Deliveries by different runs (a rebuild validates many runs at once) are all kept: which one
    counts is the loader's decision, run by run, as when they were first loaded."""
    key = [*NATURAL_KEY, "run_id"]
    if not quotes.select(pl.struct(key).is_duplicated().any()).item():
        no_conflicts = quotes.clear().with_columns(
            reason=pl.lit(None, pl.String()), detail=pl.lit(None, pl.String())
        )
        return quotes, no_conflicts, 0
    values = [c for c in VALIDATED if c not in (*key, "raw_file", "raw_record")]
    ordered = quotes.sort("raw_file", "raw_record")
    conflicting = pl.struct(values).n_unique().over(key) > 1
    conflicts = (
        ordered.filter(conflicting)
        .with_columns(
            _deliveries=pl.format("{} record {}", "raw_file", "raw_record").over(
                key, mapping_strategy="join"
            )
        )
        .with_columns(
            reason=pl.lit("duplicate_conflict"),
            detail=pl.format(
                "{} at {} was delivered {} times in one run with different values ({}): none "
                "is loaded, as no record says which is right",
                "source_asset_id",
                "observed_at",
                pl.col("_deliveries").list.len(),
                pl.col("_deliveries").list.join("; "),
            ),
        )
        .drop("_deliveries")
    )
    agreeing = ordered.filter(~conflicting)
    is_last = pl.int_range(pl.len()).over(key) == pl.len().over(key) - 1
    kept = agreeing.filter(is_last)
    return kept, conflicts, agreeing.height - kept.height
