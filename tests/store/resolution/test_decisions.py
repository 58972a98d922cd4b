"""Operator decisions: the inbox, and accept, reject, merge and split applied to the warehouse,
each in one transaction, checked again against what the warehouse holds when it applies."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flows.sources import SOURCE_NAMES
from store.connection import open_warehouse
from store.merge import refresh_coins
from store.resolution import (
    Action,
    Applied,
    Decision,
    alias_target,
    apply_pending,
    import_inbox,
    operator_links,
    write_inbox,
)
from store.resolution import apply as applying
from store.resolution import inbox as inbox_files
from store.schema import suffixed_coin_id

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ORDER = list(SOURCE_NAMES)

# (source, source_asset_id, coin_id, symbol, name). The coincap ethereum asset was resolved to a
# coin of its own (eth-ether); weth is a different asset that shares coingecko with eth-ethereum.
ASSETS = [
    ("coingecko", "bitcoin", "btc-bitcoin", "BTC", "Bitcoin"),
    ("coinpaprika", "btc-bitcoin", "btc-bitcoin", "BTC", "Bitcoin"),
    ("coincap", "bitcoin", "btc-bitcoin", "BTC", "Bitcoin"),
    ("coingecko", "ethereum", "eth-ethereum", "ETH", "Ethereum"),
    ("coinpaprika", "eth-ethereum", "eth-ethereum", "ETH", "Ethereum"),
    ("coincap", "ethereum", "eth-ether", "ETH", "Ether"),
    ("coingecko", "weth", "weth-wrapped-ether", "WETH", "Wrapped Ether"),
    ("coincap", "wrapped-ether", "weth-wrapped-ether", "WETH", "Wrapped Ether"),
    ("csv", "ETH:Ethereum", "eth-ethereum-csv", "ETH", "Ethereum"),
]
# Every table a decision may write, and what "unchanged" is judged on.
TABLES = (
    "coins",
    "coin_source_ids",
    "quotes",
    "coin_aliases",
    "resolution_review",
    "run_sources",
    "run_seen",
)


def seed(con: duckdb.DuckDBPyConnection) -> None:
    """A small warehouse as a run would have left it: coins, links, two quotes per asset, the
    run ledger's pointers, and one pending review candidate."""
    for i, (source, asset, coin, symbol, name) in enumerate(ASSETS):
        con.execute(
            "insert or ignore into coins values (?, ?, ?, ?, 'r1')", [coin, symbol, name, T0]
        )
        con.execute(
            """
            insert into coin_source_ids values (
                ?, ?, ?, ?, ?, lower(? || '|' || ?), 'symbol_name', 0.9, ?, ?, ?, ?, 'r1'
            )
            """,
            [
                source, asset, coin, symbol, name, symbol, name,
                json.dumps({"symbol": symbol, "name": name}), T0 + timedelta(minutes=i),
                T0 + timedelta(hours=1), T0 + timedelta(hours=1),
            ],
        )  # fmt: skip
        for hour in (0, 1):
            con.execute(
                """
                insert into quotes (
                    coin_id, source, observed_at, kind, source_asset_id, symbol, name, price_usd,
                    run_id, raw_file, raw_record
                ) values (?, ?, ?, 'snapshot', ?, ?, ?, ?, 'r1', 'raw.parquet', ?)
                """,
                [
                    coin, source, T0 + timedelta(hours=hour), asset, symbol, name,
                    Decimal(f"{100 + i}.{hour}00000000000000001"), i,
                ],
            )  # fmt: skip
    for source in ORDER:
        seen = [
            {"source_asset_id": a, "coin_id": c, "observed_at": T0 + timedelta(hours=1)}
            for s, a, c, _, _ in sorted(ASSETS, key=lambda row: row[1])
            if s == source
        ]
        con.execute(
            "insert into run_sources (run_id, source, status) values ('r1', ?, 'loaded')", [source]
        )
        con.executemany(
            "insert into run_seen values ('r1', ?, ?, ?, ?)",
            [[source, s["source_asset_id"], s["coin_id"], s["observed_at"]] for s in seen],
        )
    con.execute(
        """
        insert into resolution_review values (
            'coincap', 'ethereum', 'eth-ethereum', 'eth-ether', 'symbol_name_market', 0.8,
            '{"price_ratio": 1.001}', 'pending', 'r1', ?, null, null
        )
        """,
        [T0],
    )
    refresh_coins(con, sorted({a[2] for a in ASSETS}), ORDER)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_warehouse(tmp_path / "warehouse.duckdb")
    seed(connection)
    yield connection
    connection.close()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    return tmp_path / "decisions" / "inbox"


@dataclass
class Decide:
    """Takes decisions one minute apart, through the inbox, and applies them as a run does."""

    con: duckdb.DuckDBPyConnection
    inbox: Path
    taken: int = 0

    def __call__(self, action: Action, **fields: Any) -> Applied:
        (applied,) = self.many((action, fields))
        return applied

    def many(self, *wanted: tuple[Action, dict[str, Any]]) -> list[Applied]:
        for action, fields in wanted:
            self.taken += 1
            write_inbox(self.inbox, decision(action, minutes=self.taken, **fields))
        import_inbox(self.con, self.inbox)
        return apply_pending(self.con, "r2", ORDER)


@pytest.fixture
def decide(con: duckdb.DuckDBPyConnection, inbox: Path) -> Decide:
    return Decide(con, inbox)


def decision(action: Action, *, minutes: int = 0, **fields: Any) -> Decision:
    """A decision taken ``minutes`` after a fixed moment."""
    fields.setdefault("decided_by", "ops@example.com")
    return Decision(decision_id=str(uuid.uuid4()), action=action, decided_at=_at(minutes), **fields)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(days=1, minutes=minutes)


def dump(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a decision writes, in a stable order."""
    return {t: con.execute(f"select * from {t} order by all").fetchall() for t in TABLES}


def coin_of(con: duckdb.DuckDBPyConnection, source: str, asset: str) -> str:
    return str(
        con.execute(
            "select coin_id from coin_source_ids where source = ? and source_asset_id = ?",
            [source, asset],
        ).fetchall()[0][0]
    )


def quote_coins(con: duckdb.DuckDBPyConnection, source: str, asset: str) -> set[str]:
    rows = con.execute(
        "select distinct coin_id from quotes where source = ? and source_asset_id = ?",
        [source, asset],
    ).fetchall()
    return {r[0] for r in rows}


def seen_coin(con: duckdb.DuckDBPyConnection, source: str, asset: str) -> str:
    rows = con.execute(
        """
        select coin_id from run_seen where source = ? and source_asset_id = ?
        """,
        [source, asset],
    ).fetchall()
    return str(rows[0][0])


def coin_row(con: duckdb.DuckDBPyConnection, coin_id: str) -> tuple[Any, ...] | None:
    rows = con.execute(
        "select symbol, name, first_seen_at from coins where coin_id = ?", [coin_id]
    ).fetchall()
    return rows[0] if rows else None


def outcome(con: duckdb.DuckDBPyConnection, decision_id: str) -> tuple[str, dict[str, Any]]:
    state, detail = con.execute(
        "select outcome, detail from resolution_decisions where decision_id = ?", [decision_id]
    ).fetchall()[0]
    return state, json.loads(detail)


# --- merge and split -----------------------------------------------------------------------------


def test_merge_moves_the_other_coins_links_and_quotes_and_leaves_an_alias(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    applied = decide("merge", coin_id="eth-ethereum", other_coin_id="eth-ether", note="same asset")

    assert applied.outcome == "applied"
    assert coin_of(con, "coincap", "ethereum") == "eth-ethereum"
    assert quote_coins(con, "coincap", "ethereum") == {"eth-ethereum"}
    assert seen_coin(con, "coincap", "ethereum") == "eth-ethereum"
    assert coin_row(con, "eth-ether") is None
    method, evidence = con.execute(
        "select method, evidence from coin_source_ids where source_asset_id = 'ethereum' "
        "and source = 'coincap'"
    ).fetchall()[0]
    assert method == "operator"
    assert json.loads(evidence)["decision_id"] == applied.decision_id
    alias = con.execute(
        "select coin_id, symbol, name, moved, decision_id from coin_aliases "
        "where alias_coin_id = 'eth-ether'"
    ).fetchall()
    assert alias == [
        (
            "eth-ethereum",
            "ETH",
            "Ether",
            [{"source": "coincap", "source_asset_id": "ethereum"}],
            applied.decision_id,
        )
    ]
    assert outcome(con, applied.decision_id)[0] == "applied"
    # Quotes keep the source asset's own symbol and name; only their coin moved.
    assert con.execute(
        "select distinct symbol, name from quotes where source = 'coincap' "
        "and source_asset_id = 'ethereum'"
    ).fetchall() == [("ETH", "Ether")]


def test_the_survivor_is_named_after_the_first_source_in_source_order(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    """eth-ether (CoinCap only) survives the merge of eth-ethereum (CoinGecko, CoinPaprika): it
    takes CoinGecko's name, as if it had been resolved that way."""
    applied = decide("merge", coin_id="eth-ether", other_coin_id="eth-ethereum")

    assert applied.outcome == "applied"
    assert coin_row(con, "eth-ether") == ("ETH", "Ethereum", T0 + timedelta(minutes=3))


def test_merge_then_split_restores_every_table_exactly(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    # eth-ethereum-csv is already an alias of eth-ether: the next merge re-points it, the split
    # must point it back.
    assert decide("merge", coin_id="eth-ether", other_coin_id="eth-ethereum-csv").outcome == (
        "applied"
    )
    before = dump(con)

    merged = decide("merge", coin_id="eth-ethereum", other_coin_id="eth-ether")
    assert merged.outcome == "applied"
    assert merged.detail["repointed_aliases"] == ["eth-ethereum-csv"]
    assert dump(con) != before

    split = decide("split", coin_id="eth-ether")

    assert split.outcome == "applied", split.detail
    assert dump(con) == before


def test_merge_is_refused_when_both_coins_hold_an_asset_of_one_source(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    before = dump(con)

    refused = decide("merge", coin_id="eth-ethereum", other_coin_id="weth-wrapped-ether")

    assert refused.outcome == "refused"
    assert refused.detail["refused"] == "conflict"
    assert "two coingecko assets" in refused.detail["reason"]
    assert refused.detail["same_source"] == {"coingecko": ["ethereum", "weth"]}
    assert dump(con) == before
    assert outcome(con, refused.decision_id) == ("refused", refused.detail)


def test_merge_into_itself_or_into_an_unknown_coin_is_refused(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    itself, unknown = decide.many(
        ("merge", {"coin_id": "eth-ethereum", "other_coin_id": "eth-ethereum"}),
        ("merge", {"coin_id": "eth-ethereum", "other_coin_id": "no-such-coin"}),
    )

    assert itself.detail["refused"] == "invalid"
    assert unknown.detail["refused"] == "not_found"
    assert "other_coin_id" in unknown.detail["reason"]


def test_a_decision_against_a_merged_coin_names_the_survivor(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    decide("merge", coin_id="eth-ethereum", other_coin_id="eth-ether")

    refused = decide("accept", source="coincap", source_asset_id="bitcoin", coin_id="eth-ether")

    assert refused.outcome == "refused"
    assert refused.detail["alias_of"] == "eth-ethereum"


def test_split_is_refused_when_a_moved_link_has_moved_elsewhere(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    decide("merge", coin_id="eth-ethereum", other_coin_id="eth-ether")
    # The coincap asset is rejected from eth-ethereum: it moves to a coin of its own.
    decide("reject", source="coincap", source_asset_id="ethereum", coin_id="eth-ethereum")
    before = dump(con)

    refused = decide("split", coin_id="eth-ether")

    assert refused.outcome == "refused"
    assert "coincap/ethereum" in refused.detail["moved_elsewhere"]
    assert dump(con) == before


def test_split_of_a_coin_that_is_no_alias_is_refused(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    refused = decide("split", coin_id="eth-ethereum")

    assert refused.detail["refused"] == "conflict"
    assert "not an alias" in refused.detail["reason"]


# --- accept and reject ---------------------------------------------------------------------------


def test_accept_moves_the_asset_and_its_quotes_and_settles_the_review_row(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    applied = decide("accept", source="coincap", source_asset_id="ethereum", coin_id="eth-ethereum")

    assert applied.outcome == "applied"
    assert coin_of(con, "coincap", "ethereum") == "eth-ethereum"
    assert quote_coins(con, "coincap", "ethereum") == {"eth-ethereum"}
    assert seen_coin(con, "coincap", "ethereum") == "eth-ethereum"
    method, confidence, evidence = con.execute(
        "select method, confidence, evidence from coin_source_ids "
        "where source = 'coincap' and source_asset_id = 'ethereum'"
    ).fetchall()[0]
    assert (method, confidence) == ("operator", 1.0)
    assert json.loads(evidence)["decision_id"] == applied.decision_id
    assert con.execute(
        "select status, decided_by, decision_id from resolution_review"
    ).fetchall() == [("accepted", "ops@example.com", applied.decision_id)]
    # eth-ether held nothing else: it is now an alias of eth-ethereum.
    assert coin_row(con, "eth-ether") is None
    assert alias_target(con, "eth-ether") == "eth-ethereum"


def test_accept_renames_both_coins_by_source_order(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    applied = decide(
        "accept", source="coinpaprika", source_asset_id="eth-ethereum", coin_id="eth-ether"
    )

    assert applied.outcome == "applied"
    # eth-ether now holds a CoinPaprika asset, which names it before CoinCap's; eth-ethereum
    # keeps its CoinGecko asset, so it stays a coin.
    assert coin_row(con, "eth-ether") == ("ETH", "Ethereum", T0 + timedelta(minutes=4))
    assert coin_row(con, "eth-ethereum") == ("ETH", "Ethereum", T0 + timedelta(minutes=3))
    assert alias_target(con, "eth-ethereum") is None


def test_accepting_a_coins_last_asset_makes_the_coin_an_alias(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    applied = decide("accept", source="csv", source_asset_id="ETH:Ethereum", coin_id="eth-ether")

    assert applied.outcome == "applied"
    assert coin_of(con, "csv", "ETH:Ethereum") == "eth-ether"
    assert coin_row(con, "eth-ethereum-csv") is None
    assert alias_target(con, "eth-ethereum-csv") == "eth-ether"
    # CoinCap comes before CSV in source order: eth-ether keeps its name.
    assert coin_row(con, "eth-ether") == ("ETH", "Ether", T0 + timedelta(minutes=5))
    # ... and a split gives the CSV asset its coin back.
    assert decide("split", coin_id="eth-ethereum-csv").outcome == "applied"
    assert coin_of(con, "csv", "ETH:Ethereum") == "eth-ethereum-csv"


def test_accept_is_refused_when_the_coin_holds_an_asset_of_the_same_source(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    before = dump(con)

    refused = decide("accept", source="coingecko", source_asset_id="weth", coin_id="eth-ethereum")

    assert refused.outcome == "refused"
    assert refused.detail["held"] == "ethereum"
    assert "at most one asset per source" in refused.detail["reason"]
    assert dump(con) == before


def test_reject_moves_the_asset_out_to_a_coin_of_its_own(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    applied = decide(
        "reject", source="coinpaprika", source_asset_id="eth-ethereum", coin_id="eth-ethereum"
    )

    target = suffixed_coin_id("eth-ethereum", "coinpaprika", "eth-ethereum")
    assert applied.outcome == "applied"
    assert applied.detail["moved_to"] == target
    assert target.startswith("eth-ethereum-")
    assert len(target) == len("eth-ethereum-") + 8
    assert coin_of(con, "coinpaprika", "eth-ethereum") == target
    assert quote_coins(con, "coinpaprika", "eth-ethereum") == {target}
    assert seen_coin(con, "coinpaprika", "eth-ethereum") == target
    assert coin_row(con, target) == ("ETH", "Ethereum", T0 + timedelta(minutes=4))
    assert coin_of(con, "coingecko", "ethereum") == "eth-ethereum"
    # The rejection is remembered for resolution to read.
    assert con.execute(
        "select action, source, source_asset_id, coin_id from resolution_decisions "
        "where outcome = 'applied'"
    ).fetchall() == [("reject", "coinpaprika", "eth-ethereum", "eth-ethereum")]


def test_reject_of_a_review_candidate_settles_it_and_moves_nothing(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    before = dump(con)

    applied = decide("reject", source="coincap", source_asset_id="ethereum", coin_id="eth-ethereum")

    assert applied.outcome == "applied"
    assert applied.detail == {"review_rows": 1, "moved_to": None, "superseded_review_rows": 0}
    after = dump(con)
    assert after["resolution_review"][0][7] == "rejected"
    assert {t: rows for t, rows in after.items() if t != "resolution_review"} == {
        t: rows for t, rows in before.items() if t != "resolution_review"
    }


def test_reject_of_a_coins_only_asset_is_refused(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    refused = decide("reject", source="coincap", source_asset_id="ethereum", coin_id="eth-ether")

    assert refused.outcome == "refused"
    assert "only asset" in refused.detail["reason"]


def test_a_decision_on_an_unknown_asset_is_refused_naming_the_field(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    refused = decide("accept", source="coincap", source_asset_id="dogecoin", coin_id="eth-ether")

    assert refused.detail["refused"] == "not_found"
    assert refused.detail["reason"].startswith("source_asset_id:")


def test_decisions_apply_in_the_order_they_were_taken(
    con: duckdb.DuckDBPyConnection, inbox: Path
) -> None:
    """The split was taken after the merge: written to the inbox first, it still applies second."""
    merge = decision("merge", minutes=1, coin_id="eth-ethereum", other_coin_id="eth-ether")
    split = decision("split", minutes=2, coin_id="eth-ether")
    write_inbox(inbox, split)
    write_inbox(inbox, merge)
    before = dump(con)

    import_inbox(con, inbox)
    applied = apply_pending(con, "r2", ORDER)

    assert [(a.action, a.outcome) for a in applied] == [("merge", "applied"), ("split", "applied")]
    assert dump(con) == before
    assert apply_pending(con, "r3", ORDER) == []  # each applies once


# --- atomicity -----------------------------------------------------------------------------------


def test_a_decision_that_fails_mid_apply_leaves_every_table_unchanged(
    con: duckdb.DuckDBPyConnection, decide: Decide, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The links and quotes moved, then naming the coins failed: all of it is rolled back, the
    decision is refused with the error, and the next decision still applies."""
    before = dump(con)
    real_refresh = applying.refresh_coins
    calls = 0

    def failing_once(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise duckdb.IOException("disk went away")
        real_refresh(*args)

    monkeypatch.setattr(applying, "refresh_coins", failing_once)

    failed, then = decide.many(
        ("merge", {"coin_id": "eth-ethereum", "other_coin_id": "eth-ether"}),
        ("reject", {"source": "coincap", "source_asset_id": "ethereum", "coin_id": "eth-ethereum"}),
    )

    assert failed.outcome == "refused"
    assert "disk went away" in failed.detail["reason"]
    assert outcome(con, failed.decision_id)[0] == "refused"
    assert then.outcome == "applied"
    after = dump(con)
    assert after["resolution_review"][0][7] == "rejected"
    assert {t: rows for t, rows in after.items() if t != "resolution_review"} == {
        t: rows for t, rows in before.items() if t != "resolution_review"
    }


def test_a_duckdb_failure_mid_apply_is_recorded_as_the_store_error_saying_what_to_do(
    con: duckdb.DuckDBPyConnection, decide: Decide, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: Any) -> None:
        raise duckdb.IOException("disk went away")

    monkeypatch.setattr(applying, "refresh_coins", failing)

    applied = decide("merge", coin_id="eth-ethereum", other_coin_id="eth-ether")

    assert applied.outcome == "refused"
    assert applied.detail["reason"] == (
        "WarehouseError: applying it: IOException: disk went away; check the file and its disk "
        "(free space, permissions), then retry"
    )


def test_a_bug_mid_apply_rolls_back_and_refuses_only_that_decision(
    con: duckdb.DuckDBPyConnection, decide: Decide, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump(con)

    def broken(*args: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(applying, "refresh_coins", broken)

    applied = decide("merge", coin_id="eth-ethereum", other_coin_id="eth-ether")

    assert (applied.outcome, applied.detail["reason"]) == ("refused", "RuntimeError: bug")
    assert dump(con) == before  # nothing of the merge stayed
    assert con.execute("select outcome from resolution_decisions").fetchall() == [("refused",)]


# --- the inbox -----------------------------------------------------------------------------------


def test_importing_the_inbox_twice_adds_each_decision_once(
    con: duckdb.DuckDBPyConnection, inbox: Path
) -> None:
    taken = decision("merge", minutes=1, coin_id="eth-ethereum", other_coin_id="eth-ether")
    path = write_inbox(inbox, taken)
    assert path.name == f"20261125T120100000000Z-{taken.decision_id}.json"

    assert import_inbox(con, inbox) == 1
    assert not path.exists()
    assert (inbox.parent / "imported" / path.name).is_file()
    write_inbox(inbox, taken)  # delivered again (an operator replays the archive)
    assert import_inbox(con, inbox) == 0
    assert import_inbox(con, inbox) == 0

    rows = con.execute(
        "select decision_id, action, coin_id, other_coin_id, decided_by, decided_at, outcome "
        "from resolution_decisions"
    ).fetchall()
    assert rows == [
        (
            taken.decision_id, "merge", "eth-ethereum", "eth-ether", "ops@example.com",
            taken.decided_at, "pending",
        )
    ]  # fmt: skip


def test_an_inbox_without_a_directory_imports_nothing(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    assert import_inbox(con, tmp_path / "nowhere") == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"action": "merge", ', "truncated"),
        (b"[1, 2]", "Expected `object`"),
        (
            b'{"decision_id": "5b0f3c2e-8d1a-4f6b-9c3e-2a1b0c9d8e7f", "action": "merge", '
            b'"coin_id": "a", "decided_by": "me", "decided_at": "2026-11-25T12:00:00Z"}',
            "merge needs other_coin_id",
        ),
        (
            b'{"decision_id": "5b0f3c2e-8d1a-4f6b-9c3e-2a1b0c9d8e7f", "action": "split", '
            b'"coin_id": "a", "decided_by": "me", "decided_at": "2026-11-25T12:00:00"}',
            "timezone",
        ),
        (
            b'{"decision_id": "5b0f3c2e-8d1a-4f6b-9c3e-2a1b0c9d8e7f", "action": "drop", '
            b'"coin_id": "a", "decided_by": "me", "decided_at": "2026-11-25T12:00:00Z"}',
            "`$.action`",
        ),
    ],
)
def test_a_malformed_inbox_file_is_set_aside_with_its_reason_never_dropped(
    con: duckdb.DuckDBPyConnection,
    inbox: Path,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
    reason: str,
) -> None:
    good = write_inbox(inbox, decision("split", minutes=1, coin_id="eth-ether"))
    bad = inbox / "20261125T120000000000Z-bad.json"
    bad.write_bytes(content)

    with caplog.at_level(logging.ERROR, logger="store.resolution.inbox"):
        assert import_inbox(con, inbox) == 1

    rejected = inbox.parent / "rejected"
    assert (rejected / bad.name).read_bytes() == content
    assert reason in (rejected / f"{bad.name}.reason.txt").read_text()
    assert bad.name in caplog.text
    assert "rejected" in caplog.text
    assert not bad.exists()
    assert not good.exists()
    assert con.execute("select count(*) from resolution_decisions").fetchall() == [(1,)]


def test_a_crash_between_commit_and_archiving_imports_nothing_twice(
    con: duckdb.DuckDBPyConnection, inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_inbox(inbox, decision("split", minutes=1, coin_id="eth-ether"))

    def crash(*args: Any) -> None:
        raise OSError("power cut")

    with monkeypatch.context() as patched:
        patched.setattr(inbox_files.os, "replace", crash)
        with pytest.raises(OSError, match="power cut"):
            import_inbox(con, inbox)

    assert import_inbox(con, inbox) == 0
    assert con.execute("select count(*) from resolution_decisions").fetchall() == [(1,)]
    assert list(inbox.glob("*.json")) == []


def test_operator_links_name_their_decision_for_the_overrides_file(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    applied = decide(
        "accept",
        source="coincap",
        source_asset_id="ethereum",
        coin_id="eth-ethereum",
        note="same contract",
    )

    assert operator_links(con) == [
        (
            "coincap",
            "ethereum",
            "eth-ethereum",
            f"operator accept {applied.decision_id} by ops@example.com: same contract",
        )
    ]


def test_a_merge_settles_the_review_rows_it_answers_and_a_split_reopens_them(
    con: duckdb.DuckDBPyConnection, decide: Decide
) -> None:
    pending = "select status from resolution_review where source_asset_id = 'ethereum'"
    assert con.execute(pending).fetchall() == [("pending",)]

    merged = decide("merge", coin_id="eth-ethereum", other_coin_id="eth-ether")
    assert merged.detail["superseded_review_rows"] == 1
    assert con.execute(pending).fetchall() == [("superseded",)]

    decide("split", coin_id="eth-ether")
    assert con.execute(pending).fetchall() == [("pending",)]
