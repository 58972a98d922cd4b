"""Drifted CoinGecko payloads (tests/drifted.py), one per class of drift: the event and its
class, what the policy did, that no wrong value reached quotes, and the source's status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from flows.drift import get_drift_settings
from store import runs
from store.connection import open_read_only
from tests.conftest import DEMO_DIR
from tests.drifted import (
    Record,
    added,
    as_strings,
    chained,
    drifted_coingecko,
    later,
    removed,
    renamed,
    retyped_to_object,
    scaled,
)
from tests.helpers import ingest_without_prefect


@pytest.fixture(autouse=True)
def drift_settings() -> Iterator[None]:
    get_drift_settings.cache_clear()
    yield
    get_drift_settings.cache_clear()


def demo_prices() -> dict[str, Decimal]:
    """The demo recording's CoinGecko price of each asset, as written."""
    prices = {}
    for page in sorted((DEMO_DIR / "coingecko" / "coins_markets").glob("page-*.json")):
        for record in json.loads(page.read_text(), parse_float=Decimal):
            if record.get("current_price") is not None:
                prices[record["id"]] = Decimal(record["current_price"])
    return prices


def load(replay: Path, data_dir: Path, run_id: str) -> runs.SourceResult:
    return ingest_without_prefect(replay, data_dir, run_id=run_id, sources=("coingecko",))[
        "coingecko"
    ]


def query(data_dir: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    con = open_read_only(data_dir / "warehouse.duckdb")
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def events(data_dir: Path, run_id: str) -> dict[tuple[str, str], tuple[str, str, float | None]]:
    """(field, class) -> (policy, related field, confidence) of the run's drift events."""
    rows = query(
        data_dir,
        "select field, drift_class, policy, related_field, confidence from drift_events "
        "where run_id = ?",
        run_id,
    )
    return {(str(f), str(c)): (str(p), r, q) for f, c, p, r, q in rows}  # type: ignore[misc]


def quotes_of_run(data_dir: Path, run_id: str) -> dict[str, Decimal]:
    rows = query(
        data_dir,
        "select source_asset_id, price_usd from quotes where source = 'coingecko' and run_id = ?",
        run_id,
    )
    return {str(a): p for a, p in rows}  # type: ignore[misc]


def assert_right_prices(data_dir: Path, run_id: str) -> None:
    """Every coingecko price the run stored is the demo's price of that asset."""
    stored, expected = quotes_of_run(data_dir, run_id), demo_prices()
    assert stored
    assert {a: expected[a] for a in stored} == stored


def clean_then(tmp_path: Path, data_dir: Path, change: object) -> runs.SourceResult:
    """The demo loaded as run-1, then the drifted payload (observed 5 minutes later) as run-2."""
    replay = drifted_coingecko(tmp_path / "replay", lambda n, r: r)
    assert load(replay, data_dir, "run-1").status == "loaded"
    drifted_coingecko(tmp_path / "replay", chained(later(5), change))  # type: ignore[arg-type]
    return load(replay, data_dir, "run-2")


def test_a_required_field_removed_fails_the_source_naming_the_field(
    tmp_path: Path, data_dir: Path
) -> None:
    replay = drifted_coingecko(tmp_path / "replay", removed("current_price"))
    result = load(replay, data_dir, "run-1")
    assert result.status == "failed"
    assert result.error is not None
    assert "field_removed 'current_price'" in result.error
    assert events(data_dir, "run-1")[("current_price", "field_removed")][0] == "fail"
    assert quotes_of_run(data_dir, "run-1") == {}


def test_a_rename_fails_on_the_removed_field_and_is_reported_as_a_probable_rename(
    tmp_path: Path, data_dir: Path
) -> None:
    # The reproduction, after a clean run whose values the rename is compared with.
    result = clean_then(tmp_path, data_dir, renamed("current_price", "price"))
    assert result.status == "failed"
    found = events(data_dir, "run-2")
    assert found[("current_price", "field_removed")][0] == "fail"
    policy, related, confidence = found[("price", "probable_rename")]
    assert policy == "warn"
    assert related == "current_price"
    assert confidence is not None
    assert confidence >= 0.8, "same values under a name that contains the old one's last word"
    assert quotes_of_run(data_dir, "run-2") == {}


def test_a_rename_without_a_previous_run_is_still_found_by_name_and_type(
    tmp_path: Path, data_dir: Path
) -> None:
    replay = drifted_coingecko(tmp_path / "replay", renamed("current_price", "price"))
    assert load(replay, data_dir, "run-1").status == "failed"
    _, related, confidence = events(data_dir, "run-1")[("price", "probable_rename")]
    assert related == "current_price"
    assert confidence is not None
    assert confidence < 0.8


def test_a_mapped_rename_loads_the_right_values(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KASPARRO_DRIFT_RENAMES", '{"coingecko": {"price": "current_price"}}')
    replay = drifted_coingecko(tmp_path / "replay", renamed("current_price", "price"))
    result = load(replay, data_dir, "run-1")
    assert result.status == "loaded", result.error
    assert not [k for k in events(data_dir, "run-1") if k[1] != "field_added"]
    assert_right_prices(data_dir, "run-1")


def test_a_required_field_retyped_fails_the_source(tmp_path: Path, data_dir: Path) -> None:
    replay = drifted_coingecko(tmp_path / "replay", retyped_to_object("current_price"))
    result = load(replay, data_dir, "run-1")
    assert result.status == "failed"
    assert result.error is not None
    assert "type_changed 'current_price'" in result.error
    assert events(data_dir, "run-1")[("current_price", "type_changed")][0] == "fail"
    assert quotes_of_run(data_dir, "run-1") == {}


def test_a_mapped_field_retyped_quarantines_its_records_and_the_rest_load(
    tmp_path: Path, data_dir: Path
) -> None:
    replay = drifted_coingecko(tmp_path / "replay", retyped_to_object("market_cap", every=10))
    result = load(replay, data_dir, "run-1")
    assert result.status == "loaded"
    assert events(data_dir, "run-1")[("market_cap", "type_changed")][0] == "quarantine"
    held = query(
        data_dir,
        "select raw_file, raw_record from quarantine where reason = 'drift_type_changed'",
    )
    assert len(held) == 30, "every 10th of the 300 records"
    stored = query(data_dir, "select raw_file, raw_record from quotes where run_id = 'run-1'")
    assert stored
    assert not set(held) & set(stored)
    assert any("quarantined" in w for w in result.warnings)


def test_numbers_as_strings_fail_by_default_and_load_exactly_when_allowed(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay = drifted_coingecko(tmp_path / "replay", as_strings("current_price", "market_cap"))
    result = load(replay, data_dir, "run-1")
    assert result.status == "failed"
    assert events(data_dir, "run-1")[("current_price", "type_changed")][0] == "fail"
    assert quotes_of_run(data_dir, "run-1") == {}

    monkeypatch.setenv("KASPARRO_DRIFT_POLICIES", '{"coingecko": {"type_changed": "evolve"}}')
    get_drift_settings.cache_clear()
    result = load(replay, data_dir, "run-2")
    assert result.status == "loaded"
    assert events(data_dir, "run-2")[("current_price", "type_changed")][0] == "evolve"
    assert_right_prices(data_dir, "run-2")


def test_a_currency_switch_is_a_domain_change_and_no_converted_price_loads(
    tmp_path: Path, data_dir: Path
) -> None:
    # A listing quoted in EUR: every money value 0.92 of the USD one.
    money = ("current_price", "market_cap", "total_volume")
    result = clean_then(tmp_path, data_dir, scaled(0.92, *money))
    found = events(data_dir, "run-2")
    for name in money:
        assert found[(name, "domain_changed")][0] == "quarantine", name
    assert result.status == "failed", "every record quarantined: none valid"
    assert quotes_of_run(data_dir, "run-2") == {}
    (held,) = query(
        data_dir, "select count(*) from quarantine where reason = 'drift_domain_changed'"
    )
    with_price = sum(
        record.get("current_price") is not None
        for page in (DEMO_DIR / "coingecko" / "coins_markets").glob("page-*.json")
        for record in json.loads(page.read_text())
    )
    assert held[0] == with_price, "every record with a price"


def test_an_added_field_evolves(tmp_path: Path, data_dir: Path) -> None:
    result = clean_then(tmp_path, data_dir, added("price_eur", 1.5))
    assert events(data_dir, "run-2") == {("price_eur", "field_added"): ("evolve", None, None)}
    assert result.status == "loaded"
    assert result.inserted > 0
    assert_right_prices(data_dir, "run-2")


def test_a_clean_rerun_finds_no_drift(tmp_path: Path, data_dir: Path) -> None:
    def same(number: int, record: Record) -> Record:
        return record

    clean_then(tmp_path, data_dir, same)
    assert events(data_dir, "run-2") == {}
    observed = query(data_dir, "select count(distinct run_id) from schema_observations")
    assert observed == [(2,)]
