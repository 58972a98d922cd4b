"""Names as resolution compares them: normalisation, match keys, similarity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.resolution.names import (
    NAME_SIMILAR,
    _similar,
    bears_name,
    compare_ids,
    disambiguated,
    id_slugs,
    listed_ticker,
    match_key,
    name_similarity,
    near_symbols,
    normalise,
    reminted_from,
    same_name,
)
from flows.sources.spec import IdStyle


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


@pytest.mark.parametrize(
    ("a", "b", "similar"),
    [
        ("Synthetix Network", "Synthetix", True),
        ("Wrapped Bitcoin", "Wrapped BTC", True),
        ("Uniswap", "Universe Token", False),
        ("Wrapped Ether", "Arbitrum Bridged WETH", False),
        ("Binance Coin", "BNB", False),
    ],
)
def test_name_similarity_threshold(a: str, b: str, *, similar: bool) -> None:
    assert (name_similarity(a, b) >= NAME_SIMILAR) is similar


_NAME_PARTS = st.sampled_from(
    ["Zen", "zenth", "obel", "AI", "Inu", "Swap", "token", "Chain", "Bit", "coin", "Ether", "X"]
)
_NAMES = st.lists(_NAME_PARTS, min_size=0, max_size=4).map(" ".join) | st.text(max_size=12)


@settings(max_examples=300)
@given(a=_NAMES, b=_NAMES)
def test_the_cheap_similarity_test_agrees_with_the_similarity(a: str, b: str) -> None:
    """The refutations that skip difflib never refute a name similar enough to link."""
    assert _similar(a, b) == (name_similarity(a, b) >= NAME_SIMILAR)


@pytest.mark.parametrize(
    ("a", "b", "relation"),
    [
        (("btc-bitcoin", "BTC", "symbol_name_slug"), ("bitcoin", "btc", "name_slug"), "exact"),
        (("hav-havven", "SNX", "symbol_name_slug"), ("havven", "snx", "name_slug"), "exact"),
        (("BTC:Bitcoin", "BTC", "symbol_colon_name"), ("bitcoin", "btc", "name_slug"), "exact"),
        (
            ("bnb-binance-coin", "BNB", "symbol_name_slug"),
            ("binancecoin", "bnb", "name_slug"),
            "joined",
        ),
        (("dash-dash", "DASH", "symbol_name_slug"), ("dash-2", "dash", "name_slug"), None),
        (("mkr-maker", "MKR", "symbol_name_slug"), ("dao-maker", "dao", "name_slug"), None),
        (("xrp-xrp", "XRP", "symbol_name_slug"), ("ripple", "xrp", "name_slug"), None),
    ],
)
def test_ids_relate_by_the_name_they_were_minted_from(
    a: tuple[str, str, IdStyle], b: tuple[str, str, IdStyle], relation: str | None
) -> None:
    assert compare_ids(id_slugs(*a), id_slugs(*b)) == relation


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Synthetix Network Token", "Synthetix Network", True),
        ("KZ Cash", "Kzcash", True),
        ("Bitcoin\u200b", "bitcoin", True),
        ("Bitcoin Cash", "Bitcoin", False),
        ("SIX", "Six Sigma", False),
    ],
)
def test_names_are_the_same_once_generic_words_and_spacing_go(a: str, b: str, same: bool) -> None:
    assert same_name(a, b) is same


@pytest.mark.parametrize(
    ("a", "b", "near"),
    [("MIOTA", "IOTA", True), ("CLB", "CLBK", True), ("HLM", "HNT", False), ("EDN", "EDEN", False)],
)
def test_near_symbols_hold_one_another(a: str, b: str, near: bool) -> None:
    assert near_symbols(a, b) is near


@pytest.mark.parametrize(
    ("outer", "inner", "bears"),
    [
        ("Helium IOT", "Helium", True),
        ("Argonon Helium", "Helium", True),
        ("Newton Project", "newton", True),
        ("Helium", "Helium", True),
        ("OpenEden TBILL", "Eden", False),
        ("Nanomatic", "Nano", False),
        ("Project Newton", "Newton Project", False),
        ("Silent  Notary\u200b Token", "Silent Notary", True),
        ("Helium", "", False),
        ("Helium IOT", "Helium Token", True),
        ("Helium Network", "Helium", True),
    ],
)
def test_a_name_is_borne_by_names_holding_its_words_together(
    outer: str, inner: str, bears: bool
) -> None:
    assert bears_name(outer, inner) is bears


def test_a_numeric_suffix_names_the_id_it_was_set_apart_from() -> None:
    assert disambiguated("ethos-3") == "ethos"
    assert disambiguated("avalanche-2") == "avalanche"
    assert disambiguated("bitcoin") is None
    assert disambiguated("2-3") is None


@pytest.mark.parametrize(
    ("asset_id", "symbol", "style", "ticker"),
    [
        ("rndr-render-token", "RENDER", "symbol_name_slug", "rndr"),
        ("gnt-golem", "GNT", "symbol_name_slug", None),
        ("render-token", "rndr", "name_slug", None),
        ("RNDR:Render", "RENDER", "symbol_colon_name", None),
    ],
)
def test_an_id_remembers_the_ticker_it_was_listed_under(
    asset_id: str, symbol: str, style: IdStyle, ticker: str | None
) -> None:
    assert listed_ticker(asset_id, symbol, style) == ticker


@pytest.mark.parametrize(
    ("asset_id", "name", "base"),
    [
        ("bittorrent-old", "BitTorrent [OLD]", "bittorrent"),
        ("decentral-games-old", "Decentral Games (Old)", "decentral-games"),
        ("bittorrent-old", "BitTorrent", None),
        ("pundi-x", "Pundi X [OLD]", None),
        ("gold", "Gold (OLD)", None),
    ],
)
def test_a_re_minted_id_names_the_id_the_new_listing_took(
    asset_id: str, name: str, base: str | None
) -> None:
    assert reminted_from(asset_id, name) == base
