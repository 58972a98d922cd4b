"""Applying pending decisions, each in its own transaction (see :mod:`store.resolution`)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb

from store.connection import transaction
from store.errors import from_duckdb
from store.merge import refresh_coins
from store.resolution.checks import check
from store.resolution.links import Link, alias_of, coin_row, link_of, links_of
from store.resolution.model import (
    CONTRADICTED,
    DECISION_FILE,
    OPERATOR,
    RESOLVER,
    Decision,
    Outcome,
)
from store.schema import suffixed_coin_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    decision_id: str
    action: str
    outcome: Literal["applied", "refused"]
    detail: dict[str, Any]


def _pending(con: duckdb.DuckDBPyConnection) -> list[Decision]:
    rows = con.execute(
        f"""
        select {", ".join(DECISION_FILE)}
        from resolution_decisions
        where outcome = 'pending'
        order by decided_at, decision_id
        """
    ).pl()
    return [Decision(**row) for row in rows.to_dicts()]


def apply_pending(
    con: duckdb.DuckDBPyConnection, run_id: str, source_order: Sequence[str]
) -> list[Applied]:
    """Apply every pending decision in the order taken, each in its own transaction.

    ``source_order`` names coins (see :func:`store.merge.refresh_coins`). A decision the warehouse
    no longer allows is ``refused``; one that fails (any error) is rolled back whole and refused
    with the error (a DuckDB one converted by :func:`store.errors.from_duckdb`), so one bad
    decision never blocks the runs after it. Review rows a decision answered without naming them
    become ``superseded``."""
    done: list[Applied] = []
    for decision in _pending(con):
        try:
            with transaction(con):
                result = _apply_one(con, decision, run_id, source_order)
        except Exception as exc:  # one bad decision must never block the runs after it
            logger.exception("decision %s could not be applied", decision.decision_id)
            error = from_duckdb(exc, "applying it") if isinstance(exc, duckdb.Error) else exc
            detail = {"refused": "error", "reason": f"{type(error).__name__}: {error}"}
            with transaction(con):
                _record(con, decision, "refused", detail, run_id)
            result = Applied(decision.decision_id, decision.action, "refused", detail)
            logger.error(
                "decision %s (%s) failed and was rolled back: %s",
                decision.decision_id, decision.action, detail["reason"],
            )  # fmt: skip
        else:
            logger.info(
                "decision %s (%s by %s): %s%s", decision.decision_id, decision.action,
                decision.decided_by, result.outcome,
                f": {result.detail['reason']}" if result.outcome == "refused" else "",
            )  # fmt: skip
        done.append(result)
    return done


def _apply_one(
    con: duckdb.DuckDBPyConnection, decision: Decision, run_id: str, source_order: Sequence[str]
) -> Applied:
    refusal = check(con, decision)
    if refusal is not None:
        detail = refusal.detail()
        _record(con, decision, "refused", detail, run_id)
        return Applied(decision.decision_id, decision.action, "refused", detail)
    apply = _APPLY[decision.action]
    detail, touched = apply(_Context(con, decision, run_id))
    detail["superseded_review_rows"] = _supersede(con, decision)
    refresh_coins(con, sorted(touched), list(source_order))
    _record(con, decision, "applied", detail, run_id)
    return Applied(decision.decision_id, decision.action, "applied", detail)


def _supersede(con: duckdb.DuckDBPyConnection, d: Decision) -> int:
    """Settle review rows a decision answered without naming them: the asset is in the candidate
    coin now (a merge put them together), or an accept chose another coin for it. A link a market
    contradicts (:data:`CONTRADICTED`) is in its candidate coin by construction: only a decision
    on that link answers it."""
    rows = con.execute(
        """
        update resolution_review as r
        set status = 'superseded', decided_by = ?, decision_id = ?
        from coin_source_ids as m
        where r.status = 'pending'
            and r.method <> ?
            and m.source = r.source and m.source_asset_id = r.source_asset_id
            and (
                m.coin_id = r.candidate_coin_id
                or (? = 'accept' and r.source = ? and r.source_asset_id = ?)
            )
        returning 1
        """,
        [d.decided_by, d.decision_id, CONTRADICTED, d.action, d.source, d.source_asset_id],
    ).fetchall()
    return len(rows)


def _applied_at(decision: Decision) -> datetime:
    """When a decision takes effect. The resolver's take effect as they are taken, in the load
    that found the evidence: a rebuild replaying that load writes the same moment."""
    return decision.decided_at if decision.decided_by == RESOLVER else datetime.now(UTC)


def _record(
    con: duckdb.DuckDBPyConnection,
    decision: Decision,
    outcome: Outcome,
    detail: dict[str, Any],
    run_id: str,
) -> None:
    con.execute(
        """
        update resolution_decisions
        set outcome = ?, detail = ?, applied_at = ?, applied_by_run = ?
        where decision_id = ?
        """,
        [outcome, _json(detail), _applied_at(decision), run_id, decision.decision_id],
    )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class _Context:
    con: duckdb.DuckDBPyConnection
    decision: Decision
    run_id: str

    def evidence(self, **facts: object) -> str:
        d = self.decision
        return _json(
            {
                "decision_id": d.decision_id,
                "action": d.action,
                "decided_by": d.decided_by,
                "decided_at": d.decided_at.isoformat(),
                "note": d.note,
                **facts,
            }
        )

    def move(
        self,
        source: str,
        asset: str,
        coin_id: str,
        *,
        method: str,
        confidence: float,
        evidence: str,
        decided_by_run: str,
    ) -> None:
        """Move one link, and everything that names its coin, to ``coin_id``."""
        con, key = self.con, [source, asset]
        con.execute(
            """
            update coin_source_ids
            set coin_id = ?, method = ?, confidence = ?, evidence = ?, decided_by_run = ?
            where source = ? and source_asset_id = ?
            """,
            [coin_id, method, confidence, evidence, decided_by_run, *key],
        )
        con.execute(
            "update quotes set coin_id = ? where source = ? and source_asset_id = ?",
            [coin_id, *key],
        )
        con.execute(
            """
            update resolution_review set coin_id = ?
            where source = ? and source_asset_id = ? and status = 'pending'
            """,
            [coin_id, *key],
        )
        # The ledger's pointers into quotes (what each run saw), which run comparisons follow.
        con.execute(
            "update run_seen set coin_id = ? where source = ? and source_asset_id = ?",
            [coin_id, *key],
        )

    def move_as_operator(self, link: Link, coin_id: str, **facts: object) -> None:
        """Move a link as the decision's: an operator's link is confident; one the resolver's
        merge carries along keeps the method and evidence it was linked on."""
        if self.decision.decided_by == RESOLVER:
            self.move(
                link.source,
                link.source_asset_id,
                coin_id,
                method=link.method,
                confidence=link.confidence,
                evidence=link.evidence,
                decided_by_run=link.decided_by_run,
            )
            return
        self.move(
            link.source,
            link.source_asset_id,
            coin_id,
            method=OPERATOR,
            confidence=1.0,
            evidence=self.evidence(**facts),
            decided_by_run=self.run_id,
        )

    def review(self, source: str, asset: str, candidate: str, status: str) -> int:
        d = self.decision
        rows = self.con.execute(
            """
            update resolution_review
            set status = ?, decided_by = ?, decision_id = ?
            where source = ? and source_asset_id = ? and candidate_coin_id = ?
                and status = 'pending'
            returning 1
            """,
            [status, d.decided_by, d.decision_id, source, asset, candidate],
        ).fetchall()
        return len(rows)

    def make_alias(self, alias: str, survivor: str, moved: list[Link]) -> dict[str, Any]:
        """Turn coin ``alias`` (its links already moved) into an alias of ``survivor``."""
        con, d = self.con, self.decision
        symbol, name, first_seen_at, created_by_run = coin_row(con, alias) or ()
        con.execute(
            """
            insert into coin_aliases values (
                ?, ?, ?, ?, ?, ?, ?::struct(source varchar, source_asset_id varchar)[], ?, ?
            )
            """,
            [
                alias, survivor, symbol, name, first_seen_at, created_by_run,
                [{"source": m.source, "source_asset_id": m.source_asset_id} for m in moved],
                d.decision_id, _applied_at(d),
            ],
        )  # fmt: skip
        repointed = [
            a
            for (a,) in con.execute(
                """
                update coin_aliases set coin_id = ?
                where coin_id = ? and alias_coin_id <> ?
                returning alias_coin_id
                """,
                [survivor, alias, alias],
            ).fetchall()
        ]
        con.execute("delete from coins where coin_id = ?", [alias])
        return {
            "alias": alias,
            "coin_id": survivor,
            # What a split restores: the links as they were, and the aliases re-pointed.
            "moved": [_restorable(m) for m in moved],
            "repointed_aliases": sorted(repointed),
        }


def _restorable(link: Link) -> dict[str, Any]:
    keep = ("source", "source_asset_id", "method", "confidence", "evidence", "decided_by_run")
    return {k: v for k, v in asdict(link).items() if k in keep}


def _apply_accept(ctx: _Context) -> tuple[dict[str, Any], set[str]]:
    d = ctx.decision
    assert d.source is not None
    assert d.source_asset_id is not None
    link = link_of(ctx.con, d.source, d.source_asset_id)
    assert link is not None
    ctx.move_as_operator(link, d.coin_id, previous_coin_id=link.coin_id)
    detail: dict[str, Any] = {
        "previous_coin_id": link.coin_id,
        "review_rows": ctx.review(link.source, link.source_asset_id, d.coin_id, "accepted"),
    }
    touched = {d.coin_id}
    if link.coin_id != d.coin_id:
        if links_of(ctx.con, link.coin_id):
            touched.add(link.coin_id)
        else:
            detail |= ctx.make_alias(link.coin_id, d.coin_id, [link])
    return detail, touched


def _apply_reject(ctx: _Context) -> tuple[dict[str, Any], set[str]]:
    d, con = ctx.decision, ctx.con
    assert d.source is not None
    assert d.source_asset_id is not None
    link = link_of(con, d.source, d.source_asset_id)
    assert link is not None
    detail: dict[str, Any] = {
        "review_rows": ctx.review(link.source, link.source_asset_id, d.coin_id, "rejected"),
        "moved_to": None,
    }
    if link.coin_id != d.coin_id:
        return detail, set()
    target = suffixed_coin_id(d.coin_id, link.source, link.source_asset_id)
    if coin_row(con, target) is None:
        con.execute(
            "insert into coins values (?, ?, ?, ?, ?)",
            [target, link.symbol, link.name, link.first_seen_at, ctx.run_id],
        )
    ctx.move_as_operator(link, target, rejected_coin_id=d.coin_id)
    return detail | {"moved_to": target}, {d.coin_id, target}


def _apply_merge(ctx: _Context) -> tuple[dict[str, Any], set[str]]:
    d = ctx.decision
    assert d.other_coin_id is not None
    moved = links_of(ctx.con, d.other_coin_id)
    for link in moved:
        ctx.move_as_operator(link, d.coin_id, merged_from=d.other_coin_id)
    return ctx.make_alias(d.other_coin_id, d.coin_id, moved), {d.coin_id}


def _apply_split(ctx: _Context) -> tuple[dict[str, Any], set[str]]:
    con, d = ctx.con, ctx.decision
    alias = alias_of(con, d.coin_id)
    assert alias is not None
    made = con.execute(
        "select detail from resolution_decisions where decision_id = ?", [alias.decision_id]
    ).fetchall()
    merged: dict[str, Any] = json.loads(made[0][0]) if made else {}
    before = {(m["source"], m["source_asset_id"]): m for m in merged.get("moved", [])}
    con.execute(
        "insert into coins values (?, ?, ?, ?, ?)",
        [alias.alias_coin_id, alias.symbol, alias.name, alias.first_seen_at, alias.created_by_run],
    )
    for source, asset in alias.moved:
        link = link_of(con, source, asset)
        assert link is not None
        was = before.get((source, asset))
        if was is None:  # not recorded by the merge: the link keeps what it says now
            ctx.move_as_operator(link, alias.alias_coin_id, split_from=alias.coin_id)
            continue
        ctx.move(
            source,
            asset,
            alias.alias_coin_id,
            method=was["method"],
            confidence=was["confidence"],
            evidence=was["evidence"],
            decided_by_run=was["decided_by_run"],
        )
    repointed = merged.get("repointed_aliases", [])
    if repointed:
        con.execute(
            """
            update coin_aliases set coin_id = ?
            where coin_id = ? and list_contains(?, alias_coin_id)
            """,
            [alias.alias_coin_id, alias.coin_id, repointed],
        )
    con.execute("delete from coin_aliases where alias_coin_id = ?", [alias.alias_coin_id])
    # Review rows an operator's merge settled are open questions again. Splitting the resolver's
    # own merge answers its question: those rows are rejected, or the next run would merge again.
    by_resolver = con.execute(
        "select decided_by = ? from resolution_decisions where decision_id = ?",
        [RESOLVER, alias.decision_id],
    ).fetchall()
    reopened = "rejected" if by_resolver and by_resolver[0][0] else "pending"
    con.execute(
        """
        update resolution_review as r
        set status = ?, decided_by = ?, decision_id = ?, coin_id = m.coin_id
        from coin_source_ids as m
        where r.decision_id = ? and r.status = 'superseded'
            and m.source = r.source and m.source_asset_id = r.source_asset_id
        """,
        [
            reopened,
            d.decided_by if reopened == "rejected" else None,
            d.decision_id if reopened == "rejected" else None,
            alias.decision_id,
        ],
    )
    detail = {
        "restored": alias.alias_coin_id,
        "from": alias.coin_id,
        "merged_by": alias.decision_id,
        "moved": [{"source": s, "source_asset_id": a} for s, a in alias.moved],
        "repointed_aliases": repointed,
    }
    return detail, {alias.coin_id, alias.alias_coin_id}


_APPLY: dict[str, Callable[[_Context], tuple[dict[str, Any], set[str]]]] = {
    "accept": _apply_accept,
    "reject": _apply_reject,
    "merge": _apply_merge,
    "split": _apply_split,
}


def applied_since(con: duckdb.DuckDBPyConnection, moment: datetime | None) -> bool:
    """Whether any operator decision was applied after ``moment`` (None: since ever). The
    resolver's merges are left out: they join coins inside a load, and a delivery loaded again
    would keep every asset where it is."""
    rows = con.execute(
        "select count(*) from resolution_decisions where outcome = 'applied' "
        "and decided_by <> ? and applied_at > coalesce(?, '-infinity'::timestamptz)",
        [RESOLVER, moment],
    ).fetchall()
    return bool(rows[0][0])


@dataclass(frozen=True)
class ResolverMerge:
    """A merge resolution makes itself: an asset waiting in review (``source``,
    ``source_asset_id``) whose evidence now clears the bar; its coin ``other_coin_id`` merges into
    ``coin_id`` and its link takes ``method``, ``confidence`` and ``evidence``."""

    source: str
    source_asset_id: str
    coin_id: str
    other_coin_id: str
    method: str
    confidence: float
    evidence: str


def apply_resolver_merges(
    con: duckdb.DuckDBPyConnection,
    merges: Sequence[ResolverMerge],
    run_id: str,
    source_order: Sequence[str],
) -> list[Applied]:
    """Record and apply each merge as a ``merge`` decision by :data:`RESOLVER`, inside the
    caller's transaction (the load that found the evidence), so the decision log explains it and
    an operator can split it like any merge. The asset's review row becomes ``superseded``."""
    done = []
    # Named and dated by the run that found the evidence, not by the moment: a rebuild replaying
    # the run takes the same decision under the same id (an operator's split may name it).
    (started,) = con.execute(
        "select started_at from runs where run_id = ?", [run_id]
    ).fetchone() or (None,)
    for merge in merges:
        asset = f"{merge.source}/{merge.source_asset_id}"
        key = f"{run_id}/{asset}/{merge.coin_id}/{merge.other_coin_id}"
        decision = Decision(
            decision_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"kasparro-resolver:{key}")),
            action="merge",
            decided_at=started or datetime.now(UTC),
            coin_id=merge.coin_id,
            other_coin_id=merge.other_coin_id,
            decided_by=RESOLVER,
            note=f"{asset}: the evidence now clears the bar",
        )
        con.execute(
            f"insert into resolution_decisions ({', '.join(DECISION_FILE)}) "
            f"values ({', '.join('?' * len(DECISION_FILE))})",
            [getattr(decision, column) for column in DECISION_FILE],
        )
        applied = _apply_one(con, decision, run_id, source_order)
        if applied.outcome == "applied":
            con.execute(
                """
                update coin_source_ids
                set method = ?, confidence = ?, evidence = ?, decided_by_run = ?
                where source = ? and source_asset_id = ?
                """,
                [
                    merge.method, merge.confidence, merge.evidence, run_id,
                    merge.source, merge.source_asset_id,
                ],
            )  # fmt: skip
        done.append(applied)
    return done
