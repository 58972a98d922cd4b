"""Entity resolution: one asset seen by every source is one coin; a shared symbol is not enough."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.resolution import (
    LINK_THRESHOLD,
    MARKET_FOUND,
    Evidence,
    Override,
    Resolution,
    normalise,
    resolve,
)
from flows.sources import SOURCE_NAMES
from flows.transform import VALIDATED
from store.schema import ASSET_CONTRACTS

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MAPPING_COLUMNS = ["source", "source_asset_id", "coin_id", "symbol", "name", "match_key"]
PRICES = {"btc": 91250.0, "uni": 6.93, "weth": 3050.0, "bnb": 905.0, "snx": 0.78, "usdc": 1.0}

Asset = tuple[str, str, str, str]
"""(source, source_asset_id, symbol, name)"""


def quotes(
    *assets: Asset,
    price: dict[str, float] | None = None,
    at: datetime = T0,
    market_cap: float | None = None,
) -> pl.DataFrame:
    """Validated quotes of ``assets`` at ``at``; prices by asset id (else by symbol)."""
    rows = [
        {
            "source": s,
            "source_asset_id": a,
            "symbol": sym,
            "name": name,
            "observed_at": at,
            "kind": "snapshot",
            "run_id": "r1",
            "price_usd": Decimal(str((price or {}).get(a) or PRICES.get(normalise(sym), 1.0))),
            "market_cap_usd": None if market_cap is None else Decimal(str(market_cap)),
        }
        for s, a, sym, name in assets
    ]
    frame = pl.DataFrame(rows, schema_overrides={"price_usd": pl.Decimal(38, 18)})
    return (
        frame.with_columns(
            pl.lit(None, dtype).alias(c) for c, dtype in VALIDATED.items() if c not in frame.columns
        )
        .select(VALIDATED.names())
        .cast(VALIDATED)
    )  # type: ignore[arg-type]


def contract_rows(*rows: tuple[str, str, str, str]) -> pl.DataFrame:
    """(source, asset, chain, address) contract rows."""
    return pl.DataFrame(
        [(s, a, chain, address, chain, "r1") for s, a, chain, address in rows],
        schema=ASSET_CONTRACTS,
        orient="row",
    )


@dataclass
class Store:
    """What earlier batches left: mappings, coins and quotes (for market lookups)."""

    mappings: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=dict.fromkeys(MAPPING_COLUMNS, pl.String))
    )
    coins: frozenset[str] = frozenset()
    quotes: list[pl.DataFrame] = field(default_factory=list)

    def nearest(self, pairs: pl.DataFrame) -> pl.DataFrame:
        if not self.quotes:
            return MARKET_FOUND.to_frame()
        stored = pl.concat(self.quotes).join(
            self.mappings.select("source", "source_asset_id", "coin_id"),
            on=["source", "source_asset_id"],
        )
        joined = pairs.join(stored, on="coin_id", suffix="_quote").with_columns(
            gap=(pl.col("asked_at") - pl.col("observed_at")).abs()
        )
        return (
            joined.sort("gap", "source_quote")
            .group_by("source", "source_asset_id", "coin_id", maintain_order=True)
            .first()
            .select(
                "source",
                "source_asset_id",
                "coin_id",
                quote_source="source_quote",
                observed_at="observed_at",
                price_usd=pl.col("price_usd").cast(pl.Float64),
                market_cap_usd=pl.col("market_cap_usd").cast(pl.Float64),
                rank="rank",
            )
            .cast(MARKET_FOUND)  # type: ignore[arg-type]
        )


def decide(
    batch: pl.DataFrame,
    store: Store | None = None,
    overrides: dict[tuple[str, str], Override] | None = None,
    contracts: pl.DataFrame | None = None,
    **evidence: Any,
) -> Resolution:
    """Resolve ``batch`` against ``store``, then add what it decided to the store."""
    store = store if store is not None else Store()
    resolution = resolve(
        batch,
        Evidence(
            stored_mappings=store.mappings,
            stored_coin_ids=store.coins,
            overrides=overrides or {},
            contracts=contracts if contracts is not None else ASSET_CONTRACTS.to_frame(),
            market=store.nearest,
            **evidence,
        ),
        run_id="r1",
    )
    store.mappings = pl.concat(
        [store.mappings, resolution.mappings.select(MAPPING_COLUMNS)]
    ).unique(subset=["source", "source_asset_id"], keep="last", maintain_order=True)
    store.coins = store.coins | set(resolution.new_coins["coin_id"])
    store.quotes.append(batch)
    return resolution


def coin_of(resolution: Resolution) -> dict[tuple[str, str], str]:
    return {
        (s, a): c
        for s, a, c in resolution.mappings.select(
            "source", "source_asset_id", "coin_id"
        ).iter_rows()
    }


def method_of(resolution: Resolution) -> dict[tuple[str, str], str]:
    return {
        (s, a): m
        for s, a, m in resolution.mappings.select("source", "source_asset_id", "method").iter_rows()
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
    methods = method_of(resolution)
    assert methods.pop(("coingecko", "bitcoin")) == "new"
    assert set(methods.values()) == {"symbol_name_market"}
    assert resolution.mappings["confidence"].min() >= LINK_THRESHOLD
    assert resolution.review.is_empty()


def test_sources_loaded_one_by_one_link_through_the_stored_quotes() -> None:
    store = Store()
    for asset in BITCOIN_EVERYWHERE:
        decide(quotes(asset), store)
    assert set(store.mappings["coin_id"]) == {"btc-bitcoin"}


def test_the_same_names_with_prices_ten_times_apart_are_two_coins_and_a_review() -> None:
    store = Store()
    decide(quotes(("coingecko", "bitcoin", "btc", "Bitcoin")), store)
    later = decide(
        quotes(("coincap", "bitcoin", "BTC", "Bitcoin"), price={"bitcoin": 9125.0}), store
    )
    assert coin_of(later)[("coincap", "bitcoin")].startswith("btc-bitcoin-")
    (queued,) = later.review.to_dicts()
    assert queued["candidate_coin_id"] == "btc-bitcoin"
    assert queued["confidence"] == pytest.approx(0.4)
    assert json.loads(queued["evidence"])["price_difference"] == pytest.approx(0.9)


def test_the_same_names_and_ids_link_without_a_quote_to_compare() -> None:
    """Missing evidence is not contrary evidence: a CSV history two months away has no quote to
    compare, and its id and name still say Bitcoin."""
    store = Store()
    decide(quotes(("coingecko", "bitcoin", "btc", "Bitcoin")), store)
    months_later = decide(
        quotes(("csv", "BTC:Bitcoin", "BTC", "Bitcoin"), at=T0 + timedelta(days=60)), store
    )
    mapping = months_later.mappings.row(0, named=True)
    assert (mapping["coin_id"], mapping["method"]) == ("btc-bitcoin", "names_ids")
    evidence = json.loads(mapping["evidence"])
    assert evidence["weights"] == {"names_identical": 0.6, "ids_exact": 0.6, "key_unique": 0.3}
    assert "neither confirms nor refutes" in evidence["market"]
    assert months_later.review.is_empty()


def test_identical_names_in_a_crowd_wait_for_review_unless_an_id_names_one() -> None:
    """Two CoinGecko coins are called Dash: CoinPaprika's ``dash-dash`` shares the first one's id
    slug (the second's ``dash-2`` marks a later namesake); CoinCap's ``digital-cash`` a month
    later shares neither, so it waits for a person."""
    store = Store()
    first = decide(
        quotes(("coingecko", "dash", "dash", "Dash"), ("coingecko", "dash-2", "dash", "DASH")),
        store,
    )
    dash, namesake = coin_of(first)[("coingecko", "dash")], coin_of(first)[("coingecko", "dash-2")]
    paprika = decide(
        quotes(("coinpaprika", "dash-dash", "DASH", "Dash"), at=T0 + timedelta(days=400)), store
    )
    assert coin_of(paprika)[("coinpaprika", "dash-dash")] == dash
    coincap = decide(
        quotes(("coincap", "digital-cash", "DASH", "Dash"), at=T0 + timedelta(days=430)), store
    )
    assert coin_of(coincap)[("coincap", "digital-cash")] not in {dash, namesake}
    assert sorted(coincap.review["candidate_coin_id"]) == sorted([dash, namesake])
    assert set(coincap.review["confidence"]) == {0.6}


def test_a_changed_ticker_is_found_through_the_ids() -> None:
    """IOTA's MIOTA became IOTA years after CoinPaprika listed it: no coin of the symbol MIOTA
    relates to it, and CoinGecko's id ``iota`` (minted from the same name) still does."""
    store = Store()
    decide(quotes(("coingecko", "iota", "iota", "IOTA")), store)
    later = decide(
        quotes(("coinpaprika", "miota-iota", "MIOTA", "IOTA"), at=T0 - timedelta(days=1500)), store
    )
    mapping = later.mappings.row(0, named=True)
    assert (mapping["coin_id"], mapping["method"]) == ("iota-iota", "names_ids")
    assert json.loads(mapping["evidence"])["symbol"] == "differs: found through the ids"


def test_ids_are_not_searched_across_symbols_when_the_symbol_finds_the_coin() -> None:
    """CoinGecko lists Quant as ``quant-network`` (QNT) and another token as ``quant`` (QUANT):
    CoinPaprika's ``qnt-quant`` is the first, however its id reads."""
    store = Store()
    decide(
        quotes(
            ("coingecko", "quant-network", "qnt", "Quant"),
            ("coingecko", "quant", "quant", "QUANT"),
        ),
        store,
    )
    later = decide(
        quotes(("coinpaprika", "qnt-quant", "QNT", "Quant"), at=T0 + timedelta(days=900)), store
    )
    assert coin_of(later)[("coinpaprika", "qnt-quant")] == "qnt-quant"
    assert later.mappings["method"].to_list() == ["names_ids"]
    assert json.loads(later.mappings["evidence"][0])["candidate_name"] == "Quant"
    stored = dict(zip(store.mappings["source_asset_id"], store.mappings["coin_id"], strict=True))
    assert stored["quant-network"] == "qnt-quant"


def test_the_ids_alone_link_only_where_the_key_is_unique() -> None:
    """Hedera Hashgraph was renamed Hedera: the ids still agree. Where the ids of two coins of
    the symbol relate to the asset (``six`` whole, ``sixsix`` without separators), a person
    decides."""
    store = Store()
    decide(quotes(("coingecko", "hedera-hashgraph", "hbar", "Hedera")), store)
    later = decide(
        quotes(
            ("coinpaprika", "hbar-hedera-hashgraph", "HBAR", "Hedera Hashgraph"),
            at=T0 + timedelta(days=700),
        ),
        store,
    )
    assert later.mappings.row(0, named=True)["coin_id"] == "hbar-hedera"
    crowd = Store()
    decide(
        quotes(
            ("coingecko", "six", "six", "Six Sigma"), ("coingecko", "sixsix", "six", "Double Sigma")
        ),
        crowd,
    )
    paprika = decide(
        quotes(("coinpaprika", "six-six", "SIX", "SIX"), at=T0 + timedelta(days=700)), crowd
    )
    assert paprika.mappings.row(0, named=True)["method"] == "new"
    assert paprika.review.height == 2


def test_a_later_namesake_is_not_taken_for_the_asset_its_name_came_from() -> None:
    """CoinGecko lists ``ethos`` (under the ticker VGX since) and ``ethos-3``, a 2025 token also
    called Ethos: CoinPaprika's 2017 ``ethos-ethos`` is not the later one, whatever the names
    say."""
    store = Store()
    decide(quotes(("coinpaprika", "ethos-ethos", "ETHOS", "Ethos")), store)
    later = decide(
        quotes(
            ("coingecko", "ethos", "vgx", "Ethos"),
            ("coingecko", "ethos-3", "ethos", "Ethos"),
            at=T0 + timedelta(days=2500),
        ),
        store,
    )
    assert coin_of(later)[("coingecko", "ethos-3")] != "ethos-ethos"
    queued = later.review.filter(pl.col("source_asset_id") == "ethos-3").to_dicts()
    assert json.loads(queued[0]["evidence"])["later_namesake_of"] == "coingecko/ethos"


def test_a_rebrand_takes_its_coin_before_a_later_namesake() -> None:
    """The same, once the asset CoinGecko minted ``ethos`` for is renamed too (VGX Token): its
    id names the old name, and it takes the coin; the namesake cannot share it."""
    store = Store()
    decide(quotes(("coinpaprika", "ethos-ethos", "ETHOS", "Ethos")), store)
    later = decide(
        quotes(
            ("coingecko", "ethos", "vgx", "VGX Token"),
            ("coingecko", "ethos-3", "ethos", "Ethos"),
            at=T0 + timedelta(days=2500),
        ),
        store,
    )
    assert coin_of(later)[("coingecko", "ethos")] == "ethos-ethos"
    assert coin_of(later)[("coingecko", "ethos-3")] != "ethos-ethos"


@pytest.mark.parametrize("name", ["Helium", "Helium Token"])
@pytest.mark.parametrize("bearer_source", ["coingecko", "coinpaprika"])
def test_a_name_other_assets_bear_under_an_unrelated_symbol_waits_for_review(
    bearer_source: str, name: str
) -> None:
    """HLM's Helium and HNT's Helium: the same name and id slug under unrelated tickers look
    exactly like a ticker that was replaced. A name that other assets of either source bear
    too (Helium IOT) is one projects reuse; without a market to compare, a person decides."""
    store = Store()
    paprika = [("coinpaprika", "hlm-helium", "HLM", name)]
    gecko = [("coingecko", "helium", "hnt", name)]
    bearers = {
        "coingecko": gecko,
        "coinpaprika": paprika,
    }
    bearers[bearer_source].append((bearer_source, "helium-iot", "IOT", "Helium IOT"))
    decide(quotes(*paprika), store)
    later = decide(quotes(*gecko, at=T0 + timedelta(days=1400)), store)
    assert coin_of(later)[("coingecko", "helium")] != "hlm-helium"
    (queued,) = later.review.filter(pl.col("source_asset_id") == "helium").to_dicts()
    assert queued["confidence"] == 0.8


def test_a_changed_ticker_under_a_name_of_its_own_is_linked() -> None:
    """Golem's GNT became GLM years after CoinPaprika listed it; CoinGecko kept the id
    ``golem``. No other asset of either source bears the name (``Golemite`` shares no word), so
    the ids and the name explain the ticker."""
    store = Store()
    decide(quotes(("coinpaprika", "gnt-golem", "GNT", "Golem")), store)
    later = decide(
        quotes(
            ("coingecko", "golem", "glm", "Golem"),
            ("coingecko", "golemite", "gmt", "Golemite"),
            at=T0 + timedelta(days=1400),
        ),
        store,
    )
    mapping = later.mappings.filter(pl.col("source_asset_id") == "golem").row(0, named=True)
    assert (mapping["coin_id"], mapping["method"]) == ("gnt-golem", "names_ids")
    assert json.loads(mapping["evidence"])["symbol"] == (
        "differs: the ids agree on a name no other asset of either source bears"
    )
    assert later.review.is_empty()


def test_a_rebrand_the_ids_still_name_is_linked_under_its_new_ticker() -> None:
    """A project renamed with its ticker (Zcoin's XZC became Firo's FIRO) keeps the id its source
    minted from the old name: the slug the ids share is one asset's name and not the other's,
    which explains the ticker, unlike a name another project reused under its own ticker."""
    store = Store()
    decide(quotes(("coinpaprika", "olt-oldname", "OLT", "Oldname")), store)
    later = decide(
        quotes(("coingecko", "oldname", "nbr", "Newbrand"), at=T0 + timedelta(days=1400)), store
    )
    mapping = later.mappings.row(0, named=True)
    assert (mapping["coin_id"], mapping["method"]) == ("olt-oldname", "names_ids")
    assert "rebrand" in json.loads(mapping["evidence"])["symbol"]
    assert later.review.is_empty()


def test_an_id_that_records_the_old_ticker_links_a_changed_ticker() -> None:
    """CoinPaprika mints ``<symbol>-<name>`` ids and keeps them: ``gltr-glitter-token``, GLIT
    today, was listed as GLTR, the ticker CoinGecko's ``glitter-token`` holds. The ticker change
    is on record, unlike a name another project reused under its own ticker (HLM's and HNT's
    Helium, below)."""
    store = Store()
    decide(quotes(("coingecko", "glitter-token", "gltr", "Glitter")), store)
    later = decide(
        quotes(
            ("coinpaprika", "gltr-glitter-token", "GLIT", "Glitter"), at=T0 + timedelta(days=200)
        ),
        store,
    )
    mapping = later.mappings.row(0, named=True)
    assert (mapping["coin_id"], mapping["method"]) == ("gltr-glitter", "names_ids")
    assert json.loads(mapping["evidence"])["symbol"] == (
        "differs: one asset's id records the other's ticker"
    )
    assert later.review.is_empty()


def test_an_id_recording_another_ticker_than_the_candidates_proves_nothing() -> None:
    """The id's old ticker must be the candidate's: CoinPaprika's ``hlm-helium``, HLT today, was
    listed as HLM, not as CoinGecko's HNT."""
    store = Store()
    decide(
        quotes(
            ("coingecko", "helium", "hnt", "Helium"),
            ("coingecko", "helium-mobile", "mobile", "Helium Mobile"),
        ),
        store,
    )
    later = decide(
        quotes(("coinpaprika", "hlm-helium", "HLT", "Helium"), at=T0 + timedelta(days=200)),
        store,
    )
    assert coin_of(later)[("coinpaprika", "hlm-helium")] != "hnt-helium"
    (queued,) = later.review.to_dicts()
    assert queued["confidence"] == 0.8


def test_an_id_re_minted_for_a_migrated_token_waits_for_review() -> None:
    """At a token migration CoinGecko may re-mint the old listing as ``<id>-old`` (named
    ``... [OLD]``) and give the plain id, name and ticker to the new token: an asset another
    source listed years before under that name may be either token, so a person decides."""
    store = Store()
    decide(quotes(("coinpaprika", "gdz-gadzoo", "GDZ", "Gadzoo")), store)
    later = decide(
        quotes(
            ("coingecko", "gadzoo", "gdz", "Gadzoo"),
            ("coingecko", "gadzoo-old", "gdzold", "Gadzoo [OLD]"),
            at=T0 + timedelta(days=1400),
        ),
        store,
    )
    assert coin_of(later)[("coingecko", "gadzoo")] != "gdz-gadzoo"
    (queued,) = later.review.filter(pl.col("source_asset_id") == "gadzoo").to_dicts()
    assert queued["candidate_coin_id"] == "gdz-gadzoo"
    assert queued["confidence"] == 0.8
    assert "re-minted" in json.loads(queued["evidence"])["migration"]


def test_names_that_share_no_letter_a_slug_keeps_are_not_the_same_coin() -> None:
    """Two tokens under one symbol with unrelated CJK names: their coin-id slugs both lose every
    letter, which must not read as identical names."""
    store = Store()
    decide(quotes(("coingecko", "gou-gou-bi", "XYZ", "狗狗币")), store)
    later = decide(
        quotes(("coincap", "chai-quan", "XYZ", "柴犬币"), at=T0 + timedelta(days=60)), store
    )
    assert method_of(later)[("coincap", "chai-quan")] == "new"
    assert coin_of(later)[("coincap", "chai-quan")] != "xyz"


def test_market_tolerance_widens_with_the_time_between_observations() -> None:
    store = Store()
    decide(quotes(("coingecko", "bitcoin", "btc", "Bitcoin")), store)
    # 12% off three days later: within 5% + 3%/day.
    later = decide(
        quotes(
            ("csv", "BTC:Bitcoin", "BTC", "Bitcoin"),
            price={"BTC:Bitcoin": 91250.0 * 0.88},
            at=T0 - timedelta(days=3),
        ),
        store,
    )
    mapping = later.mappings.row(0, named=True)
    assert (mapping["coin_id"], mapping["method"]) == ("btc-bitcoin", "symbol_name_market")
    weights = json.loads(mapping["evidence"])["weights"]
    assert weights["market_agrees"] == pytest.approx(0.35 - 0.03)


def test_two_assets_sharing_a_symbol_stay_two_coins() -> None:
    resolution = decide(
        quotes(
            ("coingecko", "uniswap", "uni", "Uniswap"),
            ("coingecko", "universe", "uni", "Universe Token"),
            ("coincap", "uniswap", "UNI", "Uniswap"),
            ("coincap", "universe-token", "UNI", "Universe Token"),
            price={"universe": 0.0184, "universe-token": 0.0184},
        )
    )
    coins = coin_of(resolution)
    assert coins[("coingecko", "uniswap")] == coins[("coincap", "uniswap")] == "uni-uniswap"
    assert coins[("coingecko", "universe")] == coins[("coincap", "universe-token")]
    assert coins[("coingecko", "universe")] == "uni-universe-token"
    assert resolution.review.is_empty()


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
    assert coins[("coingecko", "weth-bridged")].startswith("weth-weth-")
    # Two coins match CoinPaprika's WETH equally well: a person decides.
    assert coins[("coinpaprika", "weth-weth")] not in {
        coins[("coingecko", "weth")],
        coins[("coingecko", "weth-bridged")],
    }
    assert sorted(resolution.review["candidate_coin_id"]) == sorted(
        [coins[("coingecko", "weth")], coins[("coingecko", "weth-bridged")]]
    )


def test_a_bridged_token_with_its_own_contract_is_not_merged_with_the_original() -> None:
    contracts = contract_rows(
        ("coingecko", "weth", "ethereum", "0xc02a"),
        ("coingecko", "arbitrum-weth", "arbitrum", "0x82af"),
        ("coinpaprika", "weth-arbitrum", "arbitrum", "0x82af"),
    )
    resolution = decide(
        quotes(
            ("coingecko", "weth", "weth", "Wrapped Ether"),
            ("coingecko", "arbitrum-weth", "weth", "Arbitrum Bridged WETH"),
            ("coinpaprika", "weth-arbitrum", "WETH", "Wrapped Ether"),
        ),
        contracts=contracts,
    )
    coins = coin_of(resolution)
    # The names say "Wrapped Ether", the contract says the Arbitrum bridge: the contract wins.
    assert coins[("coinpaprika", "weth-arbitrum")] == coins[("coingecko", "arbitrum-weth")]
    assert method_of(resolution)[("coinpaprika", "weth-arbitrum")] == "contract"


def test_the_same_contract_links_assets_whose_ids_and_names_differ() -> None:
    contracts = contract_rows(
        ("coingecko", "usd-coin", "ethereum", "0xa0b8"),
        ("coincap", "usdc", "ethereum", "0xa0b8"),
    )
    resolution = decide(
        quotes(("coingecko", "usd-coin", "usdc", "USD Coin"), ("coincap", "usdc", "USDC", "USDC")),
        contracts=contracts,
    )
    assert set(coin_of(resolution).values()) == {"usdc-usd-coin"}
    linked = resolution.mappings.filter(pl.col("source") == "coincap").row(0, named=True)
    assert (linked["method"], linked["confidence"]) == ("contract", 0.99)
    assert json.loads(linked["evidence"])["address"] == "0xa0b8"


def test_different_contracts_on_one_chain_keep_identical_names_apart() -> None:
    contracts = contract_rows(
        ("coingecko", "usd-coin", "ethereum", "0xa0b8"),
        ("coincap", "fake-usdc", "ethereum", "0xdead"),
    )
    resolution = decide(
        quotes(
            ("coingecko", "usd-coin", "usdc", "USD Coin"),
            ("coincap", "fake-usdc", "USDC", "USD Coin"),
        ),
        contracts=contracts,
    )
    assert coin_of(resolution)[("coincap", "fake-usdc")] != "usdc-usd-coin"
    assert resolution.review["confidence"].to_list() == [0.5]


def test_a_renamed_asset_links_when_its_ids_and_the_market_agree() -> None:
    """Binance Coin was renamed BNB: the names differ, but both ids were minted from the old name
    and the market at the same moment corroborates."""
    resolution = decide(
        quotes(
            ("coingecko", "binancecoin", "bnb", "BNB"),
            ("coinpaprika", "bnb-binance-coin", "BNB", "Binance Coin"),
            market_cap=1.26e11,
        )
    )
    assert set(coin_of(resolution).values()) == {"bnb-bnb"}
    assert resolution.review.is_empty()


def test_a_renamed_asset_whose_ids_differ_goes_to_review_not_into_the_coin() -> None:
    """The symbol and a corroborating market, and nothing else: never a link on its own."""
    resolution = decide(
        quotes(
            ("coingecko", "binancecoin", "bnb", "BNB"),
            ("coinpaprika", "bnb-build-n-build", "BNB", "Build N Build"),
            market_cap=1.26e11,
        )
    )
    assert sorted(resolution.new_coins["coin_id"]) == ["bnb-bnb", "bnb-build-n-build"]
    (queued,) = resolution.review.to_dicts()
    assert (queued["source_asset_id"], queued["candidate_coin_id"], queued["method"]) == (
        "bnb-build-n-build",
        "bnb-bnb",
        "symbol_market",
    )
    assert queued["confidence"] == 0.5


def test_similar_names_link_when_the_market_corroborates() -> None:
    resolution = decide(
        quotes(
            ("coingecko", "havven", "snx", "Synthetix Network"),
            ("coinpaprika", "hav-havven", "SNX", "Synthetix"),
            market_cap=2.7e8,
        )
    )
    assert set(coin_of(resolution).values()) == {"snx-synthetix-network"}
    assert method_of(resolution)[("coinpaprika", "hav-havven")] == "symbol_name_market"


def test_an_existing_mapping_is_sticky_even_when_the_asset_is_renamed() -> None:
    store = Store()
    first = decide(quotes(("coincap", "ripple", "XRP", "XRP")), store)
    renamed = decide(quotes(("coincap", "ripple", "XRP", "Ripple XRP")), store)
    assert coin_of(renamed) == coin_of(first) == {("coincap", "ripple"): "xrp-xrp"}
    assert renamed.mappings["method"].to_list() == ["sticky"]
    assert renamed.new_coins.is_empty()


def test_an_override_links_assets_matching_cannot() -> None:
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
    store = Store()
    decide(quotes(("coinpaprika", "bnb-binance-coin", "BNB", "Binance Coin")), store, overrides)
    later = decide(quotes(("coingecko", "binancecoin", "bnb", "BNB")), store, overrides)
    assert coin_of(later) == {("coingecko", "binancecoin"): "bnb-bnb"}
    assert later.new_coins.is_empty()


def test_operator_decisions_and_aliases_steer_new_assets() -> None:
    store = Store()
    decide(quotes(("coingecko", "bitcoin", "btc", "Bitcoin")), store)
    rejected = decide(
        quotes(("coincap", "bitcoin", "BTC", "Bitcoin")),
        store,
        rejected=frozenset({("coincap", "bitcoin", "btc-bitcoin")}),
    )
    assert coin_of(rejected)[("coincap", "bitcoin")] != "btc-bitcoin"
    accepted = decide(
        quotes(("coinpaprika", "bitcoin-old", "XBT", "Bitcoin (old)")),
        store,
        accepted={("coinpaprika", "bitcoin-old"): ("old-btc", "d1")},
        aliases={"old-btc": "btc-bitcoin"},
    )
    assert coin_of(accepted) == {("coinpaprika", "bitcoin-old"): "btc-bitcoin"}
    assert method_of(accepted) == {("coinpaprika", "bitcoin-old"): "operator"}


ASSETS = (
    *BITCOIN_EVERYWHERE,
    ("coingecko", "weth", "weth", "WETH"),
    ("coingecko", "weth-bridged", "weth", "WETH"),
    ("coinpaprika", "weth-weth", "WETH", "WETH"),
    ("coincap", "weth", "WETH", "WETH"),
    ("coingecko", "uniswap", "uni", "Uniswap"),
    ("coinpaprika", "uni-universe", "UNI", "Universe Token"),
    ("coincap", "💎-hands", "💎", "Diamond • Hands"),
    ("coingecko", "havven", "snx", "Synthetix Network"),
    ("coinpaprika", "hav-havven", "SNX", "Synthetix"),
    ("coingecko", "usd-coin", "usdc", "USD Coin"),
    ("coincap", "usdc", "USDC", "USDC"),
)
CONTRACTS = contract_rows(
    ("coingecko", "usd-coin", "ethereum", "0xa0b8"), ("coincap", "usdc", "ethereum", "0xa0b8")
)


def _outcome(resolution: Resolution) -> tuple[object, ...]:
    mappings = resolution.mappings.sort("source", "source_asset_id")
    return (
        mappings.select("source", "source_asset_id", "coin_id", "method", "confidence").rows(),
        sorted(resolution.review.select("source_asset_id", "candidate_coin_id").rows()),
    )


@settings(max_examples=40)
@given(st.permutations(ASSETS))
def test_resolution_does_not_depend_on_input_order(shuffled: list[Asset]) -> None:
    expected = decide(quotes(*ASSETS, market_cap=1e9), contracts=CONTRACTS)
    assert _outcome(decide(quotes(*shuffled, market_cap=1e9), contracts=CONTRACTS)) == _outcome(
        expected
    )


@settings(max_examples=20)
@given(st.permutations(SOURCE_NAMES))
def test_loading_sources_in_any_order_gives_the_same_coins(order: list[str]) -> None:
    """Each source in its own batch, in any order (a source failed, a retry came later): the same
    assets end up together (coin ids may differ: a coin is named by its founder)."""
    # Without CoinGecko's two "WETH": which coin a later source's WETH joins then depends on what
    # was known when it arrived (both orders queue the rival for review).
    assets = [a for a in ASSETS if a[1] != "weth-bridged"]
    store = Store()
    for source in order:
        batch = [a for a in assets if a[0] == source]
        decide(quotes(*batch, market_cap=1e9), store, contracts=CONTRACTS)
    in_one_batch = decide(quotes(*assets, market_cap=1e9), contracts=CONTRACTS)

    def groups(frame: pl.DataFrame) -> set[frozenset[tuple[str, str]]]:
        by_coin: dict[str, set[tuple[str, str]]] = {}
        for s, a, c in frame.select("source", "source_asset_id", "coin_id").iter_rows():
            by_coin.setdefault(c, set()).add((s, a))
        return {frozenset(v) for v in by_coin.values()}

    assert groups(store.mappings) == groups(in_one_batch.mappings)


def test_rerunning_a_batch_changes_nothing() -> None:
    store = Store()
    first = decide(quotes(*ASSETS, market_cap=1e9), store, contracts=CONTRACTS)
    again = decide(quotes(*ASSETS, market_cap=1e9), store, contracts=CONTRACTS)
    assert coin_of(again) == coin_of(first)
    assert set(again.mappings["method"]) == {"sticky"}
    assert again.new_coins.is_empty()
    assert again.review.is_empty()


def test_a_renamed_ticker_is_found_under_its_new_symbol() -> None:
    store = Store()
    decide(quotes(("coingecko", "render-token", "rndr", "Render")), store)
    decide(quotes(("coingecko", "render-token", "render", "Render")), store)  # RNDR -> RENDER
    joined = decide(quotes(("coincap", "render", "RENDER", "Render")), store)
    assert coin_of(joined) == {("coincap", "render"): "rndr-render"}


def test_an_address_one_source_lists_for_two_of_its_coins_proves_nothing() -> None:
    """CoinGecko lists Arbitrum's bridged WETH address under WETH too, and under the bridged
    token its markets never reach: CoinPaprika's bridged WETH must not join WETH on it."""
    contracts = contract_rows(
        ("coingecko", "weth", "arbitrum", "0x82af"),
        ("coingecko", "arbitrum-bridged-weth", "arbitrum", "0x82af"),  # not in the markets
        ("coinpaprika", "weth-arbitrum", "arbitrum", "0x82af"),
    )
    resolution = decide(
        quotes(
            ("coingecko", "weth", "weth", "Wrapped Ether"),
            ("coinpaprika", "weth-arbitrum", "WETH", "Arbitrum Bridged WETH"),
        ),
        contracts=contracts,
    )
    assert coin_of(resolution)[("coinpaprika", "weth-arbitrum")] != "weth-wrapped-ether"
    (queued,) = resolution.review.to_dicts()
    assert (queued["candidate_coin_id"], queued["confidence"]) == ("weth-wrapped-ether", 0.7)


def test_a_near_rival_makes_a_link_ambiguous_whatever_names_matched() -> None:
    """Two CoinGecko coins fit CoinPaprika's WBTC equally (the same name, one with an older
    quote): a person decides."""
    store = Store()
    decide(quotes(("coingecko", "wrapped-btc", "wbtc", "Wrapped Bitcoin"), market_cap=1e10), store)
    decide(
        quotes(
            ("coingecko", "wrapped-bitcoin-bridged", "wbtc", "Wrapped Bitcoin"),
            at=T0 - timedelta(days=4),
            market_cap=1e10,
        ),
        store,
    )
    later = decide(
        quotes(("coinpaprika", "wbtc", "WBTC", "Wrapped Bitcoin"), market_cap=1e10), store
    )
    assert coin_of(later)[("coinpaprika", "wbtc")] not in set(store.mappings["coin_id"][:2])
    assert later.review.height == 2
    assert json.loads(later.mappings["evidence"][0])["ambiguous"] is True


def test_a_configured_crosswalk_links_ids_and_names_nothing_else_would() -> None:
    crosswalk = {
        ("coinpaprika", "hav-havven"): frozenset({("coingecko", "havven")}),
        ("coingecko", "havven"): frozenset({("coinpaprika", "hav-havven")}),
    }
    store = Store()
    decide(quotes(("coingecko", "havven", "snx", "Synthetix Network")), store)
    later = decide(
        quotes(("coinpaprika", "hav-havven", "HAV", "Havven")), store, crosswalk=crosswalk
    )
    linked = later.mappings.row(0, named=True)
    assert (linked["coin_id"], linked["method"], linked["confidence"]) == (
        "snx-synthetix-network",
        "crosswalk",
        0.98,
    )
    assert json.loads(linked["evidence"])["crosswalk"] == ["coingecko/havven"]


def test_a_crosswalk_the_prices_contradict_waits_for_review() -> None:
    crosswalk = {("coinpaprika", "hav-havven"): frozenset({("coingecko", "havven")})}
    store = Store()
    decide(quotes(("coingecko", "havven", "snx", "Synthetix Network")), store)
    later = decide(
        quotes(("coinpaprika", "hav-havven", "HAV", "Havven"), price={"hav-havven": 7.8}),
        store,
        crosswalk=crosswalk,
    )
    assert coin_of(later)[("coinpaprika", "hav-havven")] != "snx-synthetix-network"
    assert later.review.select("candidate_coin_id", "method", "confidence").rows() == [
        ("snx-synthetix-network", "crosswalk", 0.6)
    ]
