"""Evidence that arrives later counts: an asset waiting in review is linked once the evidence
clears the bar, duplicates an older rule made are merged by the next run, and a link no market
confirmed goes back to review when a market contradicts it (never split silently)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.load import load_source
from flows.sources import SOURCE_NAMES
from flows.transform import Validated
from store import runs
from store.connection import warehouse
from store.resolution import RESOLVER, Decision, alias_target, apply_pending, new_decision
from store.resolution.model import DECISION_FILE
from store.schema import QUARANTINE
from tests.flows.resolution.test_decider import T0, quotes


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with warehouse(tmp_path / "warehouse.duckdb") as con:
        yield con


def load(con: duckdb.DuckDBPyConnection, run: str, batch: pl.DataFrame) -> None:
    """Load one source's batch as run ``run`` (lineage filled in as the transform would)."""
    batch = batch.with_columns(
        run_id=pl.lit(run), raw_file=pl.lit(f"{run}.parquet"), raw_record=pl.int_range(pl.len())
    ).cast(batch.schema)  # type: ignore[arg-type]
    result = runs.SourceResult(run, batch["source"][0], "loaded")
    load_source(con, Validated(batch, QUARANTINE.to_frame(), 0), result, {}, ledger=False)


def link(con: duckdb.DuckDBPyConnection, source: str, asset: str) -> tuple[str, str]:
    rows = con.execute(
        "select coin_id, method from coin_source_ids where source = ? and source_asset_id = ?",
        [source, asset],
    ).fetchall()
    return rows[0]


def review(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "select source, source_asset_id, candidate_coin_id, coin_id, status "
        "from resolution_review order by all"
    ).fetchall()


def test_an_asset_waiting_in_review_is_linked_when_a_later_market_clears_the_bar(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Wrapped Bitcoin, captured 400 days apart: similar names and a unique key wait for review.
    A later run captures both sources together, and the market corroborates."""
    gecko = ("coingecko", "wrapped-bitcoin", "wbtc", "Wrapped Bitcoin")
    paprika = ("coinpaprika", "wbtc-wrapped-btc", "WBTC", "Wrapped BTC")
    later = T0 + timedelta(days=400)
    load(con, "r1", quotes(gecko, at=T0, market_cap=1.2e10))
    load(con, "r2", quotes(paprika, at=later, market_cap=1.2e10))
    gecko_coin, _ = link(con, *gecko[:2])
    own_coin, method = link(con, *paprika[:2])
    assert (own_coin != gecko_coin, method) == (True, "new")
    assert review(con) == [(*paprika[:2], gecko_coin, own_coin, "pending")]

    load(con, "r3", quotes(gecko, at=later + timedelta(days=1), market_cap=1.2e10))
    load(con, "r4", quotes(paprika, at=later + timedelta(days=1), market_cap=1.2e10))

    assert link(con, *paprika[:2]) == (gecko_coin, "name_similarity_market")
    assert review(con) == [(*paprika[:2], gecko_coin, gecko_coin, "superseded")]
    assert alias_target(con, own_coin) == gecko_coin
    quoted = con.execute(
        "select distinct coin_id from quotes where source = 'coinpaprika'"
    ).fetchall()
    assert quoted == [(gecko_coin,)]
    (decision,) = con.execute(
        "select action, coin_id, other_coin_id, decided_by, outcome from resolution_decisions"
    ).fetchall()
    assert decision == ("merge", gecko_coin, own_coin, RESOLVER, "applied")
    evidence = json.loads(
        con.execute("select evidence from coin_source_ids where source = 'coinpaprika'").fetchall()[
            0
        ][0]
    )
    assert evidence["relinked_from"] == own_coin
    assert evidence["weights"]["market_corroborated"] > 0


def test_duplicates_an_older_rule_made_are_merged_by_the_next_run(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """The rule before this one founded a coin of its own for a CSV Bitcoin two months away from
    any quote, and queued the link for review. The next run that meets the asset merges it, and
    the old coin id keeps answering as an alias."""
    load(con, "r1", quotes(("coingecko", "bitcoin", "btc", "Bitcoin")))
    at = T0 + timedelta(days=60)
    duplicate = "btc-bitcoin-6f1ed002"
    # What the older rule left: a coin, its only link (method new) and a pending review row.
    con.execute("insert into coins values (?, 'BTC', 'Bitcoin', ?, 'r0')", [duplicate, at])
    con.execute(
        """
        insert into coin_source_ids (source, source_asset_id, coin_id, symbol, name, match_key,
            method, confidence, evidence, first_seen_at, last_seen_at, decided_by_run)
        values ('csv', 'BTC:Bitcoin', ?, 'BTC', 'Bitcoin', 'btc' || chr(31) || 'bitcoin',
            'new', 0.2, '{}', ?, ?, 'r0')
        """,
        [duplicate, at, at],
    )
    con.execute(
        """
        insert into resolution_review (source, source_asset_id, candidate_coin_id, coin_id,
            method, confidence, evidence, proposed_by_run, proposed_at)
        values ('csv', 'BTC:Bitcoin', 'btc-bitcoin', ?, 'symbol_name_market', 0.8, '{}', 'r0', ?)
        """,
        [duplicate, at],
    )

    load(con, "r2", quotes(("csv", "BTC:Bitcoin", "BTC", "Bitcoin"), at=at + timedelta(days=1)))

    assert link(con, "csv", "BTC:Bitcoin") == ("btc-bitcoin", "names_ids")
    assert con.execute("select coin_id from coins").fetchall() == [("btc-bitcoin",)]
    assert alias_target(con, duplicate) == "btc-bitcoin"
    assert review(con)[0][-1] == "superseded"


def test_a_link_no_market_confirmed_goes_back_to_review_when_a_market_contradicts_it(
    con: duckdb.DuckDBPyConnection,
) -> None:
    load(con, "r1", quotes(("coingecko", "bitcoin", "btc", "Bitcoin")))
    history = ("csv", "BTC:Bitcoin", "BTC", "Bitcoin")
    load(con, "r2", quotes(history, at=T0 + timedelta(days=60)))
    assert link(con, "csv", "BTC:Bitcoin") == ("btc-bitcoin", "names_ids")
    assert review(con) == []

    day = T0 + timedelta(days=90)
    load(con, "r3", quotes(("coingecko", "bitcoin", "btc", "Bitcoin"), at=day))
    load(con, "r4", quotes(history, at=day, price={"BTC:Bitcoin": 9125.0}))

    # Still linked (a person decides whether to split), and in the queue with the reason.
    assert link(con, "csv", "BTC:Bitcoin") == ("btc-bitcoin", "names_ids")
    assert review(con) == [("csv", "BTC:Bitcoin", "btc-bitcoin", "btc-bitcoin", "pending")]
    evidence = json.loads(con.execute("select evidence from resolution_review").fetchall()[0][0])
    assert "contradicts" in evidence["why"]
    assert evidence["price_difference"] == pytest.approx(0.9)

    # Another run with the same disagreement queues nothing more.
    load(con, "r5", quotes(history, at=day + timedelta(hours=1), price={"BTC:Bitcoin": 9125.0}))
    assert len(review(con)) == 1


def test_a_later_agreeing_market_leaves_a_weak_link_alone(
    con: duckdb.DuckDBPyConnection,
) -> None:
    load(con, "r1", quotes(("coingecko", "bitcoin", "btc", "Bitcoin")))
    history = ("csv", "BTC:Bitcoin", "BTC", "Bitcoin")
    load(con, "r2", quotes(history, at=T0 + timedelta(days=60)))
    day = T0 + timedelta(days=90)
    load(con, "r3", quotes(("coingecko", "bitcoin", "btc", "Bitcoin"), at=day))
    load(con, "r4", quotes(history, at=day))
    assert link(con, "csv", "BTC:Bitcoin") == ("btc-bitcoin", "names_ids")
    assert review(con) == []


def decide_now(con: duckdb.DuckDBPyConnection, run: str, decision: Decision) -> None:
    """An operator's decision, taken and applied by run ``run``."""
    con.execute(
        f"insert into resolution_decisions ({', '.join(DECISION_FILE)}) "
        f"values ({', '.join('?' * len(DECISION_FILE))})",
        [getattr(decision, column) for column in DECISION_FILE],
    )
    assert [a.outcome for a in apply_pending(con, run, list(SOURCE_NAMES))] == ["applied"]


def test_an_operator_who_splits_the_resolvers_merge_is_not_overruled_by_the_next_run(
    con: duckdb.DuckDBPyConnection,
) -> None:
    gecko = ("coingecko", "wrapped-bitcoin", "wbtc", "Wrapped Bitcoin")
    paprika = ("coinpaprika", "wbtc-wrapped-btc", "WBTC", "Wrapped BTC")
    later = T0 + timedelta(days=400)
    load(con, "r1", quotes(gecko, at=T0, market_cap=1.2e10))
    load(con, "r2", quotes(paprika, at=later, market_cap=1.2e10))
    own, _ = link(con, *paprika[:2])
    for run, day in (("r3", 1), ("r4", 1)):
        load(
            con,
            run,
            quotes(
                gecko if run == "r3" else paprika, at=later + timedelta(days=day), market_cap=1.2e10
            ),
        )
    assert link(con, *paprika[:2])[0] != own

    decide_now(con, "r5", new_decision("split", coin_id=own, decided_by="ops", note="not it"))
    load(con, "r6", quotes(gecko, at=later + timedelta(days=2), market_cap=1.2e10))
    load(con, "r7", quotes(paprika, at=later + timedelta(days=2), market_cap=1.2e10))

    assert link(con, *paprika[:2]) == (own, "new")
    assert [row[-1] for row in review(con)] == ["rejected"]


def test_a_decision_on_other_coins_leaves_a_contradicted_link_in_the_queue(
    con: duckdb.DuckDBPyConnection,
) -> None:
    load(
        con,
        "r1",
        quotes(("coingecko", "bitcoin", "btc", "Bitcoin"), ("coingecko", "ether", "eth", "Ether")),
    )
    history = ("csv", "BTC:Bitcoin", "BTC", "Bitcoin")
    load(con, "r2", quotes(history, at=T0 + timedelta(days=60)))
    day = T0 + timedelta(days=90)
    load(con, "r3", quotes(("coingecko", "bitcoin", "btc", "Bitcoin"), at=day))
    load(con, "r4", quotes(history, at=day, price={"BTC:Bitcoin": 9125.0}))
    load(con, "r5", quotes(("coincap", "foo", "FOO", "Foo"), at=day))
    foo, _ = link(con, "coincap", "foo")
    decide_now(
        con, "r6", new_decision("merge", coin_id="eth-ether", other_coin_id=foo, decided_by="ops")
    )
    assert review(con) == [("csv", "BTC:Bitcoin", "btc-bitcoin", "btc-bitcoin", "pending")]
