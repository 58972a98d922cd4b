"""What the warehouse (or a snapshot) says about a link, a coin or an alias: the small lookups
the checks and apply share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb


@dataclass(frozen=True)
class Link:
    """A row of ``coin_source_ids``, the columns a decision reads or restores."""

    source: str
    source_asset_id: str
    coin_id: str
    symbol: str
    name: str
    method: str
    confidence: float
    evidence: str
    first_seen_at: datetime
    decided_by_run: str


_LINK_COLUMNS = ", ".join(Link.__dataclass_fields__)


@dataclass(frozen=True)
class Alias:
    alias_coin_id: str
    coin_id: str
    symbol: str
    name: str
    first_seen_at: datetime
    created_by_run: str
    moved: list[tuple[str, str]]
    decision_id: str


def link_of(con: duckdb.DuckDBPyConnection, source: str, asset: str) -> Link | None:
    rows = con.execute(
        f"select {_LINK_COLUMNS} from coin_source_ids where source = ? and source_asset_id = ?",
        [source, asset],
    ).fetchall()
    return Link(*rows[0]) if rows else None


def links_of(con: duckdb.DuckDBPyConnection, coin_id: str) -> list[Link]:
    rows = con.execute(
        f"""
        select {_LINK_COLUMNS} from coin_source_ids
        where coin_id = ?
        order by source, source_asset_id
        """,
        [coin_id],
    ).fetchall()
    return [Link(*row) for row in rows]


def coin_row(con: duckdb.DuckDBPyConnection, coin_id: str) -> tuple[Any, ...] | None:
    rows = con.execute(
        "select symbol, name, first_seen_at, created_by_run from coins where coin_id = ?",
        [coin_id],
    ).fetchall()
    return rows[0] if rows else None


def alias_of(con: duckdb.DuckDBPyConnection, coin_id: str) -> Alias | None:
    rows = con.execute(
        """
        select
            alias_coin_id, coin_id, symbol, name, first_seen_at, created_by_run,
            list_transform(moved, lambda m: [m.source, m.source_asset_id]), decision_id
        from coin_aliases
        where alias_coin_id = ?
        """,
        [coin_id],
    ).fetchall()
    if not rows:
        return None
    row = list(rows[0])
    row[6] = [(s, a) for s, a in row[6]]
    return Alias(*row)
