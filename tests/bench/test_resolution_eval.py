"""The measuring stick of entity resolution: the real labelled set, the time-shifted demo and the
in-memory market lookup the real-capture evaluation answers with."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bench.realcaptures import SHARED_ENV, shared_dir, source_ids
from bench.resolution_eval import DEMO_SHIFTS, REAL_LABELS, MemoryWarehouse
from bench.timeshift import drift, shift_recording
from flows.resolution import MARKET_LOOKUP
from flows.resolution.evaluation import AssetRef, LabelledPair, read_labels
from tests.conftest import DEMO_DIR, REPO

CATEGORIES = {"easy", "renamed", "shared_symbol", "wrapped_bridged", "different_slugs", "unicode"}


@pytest.fixture(scope="module")
def labels() -> list[LabelledPair]:
    return read_labels(REPO / REAL_LABELS)


def test_the_real_labelled_set_is_large_hard_and_holds_false_pairs(
    labels: list[LabelledPair],
) -> None:
    categories = Counter(pair.category for pair in labels)
    assert set(categories) <= CATEGORIES, set(categories) - CATEGORIES
    assert len(labels) >= 400
    assert sum(n for category, n in categories.items() if category != "easy") >= 150
    assert sum(not pair.same for pair in labels) >= 100
    assert all(pair.note for pair in labels if pair.category != "easy"), "a hard row lacks a note"
    assert all(pair.a.source != pair.b.source for pair in labels), "pairs are cross-source"


def test_the_real_labels_do_not_contradict_each_other(labels: list[LabelledPair]) -> None:
    """Pairs labelled same group assets into real-world assets: a group holds one asset per
    source (a coin holds one asset per source, so a perfect score must be possible), and no
    pair labelled different sits inside a group."""
    parent: dict[AssetRef, AssetRef] = {}

    def root(ref: AssetRef) -> AssetRef:
        while parent.get(ref, ref) != ref:
            ref = parent[ref]
        return ref

    for pair in labels:
        if pair.same:
            parent[root(pair.a)] = root(pair.b)
    groups: defaultdict[AssetRef, set[AssetRef]] = defaultdict(set)
    for pair in labels:
        for ref in (pair.a, pair.b):
            groups[root(ref)].add(ref)
    crowded = [
        sorted(map(str, group))
        for group in groups.values()
        if max(Counter(ref.source for ref in group).values()) > 1
    ]
    assert crowded == [], "two assets of one source labelled the same asset"
    contradicted = [
        (pair.line, str(pair.a), str(pair.b))
        for pair in labels
        if not pair.same and root(pair.a) == root(pair.b)
    ]
    assert contradicted == [], "pairs labelled different that other labels make the same"


def test_every_labelled_id_is_in_a_real_capture_of_its_source(labels: list[LabelledPair]) -> None:
    realdata = shared_dir() / "realdata"
    if not realdata.is_dir():
        pytest.skip(f"{realdata} is absent: set {SHARED_ENV} to the folder holding realdata/")
    known = source_ids(realdata)
    unknown = sorted(
        {str(ref) for pair in labels for ref in (pair.a, pair.b)}
        - {f"{source}/{asset}" for source, ids in known.items() for asset in ids}
    )
    assert unknown == []


# --- the time-shifted demo ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shift") / "demo"
    shift_recording(DEMO_DIR, out, DEMO_SHIFTS, seed=7)
    return out


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_shift_moves_every_timestamp_of_the_source_and_nothing_else(shifted: Path) -> None:
    before = _json(DEMO_DIR / "coincap/assets/page-0001.json")
    after = _json(shifted / "coincap/assets/page-0001.json")
    assert after["timestamp"] - before["timestamp"] == -400 * 86_400_000
    tickers = {t["id"]: t for t in _json(DEMO_DIR / "coinpaprika/tickers.json")}
    moved = {t["id"]: t for t in _json(shifted / "coinpaprika/tickers.json")}
    for asset, ticker in tickers.items():
        gap = datetime.fromisoformat(moved[asset]["last_updated"]) - datetime.fromisoformat(
            ticker["last_updated"]
        )
        assert gap.days == -3, asset
    for unshifted in (
        "coingecko/coins_markets/page-0001.json",
        "coinpaprika/contracts/eth-ethereum.json",
    ):
        assert (shifted / unshifted).read_bytes() == (DEMO_DIR / unshifted).read_bytes()


def test_drifted_prices_stay_representable_and_reproducible(shifted: Path) -> None:
    """Scaled prices keep at most 18 decimal places (else the ingest quarantines them as
    not representable), and the same seed gives the same drift."""
    for ticker in _json(shifted / "coinpaprika/tickers.json"):
        price = ticker["quotes"]["USD"]["price"]
        if isinstance(price, float):
            exponent = Decimal(repr(price)).as_tuple().exponent
            assert isinstance(exponent, int)
            assert exponent >= -18, (ticker["id"], price)
    assert drift(7, "coincap", "bitcoin", -400) == drift(7, "coincap", "bitcoin", -400)
    assert drift(7, "coincap", "bitcoin", 0) == 1.0


# --- the in-memory market lookup ---------------------------------------------------------------


def test_the_market_lookup_answers_with_the_nearest_quote_of_another_source_in_the_window() -> None:
    warehouse = MemoryWarehouse()
    link = pl.DataFrame(
        {
            "source": ["coingecko", "coinpaprika", "coincap"],
            "source_asset_id": ["bitcoin", "btc-bitcoin", "bitcoin"],
            "coin_id": ["btc-bitcoin"] * 3,
            "symbol": ["btc", "BTC", "BTC"],
            "name": ["Bitcoin"] * 3,
            "match_key": ["k"] * 3,
            "method": ["new"] * 3,
            "confidence": [1.0] * 3,
        }
    )
    warehouse.mappings = link
    day = 86_400_000_000
    warehouse.observations = pl.DataFrame(
        {
            "source": ["coingecko", "coinpaprika", "coincap"],
            "source_asset_id": ["bitcoin", "btc-bitcoin", "bitcoin"],
            "observed_at": [0, 2 * day, 30 * day],
            "price_usd": [100.0, 101.0, 50.0],
            "market_cap_usd": [None, None, None],
            "rank": [1, 1, 1],
        },
        schema=warehouse.observations.schema,
    )
    asked = pl.DataFrame(
        [
            ("coincap", "bitcoin", "btc-bitcoin", datetime(1970, 1, 3, tzinfo=UTC)),
            ("coincap", "bitcoin", "btc-bitcoin", datetime(1970, 3, 1, tzinfo=UTC)),
        ],
        schema=MARKET_LOOKUP,
        orient="row",
    )
    found = warehouse.nearest(asked)
    # The first asks at day 2: CoinPaprika's quote that day, never CoinCap's own; the second
    # asks at day 59: nothing within 7 days.
    assert found.select("quote_source", "price_usd").rows() == [("coinpaprika", 101.0)]
