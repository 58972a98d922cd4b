"""Names as resolution compares them: normalisation, match keys, similarity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.resolution.names import NAME_SIMILAR, _similar, match_key, name_similarity, normalise


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


@settings(max_examples=300, deadline=None)
@given(a=_NAMES, b=_NAMES)
def test_the_cheap_similarity_test_agrees_with_the_similarity(a: str, b: str) -> None:
    """The refutations that skip difflib never refute a name similar enough to link."""
    assert _similar(a, b) == (name_similarity(a, b) >= NAME_SIMILAR)
