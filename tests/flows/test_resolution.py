"""Entity resolution: one asset seen by every source is one coin; a shared symbol is not enough."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.resolution import (
    Override,
    OverridesError,
    Resolution,
    match_key,
    normalise,
    read_overrides,
    resolve,
)
from flows.transform import VALIDATED

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MAPPING_COLUMNS = ["source", "source_asset_id", "coin_id", "match_key"]


def quotes(*assets: tuple[str, str, str, str]) -> pl.DataFrame:
    """Validated quotes for (source, source_asset_id, symbol, name) assets."""
    rows = [
        {"source": s, "source_asset_id": a, "symbol": sym, "name": name, "observed_at": T0}
        for s, a, sym, name in assets
    ]
    frame = pl.DataFrame(rows)
    return (
        frame.with_columns(
            pl.lit(None, dtype).alias(c) for c, dtype in VALIDATED.items() if c not in frame.columns
        )
        .select(VALIDATED.names())
        .cast(VALIDATED)
    )  # type: ignore[arg-type]


def decide(
    batch: pl.DataFrame,
    stored: Resolution | None = None,
    overrides: dict[tuple[str, str], Override] | None = None,
) -> Resolution:
    mappings = (
        pl.DataFrame(schema=dict.fromkeys(MAPPING_COLUMNS, pl.String))
        if stored is None
        else stored.mappings.select(MAPPING_COLUMNS)
    )
    return resolve(
        batch,
        stored_mappings=mappings,
        stored_coin_ids=mappings["coin_id"].unique().to_list(),
        overrides=overrides or {},
        run_id="r1",
    )


def coin_of(resolution: Resolution) -> dict[tuple[str, str], str]:
    return {
        (s, a): c
        for s, a, c in resolution.mappings.select(
            "source", "source_asset_id", "coin_id"
        ).iter_rows()
    }


BITCOIN_EVERYWHERE = (
    ("coingecko", "bitcoin", "btc", "Bitcoin"),
    ("coinpaprika", "btc-bitcoin", "BTC", "Bitcoin"),
    ("coincap", "bitcoin", "BTC", "Bitcoin\u200b"),
    ("csv", "BTC:Bitcoin", "BTC", "Bitcoin\u00a0"),
)


def test_one_asset_across_three_apis_and_a_csv_is_one_coin() -> None:
    resolution = decide(quotes(*BITCOIN_EVERYWHERE))
    assert set(coin_of(resolution).values()) == {"btc-bitcoin"}
    assert resolution.new_coins["coin_id"].to_list() == ["btc-bitcoin"]
    methods = dict(zip(resolution.mappings["source"], resolution.mappings["method"], strict=True))
    assert methods == {
        "coingecko": "symbol_name",
        "coinpaprika": "symbol_name",
        "coincap": "symbol_name",
        "csv": "symbol_name",
    }


def test_two_assets_sharing_a_symbol_stay_two_coins() -> None:
    resolution = decide(
        quotes(
            ("coingecko", "uniswap", "uni", "Uniswap"),
            ("coingecko", "universe", "uni", "Universe Token"),
            ("coincap", "uniswap", "UNI", "Uniswap"),
        )
    )
    coins = coin_of(resolution)
    assert coins[("coingecko", "uniswap")] == coins[("coincap", "uniswap")] == "uni-uniswap"
    assert coins[("coingecko", "universe")] == "uni-universe-token"


def test_two_assets_of_one_source_with_the_same_name_are_never_merged() -> None:
    resolution = decide(
        quotes(
            ("coingecko", "weth", "weth", "WETH"),
            ("coingecko", "weth-bridged", "weth", "WETH"),
            ("coinpaprika", "weth-weth", "WETH", "WETH"),
        )
    )
    coins = coin_of(resolution)
    assert coins[("coingecko", "weth")] != coins[("coingecko", "weth-bridged")]
    assert coins[("coinpaprika", "weth-weth")] == coins[("coingecko", "weth")] == "weth-weth"
    assert coins[("coingecko", "weth-bridged")].startswith("weth-weth-")
    methods = dict(
        zip(resolution.mappings["source_asset_id"], resolution.mappings["method"], strict=True)
    )
    assert methods["weth-bridged"] == "symbol_name_disambiguated"


def test_an_existing_mapping_is_sticky_even_when_the_asset_is_renamed() -> None:
    first = decide(quotes(("coincap", "ripple", "XRP", "XRP")))
    renamed = decide(quotes(("coincap", "ripple", "XRP", "Ripple XRP")), stored=first)
    assert coin_of(renamed) == coin_of(first) == {("coincap", "ripple"): "xrp-xrp"}
    assert renamed.mappings["method"].to_list() == ["sticky"]
    assert renamed.new_coins.is_empty()


def test_an_override_links_assets_exact_matching_cannot() -> None:
    overrides = {("coinpaprika", "bnb-binance-coin"): Override("bnb-bnb", "renamed", 2)}
    resolution = decide(
        quotes(
            ("coingecko", "binancecoin", "bnb", "BNB"),
            ("coinpaprika", "bnb-binance-coin", "BNB", "Binance Coin"),
        ),
        overrides=overrides,
    )
    assert set(coin_of(resolution).values()) == {"bnb-bnb"}
    paprika = resolution.mappings.filter(pl.col("source") == "coinpaprika").row(0, named=True)
    assert paprika["method"] == "override"
    assert paprika["confidence"] == 1.0
    assert '"override_line": 2' in paprika["evidence"]


def test_a_coin_founded_by_an_override_is_joined_by_the_asset_it_is_named_after() -> None:
    """CoinGecko failed in the first run: CoinPaprika's renamed BNB founded `bnb-bnb` through the
    override. When CoinGecko's BNB arrives it joins that coin instead of founding a twin."""
    overrides = {("coinpaprika", "bnb-binance-coin"): Override("bnb-bnb", "renamed", 2)}
    first = decide(
        quotes(("coinpaprika", "bnb-binance-coin", "BNB", "Binance Coin")), overrides=overrides
    )
    later = decide(
        quotes(("coingecko", "binancecoin", "bnb", "BNB")), stored=first, overrides=overrides
    )
    assert coin_of(later) == {("coingecko", "binancecoin"): "bnb-bnb"}
    assert later.new_coins.is_empty()


def test_without_the_override_a_renamed_asset_founds_its_own_coin() -> None:
    resolution = decide(
        quotes(
            ("coingecko", "binancecoin", "bnb", "BNB"),
            ("coinpaprika", "bnb-binance-coin", "BNB", "Binance Coin"),
        )
    )
    assert sorted(resolution.new_coins["coin_id"]) == ["bnb-binance-coin", "bnb-bnb"]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Bitcoin", "Bitcoin\u200b"),
        ("Dogecoin", "Dogecoin\u00a0"),
        ("ＢＴＣ", "btc"),
        ("Straße", "STRASSE"),
        ("USD  Coin", " usd coin "),
    ],
)
def test_normalisation_ignores_invisible_and_compatibility_differences(
    left: str, right: str
) -> None:
    assert normalise(left) == normalise(right)


def test_symbol_and_name_both_count_in_the_match_key() -> None:
    assert match_key("uni", "Uniswap") != match_key("uni", "Universe Token")
    assert match_key("weth", "WETH") != match_key("eth", "WETH")


ASSETS = (
    *BITCOIN_EVERYWHERE,
    ("coingecko", "weth", "weth", "WETH"),
    ("coingecko", "weth-bridged", "weth", "WETH"),
    ("coinpaprika", "weth-weth", "WETH", "WETH"),
    ("coincap", "weth", "WETH", "WETH"),
    ("coingecko", "uniswap", "uni", "Uniswap"),
    ("coinpaprika", "uni-universe", "UNI", "Universe Token"),
    ("coincap", "💎-hands", "💎", "Diamond • Hands"),
)


@settings(max_examples=50, deadline=None)
@given(st.permutations(ASSETS))
def test_resolution_does_not_depend_on_input_order(
    shuffled: list[tuple[str, str, str, str]],
) -> None:
    assert coin_of(decide(quotes(*shuffled))) == coin_of(decide(quotes(*ASSETS)))


def test_overrides_file_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text(
        "source,source_asset_id,coin_id,note\ncoinpaprika,hav-havven,snx-synthetix-network,old id\n"
    )
    assert read_overrides(path) == {
        ("coinpaprika", "hav-havven"): Override("snx-synthetix-network", "old id", 2)
    }
    assert read_overrides(tmp_path / "absent.csv") == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("source,asset,coin\n", "header must be"),
        ("source,source_asset_id,coin_id,note\nbinance,x,y-z,\n", ":2: unknown source"),
        ("source,source_asset_id,coin_id,note\ncoincap,x,Not An Id,\n", "must be lowercase"),
        (
            "source,source_asset_id,coin_id,note\ncoincap,x,a-b,\ncoincap,x,c-d,\n",
            ":3: coincap/x is already overridden on line 2",
        ),
    ],
)
def test_a_malformed_overrides_file_names_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text(body)
    with pytest.raises(OverridesError, match=message):
        read_overrides(path)
