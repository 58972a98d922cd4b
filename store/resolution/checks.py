"""Checking a decision against the warehouse or a snapshot: why it cannot apply, if it cannot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

from store.resolution.links import Link, alias_of, coin_row, link_of, links_of
from store.resolution.model import Decision
from store.schema import suffixed_coin_id


@dataclass(frozen=True)
class Refusal:
    """Why a decision cannot apply. ``kind``: the asset or coin does not exist (``not_found``),
    the state forbids it (``conflict``), or it contradicts itself (``invalid``)."""

    kind: Literal["not_found", "conflict", "invalid"]
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        return {"refused": self.kind, "reason": self.reason, **self.facts}


def _require_coin(con: duckdb.DuckDBPyConnection, coin_id: str, field: str) -> Refusal | None:
    if coin_row(con, coin_id) is not None:
        return None
    alias = alias_of(con, coin_id)
    if alias is not None:
        return Refusal(
            "conflict",
            f"{field} {coin_id!r} is no longer a coin: it was merged into {alias.coin_id!r} "
            f"(decision {alias.decision_id}); decide against {alias.coin_id!r}, or split "
            f"{coin_id!r} first",
            {"field": field, "coin_id": coin_id, "alias_of": alias.coin_id},
        )
    return Refusal(
        "not_found", f"{field}: no coin {coin_id!r}", {"field": field, "coin_id": coin_id}
    )


def _require_link(con: duckdb.DuckDBPyConnection, d: Decision) -> Link | Refusal:
    assert d.source is not None
    assert d.source_asset_id is not None
    link = link_of(con, d.source, d.source_asset_id)
    if link is None:
        return Refusal(
            "not_found",
            f"source_asset_id: no {d.source} asset {d.source_asset_id!r} has been resolved "
            "(check source and source_asset_id)",
            {"field": "source_asset_id", "source": d.source, "source_asset_id": d.source_asset_id},
        )
    return link


def _holder(con: duckdb.DuckDBPyConnection, coin_id: str, source: str) -> str | None:
    """The asset of ``source`` that ``coin_id`` holds, if any."""
    rows = con.execute(
        "select source_asset_id from coin_source_ids where coin_id = ? and source = ?",
        [coin_id, source],
    ).fetchall()
    return str(rows[0][0]) if rows else None


def _check_accept(con: duckdb.DuckDBPyConnection, d: Decision) -> Refusal | None:
    link = _require_link(con, d)
    if isinstance(link, Refusal):
        return link
    if refusal := _require_coin(con, d.coin_id, "coin_id"):
        return refusal
    holder = _holder(con, d.coin_id, link.source)
    if link.coin_id != d.coin_id and holder is not None:
        return Refusal(
            "conflict",
            f"coin {d.coin_id!r} already holds {link.source} asset {holder!r}, and a coin holds at "
            f"most one asset per source: reject that link first",
            {"coin_id": d.coin_id, "source": link.source, "held": holder},
        )
    return None


def _check_reject(con: duckdb.DuckDBPyConnection, d: Decision) -> Refusal | None:
    link = _require_link(con, d)
    if isinstance(link, Refusal):
        return link
    if refusal := _require_coin(con, d.coin_id, "coin_id"):
        return refusal
    if link.coin_id != d.coin_id:
        return None
    if len(links_of(con, d.coin_id)) == 1:
        return Refusal(
            "conflict",
            f"{link.source} asset {link.source_asset_id!r} is the only asset of coin "
            f"{d.coin_id!r}: there is nothing to separate it from",
            {"coin_id": d.coin_id},
        )
    target = suffixed_coin_id(d.coin_id, link.source, link.source_asset_id)
    if alias_of(con, target) is not None or _holder(con, target, link.source) is not None:
        return Refusal(
            "conflict",
            f"the coin {target!r} the asset would move to is an alias or holds another "
            f"{link.source} asset",
            {"coin_id": d.coin_id, "target": target},
        )
    return None


def _check_merge(con: duckdb.DuckDBPyConnection, d: Decision) -> Refusal | None:
    assert d.other_coin_id is not None
    if d.other_coin_id == d.coin_id:
        return Refusal(
            "invalid",
            "other_coin_id must differ from coin_id: a coin cannot be merged into itself",
            {"field": "other_coin_id"},
        )
    for field_name, coin_id in (("coin_id", d.coin_id), ("other_coin_id", d.other_coin_id)):
        if refusal := _require_coin(con, coin_id, field_name):
            return refusal
    shared = con.execute(
        """
        select s.source, s.source_asset_id, o.source_asset_id
        from coin_source_ids as s
        join coin_source_ids as o using (source)
        where s.coin_id = ? and o.coin_id = ?
        order by s.source
        """,
        [d.coin_id, d.other_coin_id],
    ).fetchall()
    if shared:
        clash = "; ".join(f"{source} {a!r} and {b!r}" for source, a, b in shared)
        return Refusal(
            "conflict",
            f"both coins hold an asset of the same source, and a coin holds at most one asset per "
            f"source: merging would put two {shared[0][0]} assets in one coin ({clash}); "
            "reject one of those links first",
            {"same_source": {source: [a, b] for source, a, b in shared}},
        )
    return None


def _check_split(con: duckdb.DuckDBPyConnection, d: Decision) -> Refusal | None:
    alias = alias_of(con, d.coin_id)
    if alias is None:
        if coin_row(con, d.coin_id) is not None:
            return Refusal(
                "conflict",
                f"coin_id {d.coin_id!r} is a coin, not an alias: only a coin merged into another "
                "can be split off",
                {"field": "coin_id", "coin_id": d.coin_id},
            )
        return Refusal("not_found", f"coin_id: no alias {d.coin_id!r}", {"field": "coin_id"})
    if coin_row(con, d.coin_id) is not None:
        return Refusal(
            "conflict",
            f"a coin {d.coin_id!r} exists again beside the alias; merge it into "
            f"{alias.coin_id!r} instead",
            {"coin_id": d.coin_id},
        )
    elsewhere = {}
    for source, asset in alias.moved:
        link = link_of(con, source, asset)
        if link is None or link.coin_id != alias.coin_id:
            elsewhere[f"{source}/{asset}"] = link.coin_id if link else None
    if elsewhere:
        return Refusal(
            "conflict",
            f"links that moved into {alias.coin_id!r} with {d.coin_id!r} have moved elsewhere "
            f"since: {elsewhere}; a split moves back only what the merge moved",
            {"moved_elsewhere": elsewhere},
        )
    return None


_CHECKS: dict[str, Callable[[duckdb.DuckDBPyConnection, Decision], Refusal | None]] = {
    "accept": _check_accept,
    "reject": _check_reject,
    "merge": _check_merge,
    "split": _check_split,
}


def check(con: duckdb.DuckDBPyConnection, decision: Decision) -> Refusal | None:
    """Why ``decision`` cannot apply to this warehouse or snapshot, or ``None`` if it can."""
    return _CHECKS[decision.action](con, decision)
