"""Staging and validation: exact money, times in UTC, and a reason for every rejected record."""

from __future__ import annotations

import json
import struct
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.transform import stage, validate
from flows.transform.quotes import decimal_places
from tests.flows.transform.conftest import RawOf, raw_rows


def gecko(**fields: Any) -> str:
    record: dict[str, Any] = {
        "id": "bitcoin",
        "symbol": "btc",
        "name": "Bitcoin",
        "current_price": 23197,
        "market_cap": 443243318907,
        "total_volume": 44434195912,
        "price_change_percentage_24h": -1.00053,
        "circulating_supply": 19109818.0,
        "total_supply": 21000000.0,
        "max_supply": 21000000.0,
        "market_cap_rank": 1,
        "last_updated": "2026-11-24T11:58:26.342Z",
    }
    record.update(fields)
    return json.dumps(record)


def run(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    validated = validate(stage(raw))
    return validated.quotes, validated.quarantine


def reasons(quarantine: pl.DataFrame) -> list[str]:
    return quarantine["reason"].to_list()


def test_a_valid_coingecko_record_becomes_a_typed_quote(raw_of: RawOf) -> None:
    quotes, quarantine = run(raw_of("coingecko", "coins_markets", [gecko()]))
    assert quarantine.is_empty()
    row = quotes.row(0, named=True)
    assert row["source_asset_id"] == "bitcoin"
    assert row["price_usd"] == Decimal("23197")
    assert row["market_cap_usd"] == Decimal("443243318907")
    assert row["observed_at"].isoformat() == "2026-11-24T11:58:26.342000+00:00"
    assert row["rank"] == 1
    assert row["raw_file"] == "file-1.parquet"
    assert row["raw_record"] == 0


def test_exponent_prices_round_trip_exactly(raw_of: RawOf) -> None:
    # Written by hand: the exponent must reach the parser as served, not as Python prints it.
    record = (
        '{"id": "tiny", "symbol": "tny", "name": "Tiny", "current_price": 1.258e-09, '
        '"last_updated": "2026-11-24T11:00:00Z"}'
    )
    quotes, _ = run(raw_of("coingecko", "coins_markets", [record]))
    price = quotes["price_usd"][0]
    assert price == Decimal("1.258e-09")
    assert float(price) == 1.258e-09


def test_decimal_strings_keep_every_digit(raw_of: RawOf) -> None:
    record = json.dumps(
        {
            "id": "bitcoin",
            "rank": "1",
            "symbol": "BTC",
            "name": "Bitcoin",
            "supply": "19699693.0000000000000000",
            "maxSupply": None,
            "marketCapUsd": "1315269402102.4076428731440099",
            "volumeUsd24Hr": "7202208890.0214744350826841",
            "priceUsd": "66765.9847339959888143",
            "changePercent24Hr": "2.3460302309865676",
        }
    )
    envelope = '{"data": [], "timestamp": 1764000000000}'
    quotes, quarantine = run(raw_of("coincap", "assets", [record], envelope=envelope))
    assert quarantine.is_empty()
    row = quotes.row(0, named=True)
    assert row["price_usd"] == Decimal("66765.9847339959888143")
    assert row["market_cap_usd"] == Decimal("1315269402102.4076428731440099")
    assert row["observed_at"].isoformat() == "2025-11-24T16:00:00+00:00"
    assert row["max_supply"] is None
    assert row["rank"] == 1


def test_coinpaprika_max_supply_zero_means_unknown(raw_of: RawOf) -> None:
    record = json.dumps(
        {
            "id": "eos-eos",
            "name": "EOS",
            "symbol": "EOS",
            "rank": 7,
            "circulating_supply": 934430988,
            "total_supply": 1031130999,
            "max_supply": 0,
            "last_updated": "2026-11-24T10:50:42Z",
            "quotes": {
                "USD": {
                    "price": 2.99112754,
                    "volume_24h": 1094167914.1657,
                    "market_cap": 2795002262,
                    "percent_change_24h": 1.07,
                }
            },
        }
    )
    quotes, _ = run(raw_of("coinpaprika", "tickers", [record]))
    row = quotes.row(0, named=True)
    assert row["max_supply"] is None
    assert row["total_supply"] == 1031130999
    assert row["price_usd"] == Decimal("2.99112754")


def test_coingecko_max_supply_zero_is_kept_as_zero(raw_of: RawOf) -> None:
    quotes, _ = run(raw_of("coingecko", "coins_markets", [gecko(max_supply=0)]))
    assert quotes["max_supply"][0] == 0.0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"current_price": None}, "missing_price"),
        ({"current_price": -1.5}, "price_not_positive"),
        ({"current_price": 0}, "price_not_positive"),
        ({"current_price": "n/a"}, "not_a_number"),
        ({"current_price": 1e-30}, "not_representable"),
        ({"current_price": 3e25}, "not_representable"),
        ({"market_cap": -10}, "negative_value"),
        ({"total_supply": -1}, "negative_value"),
        ({"market_cap_rank": 1.5}, "not_a_number"),
        ({"market_cap_rank": 3000000000}, "rank_out_of_range"),
        # More than 18 places, and no binary float printed in full (see float_noise):
        ({"current_price": "0.0000000123456789012345678"}, "not_representable"),  # 18 digits
        ({"current_price": "1.9999999999999999999"}, "not_representable"),
        ({"current_price": "0.0000000000000000015"}, "not_representable"),  # stated exactly
        ({"current_price": "1.0000000000000001e-05"}, "not_representable"),  # %.17g, not shortest
        ({"current_price": "1.2345678901234567e-05"}, "not_representable"),  # not shortest
        ({"current_price": 1.2345678901234567e-19}, "not_representable"),  # noise, rounds to 0
        ({"market_cap": 1.2345678901234567e20}, "not_representable"),
        ({"id": ""}, "missing_id"),
        ({"id": None}, "missing_id"),
        ({"symbol": "  "}, "missing_symbol"),
        ({"last_updated": None}, "missing_observed_at"),
        ({"last_updated": "2026-11-24 11:00:00"}, "bad_observed_at"),
        ({"last_updated": "yesterday"}, "bad_observed_at"),
        ({"last_updated": "2027-01-01T00:00:00Z"}, "observed_at_in_future"),
        ({"last_updated": "2008-01-01T00:00:00Z"}, "observed_at_implausible"),
    ],
)
def test_bad_records_are_quarantined_with_their_reason(
    raw_of: RawOf, fields: dict[str, Any], reason: str
) -> None:
    good = gecko(id="ethereum", symbol="eth", name="Ethereum")
    quotes, quarantine = run(raw_of("coingecko", "coins_markets", [gecko(**fields), good]))
    assert reasons(quarantine) == [reason]
    assert quotes["source_asset_id"].to_list() == ["ethereum"], "the good record still loads"
    held = quarantine.row(0, named=True)
    assert held["raw_file"] == "file-1.parquet"
    assert held["raw_record"] == 0
    assert held["record"] == gecko(**fields), "the quarantine keeps the record as received"
    assert held["detail"], "every quarantine row explains itself"


DAILY_HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"


def test_float_noise_is_stored_rounded_to_18_places_and_counted(raw_of: RawOf) -> None:
    """Lines of the Kaggle daily files (NEM, XRP): prices written as a float32 widened to a
    double and printed in full. The digits past the 18th place are noise: the rows load."""
    lines = [
        "1,NEM,XEM,2015-04-02 23:59:59,0.1,0.1,0.1,0.00020473099721129984,28549.400390625,"
        "2823533.99969",
        "2,NEM,XEM,2015-09-04 23:59:59,0.1,0.1,0.1,9.66399020398967e-05,232.59100341796875,"
        "869759.099903",
        "3,XRP,XRP,2013-08-06 23:59:59,0.1,0.1,0.1,0.004680419806391001,0.0,36591007.7403",
        # A double printed in full (16 digits) that fits 18 places needs no rounding.
        "4,XRP,XRP,2013-08-07 23:59:59,0.1,0.1,0.1,0.3333333333333333,0.0,1",
    ]
    validated = validate(
        stage(raw_of("csv", "daily_history", lines, envelope=DAILY_HEADER, first_index=2))
    )
    assert validated.quarantine.is_empty()
    assert validated.quotes["price_usd"].to_list() == [
        Decimal("0.000204730997211300"),
        Decimal("0.000096639902039897"),
        Decimal("0.004680419806391001"),
        Decimal("0.3333333333333333"),
    ]
    assert validated.rounded == 2


def test_a_noisy_value_in_a_quarantined_or_repeated_row_is_not_counted(raw_of: RawOf) -> None:
    noisy = "1,NEM,XEM,2015-04-02 23:59:59,0.1,0.1,0.1,0.00020473099721129984,1,2"
    lines = [noisy, noisy, noisy.replace("2015-04-02", "15-04-02")]
    validated = validate(stage(raw_of("csv", "daily_history", lines, envelope=DAILY_HEADER)))
    assert (validated.quotes.height, validated.duplicates, validated.rounded) == (1, 1, 1)
    assert reasons(validated.quarantine) == ["observed_at_implausible"]


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _loaded(texts: list[str]) -> tuple[list[Decimal | None], list[str | None], int]:
    """Per text, as one batch: the price stored (or None) and the quarantine reason (or None);
    and the count of values stored rounded."""
    records = [
        json.dumps({"id": f"x{i}", "symbol": "X", "name": "X", "priceUsd": text})
        for i, text in enumerate(texts)
    ]
    envelope = '{"data": [], "timestamp": 1764000000000}'
    validated = validate(stage(raw_rows("coincap", "assets", records, envelope=envelope)))
    price = dict(zip(validated.quotes["raw_record"], validated.quotes["price_usd"], strict=True))
    reason = dict(
        zip(validated.quarantine["raw_record"], validated.quarantine["reason"], strict=True)
    )
    return (
        [price.get(i) for i in range(len(texts))],
        [reason.get(i) for i in range(len(texts))],
        validated.rounded,
    )


def _rounded(text: str) -> Decimal:
    wide = Context(prec=60)  # the default 28 digits cannot hold 20 integer + 18 decimal places
    return Decimal(text).quantize(Decimal("1e-18"), rounding=ROUND_HALF_EVEN, context=wide)


@settings(deadline=None)
@given(st.lists(st.floats(min_value=2.0**-40, max_value=2.0**59, width=32), min_size=1))
def test_any_float32_printed_as_a_double_loads_rounded_half_to_even(singles: list[float]) -> None:
    """The Kaggle files' case: a float32 widened to double, printed by repr."""
    texts = [repr(_float32(single)) for single in singles]
    prices, quarantined, rounded = _loaded(texts)
    assert quarantined == [None] * len(texts)
    assert prices == [_rounded(text) for text in texts]
    assert rounded == sum(Decimal(text) != _rounded(text) for text in texts)


def _expected(double: float) -> tuple[Decimal | None, str | None]:
    text = repr(double)
    if Decimal(text) == _rounded(text):
        return Decimal(text), None  # it fits: stored exactly
    digits = len(Decimal(text).normalize().as_tuple().digits)
    if digits > 15 or _float32(double) == double:
        return _rounded(text), None  # float noise
    return None, "not_representable"  # a short decimal the source stated: never rounded


@settings(deadline=None)
@given(st.lists(st.floats(min_value=1e-12, max_value=1e18), min_size=1))
def test_any_double_printed_in_full_loads_rounded_half_to_even(doubles: list[float]) -> None:
    prices, quarantined, rounded = _loaded([repr(d) for d in doubles])
    expected = [_expected(d) for d in doubles]
    assert list(zip(prices, quarantined, strict=True)) == expected
    stored = zip(prices, doubles, strict=True)
    assert rounded == sum(p is not None and p != Decimal(repr(d)) for p, d in stored)


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=10**17, max_value=10**24 - 1).filter(lambda n: n % 10),
            st.integers(min_value=19, max_value=40),
        ),
        min_size=1,
    )
)
def test_a_decimal_of_18_or_more_digits_past_18_places_is_never_rounded(
    decimals: list[tuple[int, int]],
) -> None:
    """No float printer writes 18 significant digits: the source stated the decimal."""
    texts = [str(Decimal(digits).scaleb(-places)) for digits, places in decimals]
    prices, quarantined, _ = _loaded(texts)
    assert prices == [None] * len(texts)
    assert quarantined == ["not_representable"] * len(texts)


def test_a_drifted_field_quarantines_only_that_record(raw_of: RawOf) -> None:
    drifted = gecko(id="drift", current_price={"usd": 1.0})
    quotes, quarantine = run(raw_of("coingecko", "coins_markets", [gecko(), drifted, "{not json"]))
    assert quotes["source_asset_id"].to_list() == ["bitcoin"]
    assert reasons(quarantine) == ["schema_drift", "schema_drift"]
    assert "CoinGecko" in quarantine["detail"][0]


def test_identical_redeliveries_are_kept_once(raw_of: RawOf) -> None:
    raw = pl.concat(
        [
            raw_of("coingecko", "coins_markets", [gecko()], raw_file="page-0001.parquet"),
            raw_of("coingecko", "coins_markets", [gecko()], raw_file="page-0002.parquet"),
        ]
    )
    validated = validate(stage(raw))
    assert validated.quotes.height == 1
    assert validated.quotes["raw_file"][0] == "page-0002.parquet", "the later delivery wins"
    assert validated.duplicates == 1
    assert validated.quarantine.is_empty()


def test_conflicting_deliveries_of_one_observation_are_all_quarantined(raw_of: RawOf) -> None:
    """Two records in one page for the same asset and time with different prices: nothing says
    which is right, so neither loads (the later one used to win)."""
    records = [gecko(current_price=1.0), gecko(id="ethereum"), gecko(current_price=2.0)]
    validated = validate(stage(raw_of("coingecko", "coins_markets", records)))
    assert validated.quotes["source_asset_id"].to_list() == ["ethereum"]
    assert reasons(validated.quarantine) == ["duplicate_conflict"] * 2
    assert validated.quarantine["raw_record"].to_list() == [0, 2]
    assert validated.quarantine["record"].to_list() == [records[0], records[2]]
    detail = validated.quarantine["detail"][0]
    assert "delivered 2 times in one run with different values" in detail
    assert "file-1.parquet record 0; file-1.parquet record 2" in detail
    assert validated.duplicates == 0


def test_conflicting_deliveries_across_pages_are_all_quarantined(raw_of: RawOf) -> None:
    raw = pl.concat(
        [
            raw_of("coingecko", "coins_markets", [gecko(current_price=1.0)], raw_file="p1.parquet"),
            raw_of("coingecko", "coins_markets", [gecko(current_price=1.0)], raw_file="p2.parquet"),
            raw_of("coingecko", "coins_markets", [gecko(current_price=2.0)], raw_file="p3.parquet"),
        ]
    )
    validated = validate(stage(raw))
    assert validated.quotes.is_empty()
    # The two identical records share a sha256: one quarantine row holds them.
    assert reasons(validated.quarantine) == ["duplicate_conflict"] * 2
    assert validated.quarantine["raw_file"].to_list() == ["p1.parquet", "p3.parquet"]
    assert "delivered 3 times" in validated.quarantine["detail"][0]


def test_deliveries_that_differ_only_where_a_value_is_missing_conflict(raw_of: RawOf) -> None:
    records = [gecko(market_cap=None), gecko()]
    validated = validate(stage(raw_of("coingecko", "coins_markets", records)))
    assert validated.quotes.is_empty()
    assert reasons(validated.quarantine) == ["duplicate_conflict"] * 2


def test_the_same_observation_from_two_runs_is_not_a_conflict(raw_of: RawOf) -> None:
    """A rebuild validates many runs at once; which run's value counts is the loader's call."""
    raw = pl.concat(
        [
            raw_of("coingecko", "coins_markets", [gecko(current_price=1.0)], run_id="run-1"),
            raw_of("coingecko", "coins_markets", [gecko(current_price=2.0)], run_id="run-2"),
        ]
    )
    validated = validate(stage(raw))
    assert validated.quarantine.is_empty()
    assert validated.quotes["price_usd"].to_list() == [Decimal("1"), Decimal("2")]


def test_daily_history_csv_rows_become_quotes_in_utc(raw_of: RawOf) -> None:
    header = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"
    lines = [
        "1,Dogecoin,DOGE,2026-11-20 23:59:59,0.1,0.09,0.095,9.8e-05,0.0,1.4E+11",
        "2,Dogecoin,DOGE,2026-11-21 23:59:59,0.1,0.09,0.095,0.099,12.5,14.748.800.659.179.600",
        "3,Dogecoin,DOGE,16-12-13 23:59:59,0.1,0.09,0.095,0.099,12.5,1000",
        "4,Dogecoin,DOGE,2026-11-22 23:59:59,0.1",
        '5,"Dogecoin,DOGE,2026-11-23 23:59:59,0.1,0.09,0.095,0.099,12.5,1000',
        # Fetched at noon on the 24th: that day's close is not complete yet.
        "6,Dogecoin,DOGE,2026-11-24 23:59:59,0.1,0.09,0.095,0.099,12.5,1000",
    ]
    validated = validate(
        stage(raw_of("csv", "daily_history", lines, envelope=header, first_index=2))
    )
    row = validated.quotes.row(0, named=True)
    assert row["source_asset_id"] == "DOGE:Dogecoin"
    assert row["price_usd"] == Decimal("0.000098")
    assert row["market_cap_usd"] == Decimal("140000000000")
    assert row["observed_at"].isoformat() == "2026-11-20T23:59:59+00:00"
    held = dict(
        zip(validated.quarantine["raw_record"], validated.quarantine["reason"], strict=True)
    )
    assert held == {
        3: "not_a_number",
        4: "observed_at_implausible",
        5: "wrong_field_count",
        6: "wrong_field_count",
        7: "incomplete_day",
    }
    assert validated.quotes["raw_record"].to_list() == [2], "a stray quote costs one line"


def test_the_moment_a_verdict_may_turn_is_the_earliest_of_the_batch(raw_of: RawOf) -> None:
    """A record observed in the future is valid once it is within the clock-skew allowance, a
    daily value once its UTC day is over: the same bytes read then load differently."""
    soon, later = "2027-01-01T00:00:00Z", "2027-03-01T00:00:00Z"
    records = [gecko(id="a", last_updated=later), gecko(id="b", last_updated=soon), gecko()]
    validated = validate(stage(raw_of("coingecko", "coins_markets", records)))
    assert reasons(validated.quarantine) == ["observed_at_in_future"] * 2
    assert validated.verdicts_until is not None
    assert validated.verdicts_until.isoformat() == "2026-12-31T23:55:00+00:00"

    header = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"
    line = "1,Dogecoin,DOGE,2026-11-24 23:59:59,0.1,0.09,0.095,0.099,12.5,1000"
    daily = validate(stage(raw_of("csv", "daily_history", [line], envelope=header)))
    assert reasons(daily.quarantine) == ["incomplete_day"]
    assert daily.verdicts_until is not None
    assert daily.verdicts_until.isoformat() == "2026-11-25T00:00:00+00:00"

    settled = validate(stage(raw_of("coingecko", "coins_markets", [gecko(current_price=None)])))
    assert reasons(settled.quarantine) == ["missing_price"]
    assert settled.verdicts_until is None, "a missing price stays missing"


def test_canonical_csv_with_semicolons(raw_of: RawOf) -> None:
    header = "asset_id;symbol;name;observed_at;price_usd;market_cap_usd"
    lines = ['kas-1;KAS;"Kasparro; Test";2026-11-20T00:00:00+00:00;1.5;']
    validated = validate(stage(raw_of("csv", "canonical", lines, envelope=header)))
    row = validated.quotes.row(0, named=True)
    assert (row["source_asset_id"], row["name"], row["price_usd"]) == (
        "kas-1",
        "Kasparro; Test",
        Decimal("1.5"),
    )
    assert row["market_cap_usd"] is None


@given(
    st.decimals(
        min_value=Decimal("1e-18"),
        max_value=Decimal("99999999999999999999"),
        allow_nan=False,
        allow_infinity=False,
        places=18,
    )
)
def test_any_decimal_string_with_at_most_18_places_is_stored_exactly(value: Decimal) -> None:
    record = json.dumps({"id": "x", "symbol": "X", "name": "X", "priceUsd": format(value, "f")})
    envelope = '{"data": [], "timestamp": 1764000000000}'
    raw = raw_rows("coincap", "assets", [record], envelope=envelope)
    quotes = validate(stage(raw)).quotes
    assert quotes["price_usd"].to_list() == [value]


_DIGITS = st.text("0123456789", max_size=24)


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """Every spelling of a number a source may send: signs, bare dots, exponents, zeros."""
    text = draw(st.sampled_from(["", "+", "-"])) + draw(_DIGITS)
    if draw(st.booleans()):
        text += "." + draw(_DIGITS)
    if draw(st.booleans()):
        exponent = draw(st.integers(-40, 40))
        text += draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+"])) * (exponent >= 0)
        text += str(exponent)
    return text


@given(st.lists(number_texts(), min_size=1, max_size=50))
def test_decimal_places_are_those_python_decimal_needs(texts: list[str]) -> None:
    """What decides not_representable: the places a text needs to be held exactly."""
    numbers = [t for t in texts if any(c.isdigit() for c in t.split("e")[0].split("E")[0])]
    if not numbers:
        return
    counted = pl.select(decimal_places(pl.Series(numbers, dtype=pl.String()))).to_series()
    assert counted.to_list() == [_places(Decimal(t)) for t in numbers]


def _places(value: Decimal) -> int:
    """Exactly, without a context's rounding (``Decimal.normalize`` keeps 28 digits)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    return max(0, -(exponent + len(digits) - len(significant)))
