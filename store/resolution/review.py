"""Reads for the API and the command line: the review queue, the decision log, aliases, and the
links operators set."""

from __future__ import annotations

import json

import duckdb
import polars as pl

from store.errors import SnapshotOutdatedError, converted
from store.resolution.model import OPERATOR, Outcome


def review_queue(
    cur: duckdb.DuckDBPyConnection, *, limit: int, offset: int
) -> tuple[pl.DataFrame, int]:
    """Pending candidates, most confident first: source, source_asset_id, coin_id,
    candidate_coin_id, method, confidence, evidence (JSON text), proposed_by_run, proposed_at;
    and how many are pending."""
    with converted("reading the review queue", snapshot=True):
        (total,) = cur.execute(
            "select count(*) from resolution_review where status = 'pending'"
        ).fetchall()[0]
        rows = cur.execute(
            """
            select
                source,
                source_asset_id,
                coin_id,
                candidate_coin_id,
                method,
                confidence,
                evidence,
                proposed_by_run,
                proposed_at
            from resolution_review
            where status = 'pending'
            order by confidence desc, source, source_asset_id, candidate_coin_id
            limit ? offset ?
            """,
            [limit, offset],
        ).pl()
    return rows, int(total)


def decision_log(
    cur: duckdb.DuckDBPyConnection, *, outcome: Outcome | None, limit: int, offset: int
) -> tuple[pl.DataFrame, int]:
    """Decisions, newest first (every column of ``resolution_decisions``); and the total."""
    where, params = ("where outcome = ?", [outcome]) if outcome else ("", [])
    with converted("reading the decision log", snapshot=True):
        (total,) = cur.execute(
            f"select count(*) from resolution_decisions {where}", params
        ).fetchall()[0]
        rows = cur.execute(
            f"""
            select *
            from resolution_decisions
            {where}
            order by decided_at desc, decision_id desc
            limit ? offset ?
            """,
            [*params, limit, offset],
        ).pl()
    return rows, int(total)


def alias_target(cur: duckdb.DuckDBPyConnection, coin_id: str) -> str | None:
    """The coin ``coin_id`` was merged into, if it is an alias and not a coin (again)."""
    try:
        with converted("reading aliases", snapshot=True):
            rows = cur.execute(
                """
                select a.coin_id
                from coin_aliases as a
                anti join coins as c on c.coin_id = a.alias_coin_id
                where a.alias_coin_id = ?
                """,
                [coin_id],
            ).fetchall()
    except SnapshotOutdatedError:
        # A snapshot published before version 2 of the schema (the API was upgraded first)
        # has no aliases, and coins must still answer until the next run publishes one.
        return None
    return str(rows[0][0]) if rows else None


def operator_links(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    """(source, source_asset_id, coin_id, note) of every link an operator's decision set, the
    note naming the decision: what ``kasparro resolution export-overrides`` writes."""
    with converted("reading the links operators set", snapshot=True):
        rows = cur.execute(
            """
            select source, source_asset_id, coin_id, evidence
            from coin_source_ids
            where method = ?
            order by source, source_asset_id
            """,
            [OPERATOR],
        ).fetchall()
    links = []
    for source, asset, coin_id, evidence in rows:
        facts = json.loads(evidence)
        note = (
            f"operator {facts.get('action', 'decision')} {facts.get('decision_id', '?')} "
            f"by {facts.get('decided_by', '?')}"
        )
        if facts.get("note"):
            note += f": {facts['note']}"
        links.append((str(source), str(asset), str(coin_id), note))
    return links
