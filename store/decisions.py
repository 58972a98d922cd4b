"""Operator decisions on entity resolution: the inbox, their rules, and applying them.

The API serves a read-only snapshot and the ingest flow is the warehouse's only writer, so a
decision travels in two steps. ``POST /api/v1/resolution/decisions`` checks it against the
snapshot (:func:`check`) and drops it as one JSON file into ``<data dir>/decisions/inbox``
(:func:`write_inbox`: temp file, fsync, rename). At the start of each run the flow imports new
inbox files into ``resolution_decisions`` (:func:`import_inbox`, idempotent by ``decision_id``;
an unreadable file is moved to ``decisions/rejected`` beside a note saying why, an imported one
to ``decisions/imported``) and applies the pending ones in the order they were taken
(:func:`apply_pending`), each in one transaction, checked again against the warehouse (it may
have changed since the POST): outcome ``applied``, or ``refused`` with a JSON detail saying why.

What each action does (a coin holds at most one asset per source, before and after):

* ``accept`` (asset A, coin C): A's mapping moves to C (method ``operator``, confidence 1, the
  evidence names the decision) with its quotes; a pending review row (A, C) becomes
  ``accepted``. A coin left without an asset becomes an alias of C. Refused when C holds another
  asset of A's source. Accepting the link A already has confirms it as ``operator``.
* ``reject`` (A, C): a review row (A, C) becomes ``rejected``, and resolution never links them
  again (it reads the decision). If A is in C, A moves out to a coin of its own,
  ``<C>-<first 8 hex of sha256("source:asset")>``. Refused when A is C's only asset.
* ``merge`` (survivor S, other O): O's mappings (as ``operator`` links) and quotes move to S; O's
  coins row becomes a ``coin_aliases`` row (O -> S, what moved), aliases of O point at S.
  Refused when both coins hold an asset of the same source.
* ``split`` (alias O): the reverse: O's coins row comes back, the links that moved (with the
  method, confidence and evidence they had) and their quotes move back, aliases re-pointed by
  the merge point at O again. Refused when one of the links has moved elsewhere since.

Quotes keep their own symbol and name (the source asset's); only ``coin_id`` moves, in ``quotes``,
the run ledger's pointers (``run_seen``) and pending review rows. Touched coins are
renamed by :func:`store.merge.refresh_coins` (the first source in source order names a coin).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
import msgspec
import polars as pl

from store.connection import transaction
from store.merge import refresh_coins
from store.schema import suffixed_coin_id

logger = logging.getLogger(__name__)

Action = Literal["accept", "reject", "merge", "split"]
Outcome = Literal["pending", "applied", "refused"]
OPERATOR = "operator"
"""The method of a link an operator's decision set."""

_UUID4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]


class Decision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One decision as the inbox file and the ``resolution_decisions`` row hold it."""

    decision_id: Annotated[str, msgspec.Meta(pattern=_UUID4)]
    action: Action
    coin_id: Id
    decided_by: Id
    decided_at: Annotated[datetime, msgspec.Meta(tz=True)]
    source: Id | None = None
    source_asset_id: Id | None = None
    other_coin_id: Id | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""

    def __post_init__(self) -> None:
        link = self.action in ("accept", "reject")
        wanted = {
            "source": link,
            "source_asset_id": link,
            "other_coin_id": self.action == "merge",
        }
        for name, needed in wanted.items():
            given = getattr(self, name) is not None
            if needed and not given:
                raise ValueError(f"{self.action} needs {name}")
            if given and not needed:
                raise ValueError(f"{self.action} takes no {name}")

    @property
    def file_name(self) -> str:
        """``<decided_at>-<decision_id>.json``: inbox files sort in the order they were taken."""
        return f"{self.decided_at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{self.decision_id}.json"


def new_decision(action: Action, **fields: Any) -> Decision:
    """A decision taken now, with a fresh id."""
    return Decision(
        decision_id=str(uuid.uuid4()), action=action, decided_at=datetime.now(UTC), **fields
    )


# --- the inbox -----------------------------------------------------------------------------------


def write_inbox(inbox: Path, decision: Decision) -> Path:
    """Write ``decision`` into ``inbox`` atomically: a reader sees the whole file or none."""
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / decision.file_name
    tmp = inbox / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with tmp.open("xb") as handle:
            handle.write(msgspec.json.encode(decision))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(inbox, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


def import_inbox(con: duckdb.DuckDBPyConnection, inbox: Path) -> int:
    """Insert the inbox's decisions not known yet into ``resolution_decisions``; return how many.

    Imported files move to ``imported/`` beside the inbox (after the commit: a crash in between
    leaves them to be imported again, which adds nothing). A file that is not a valid decision
    moves to ``rejected/`` with ``<file>.reason.txt`` beside it, and is logged."""
    if not inbox.is_dir():
        return 0
    read: list[tuple[Path, Decision]] = []
    for path in sorted(inbox.glob("*.json")):
        try:
            read.append((path, msgspec.json.decode(path.read_bytes(), type=Decision)))
        except msgspec.DecodeError as exc:  # malformed JSON, or not a valid decision
            _set_aside(path, inbox.parent / "rejected", str(exc))
    if not read:
        return 0
    rows = pl.DataFrame(
        [msgspec.to_builtins(d) | {"decided_at": d.decided_at} for _, d in read],
        schema=_DECISION_FILE,
    ).unique("decision_id", keep="first", maintain_order=True)
    con.register("inbox_decisions", rows)
    try:
        with transaction(con):
            (new,) = con.execute(
                """
                select count(*) from inbox_decisions as i
                anti join resolution_decisions as d using (decision_id)
                """
            ).fetchall()[0]
            columns = ", ".join(_DECISION_FILE)
            con.execute(
                f"""
                insert into resolution_decisions ({columns})
                select {columns} from inbox_decisions as i
                anti join resolution_decisions as d using (decision_id)
                """
            )
    finally:
        con.unregister("inbox_decisions")
    imported = inbox.parent / "imported"
    imported.mkdir(parents=True, exist_ok=True)
    for path, _ in read:
        os.replace(path, imported / path.name)
    return int(new)


_DECISION_FILE = pl.Schema(
    {
        "decision_id": pl.String(),
        "action": pl.String(),
        "source": pl.String(),
        "source_asset_id": pl.String(),
        "coin_id": pl.String(),
        "other_coin_id": pl.String(),
        "note": pl.String(),
        "decided_by": pl.String(),
        "decided_at": pl.Datetime("us", "UTC"),
    }
)


def _set_aside(path: Path, rejected: Path, reason: str) -> None:
    rejected.mkdir(parents=True, exist_ok=True)
    os.replace(path, rejected / path.name)
    (rejected / f"{path.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
    logger.error(
        "decision file %s is not a valid decision (%s): moved to %s; fix it and put it back "
        "into the inbox, or POST the decision again", path.name, reason, rejected,
    )  # fmt: skip


# --- what the warehouse (or a snapshot) says -----------------------------------------------------


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


def _link(con: duckdb.DuckDBPyConnection, source: str, asset: str) -> Link | None:
    rows = con.execute(
        f"select {_LINK_COLUMNS} from coin_source_ids where source = ? and source_asset_id = ?",
        [source, asset],
    ).fetchall()
    return Link(*rows[0]) if rows else None


def _links_of(con: duckdb.DuckDBPyConnection, coin_id: str) -> list[Link]:
    rows = con.execute(
        f"""
        select {_LINK_COLUMNS} from coin_source_ids
        where coin_id = ?
        order by source, source_asset_id
        """,
        [coin_id],
    ).fetchall()
    return [Link(*row) for row in rows]


def _coin(con: duckdb.DuckDBPyConnection, coin_id: str) -> tuple[Any, ...] | None:
    rows = con.execute(
        "select symbol, name, first_seen_at, created_by_run from coins where coin_id = ?",
        [coin_id],
    ).fetchall()
    return rows[0] if rows else None


def _alias(con: duckdb.DuckDBPyConnection, coin_id: str) -> Alias | None:
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


# --- checking a decision -------------------------------------------------------------------------


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
    if _coin(con, coin_id) is not None:
        return None
    alias = _alias(con, coin_id)
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
    link = _link(con, d.source, d.source_asset_id)
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
    if len(_links_of(con, d.coin_id)) == 1:
        return Refusal(
            "conflict",
            f"{link.source} asset {link.source_asset_id!r} is the only asset of coin "
            f"{d.coin_id!r}: there is nothing to separate it from",
            {"coin_id": d.coin_id},
        )
    target = suffixed_coin_id(d.coin_id, link.source, link.source_asset_id)
    if _alias(con, target) is not None or _holder(con, target, link.source) is not None:
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
    alias = _alias(con, d.coin_id)
    if alias is None:
        if _coin(con, d.coin_id) is not None:
            return Refusal(
                "conflict",
                f"coin_id {d.coin_id!r} is a coin, not an alias: only a coin merged into another "
                "can be split off",
                {"field": "coin_id", "coin_id": d.coin_id},
            )
        return Refusal("not_found", f"coin_id: no alias {d.coin_id!r}", {"field": "coin_id"})
    if _coin(con, d.coin_id) is not None:
        return Refusal(
            "conflict",
            f"a coin {d.coin_id!r} exists again beside the alias; merge it into "
            f"{alias.coin_id!r} instead",
            {"coin_id": d.coin_id},
        )
    elsewhere = {}
    for source, asset in alias.moved:
        link = _link(con, source, asset)
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


# --- applying decisions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    decision_id: str
    action: str
    outcome: Literal["applied", "refused"]
    detail: dict[str, Any]


def _pending(con: duckdb.DuckDBPyConnection) -> list[Decision]:
    rows = con.execute(
        f"""
        select {", ".join(_DECISION_FILE)}
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
    with the error, so one bad decision never blocks the runs after it. Review rows a decision
    answered without naming them become ``superseded``."""
    done: list[Applied] = []
    for decision in _pending(con):
        try:
            with transaction(con):
                result = _apply_one(con, decision, run_id, source_order)
        except Exception as exc:  # one bad decision must never block the runs after it
            logger.exception("decision %s could not be applied", decision.decision_id)
            detail = {"refused": "error", "reason": f"{type(exc).__name__}: {exc}"}
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
    coin now (a merge put them together), or an accept chose another coin for it."""
    rows = con.execute(
        """
        update resolution_review as r
        set status = 'superseded', decided_by = ?, decision_id = ?
        from coin_source_ids as m
        where r.status = 'pending'
            and m.source = r.source and m.source_asset_id = r.source_asset_id
            and (
                m.coin_id = r.candidate_coin_id
                or (? = 'accept' and r.source = ? and r.source_asset_id = ?)
            )
        returning 1
        """,
        [d.decided_by, d.decision_id, d.action, d.source, d.source_asset_id],
    ).fetchall()
    return len(rows)


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
        [outcome, _json(detail), datetime.now(UTC), run_id, decision.decision_id],
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
        symbol, name, first_seen_at, created_by_run = _coin(con, alias) or ()
        con.execute(
            """
            insert into coin_aliases values (
                ?, ?, ?, ?, ?, ?, ?::struct(source varchar, source_asset_id varchar)[], ?, ?
            )
            """,
            [
                alias, survivor, symbol, name, first_seen_at, created_by_run,
                [{"source": m.source, "source_asset_id": m.source_asset_id} for m in moved],
                d.decision_id, datetime.now(UTC),
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
    link = _link(ctx.con, d.source, d.source_asset_id)
    assert link is not None
    ctx.move_as_operator(link, d.coin_id, previous_coin_id=link.coin_id)
    detail: dict[str, Any] = {
        "previous_coin_id": link.coin_id,
        "review_rows": ctx.review(link.source, link.source_asset_id, d.coin_id, "accepted"),
    }
    touched = {d.coin_id}
    if link.coin_id != d.coin_id:
        if _links_of(ctx.con, link.coin_id):
            touched.add(link.coin_id)
        else:
            detail |= ctx.make_alias(link.coin_id, d.coin_id, [link])
    return detail, touched


def _apply_reject(ctx: _Context) -> tuple[dict[str, Any], set[str]]:
    d, con = ctx.decision, ctx.con
    assert d.source is not None
    assert d.source_asset_id is not None
    link = _link(con, d.source, d.source_asset_id)
    assert link is not None
    detail: dict[str, Any] = {
        "review_rows": ctx.review(link.source, link.source_asset_id, d.coin_id, "rejected"),
        "moved_to": None,
    }
    if link.coin_id != d.coin_id:
        return detail, set()
    target = suffixed_coin_id(d.coin_id, link.source, link.source_asset_id)
    if _coin(con, target) is None:
        con.execute(
            "insert into coins values (?, ?, ?, ?, ?)",
            [target, link.symbol, link.name, link.first_seen_at, ctx.run_id],
        )
    ctx.move_as_operator(link, target, rejected_coin_id=d.coin_id)
    return detail | {"moved_to": target}, {d.coin_id, target}


def _apply_merge(ctx: _Context) -> tuple[dict[str, Any], set[str]]:
    d = ctx.decision
    assert d.other_coin_id is not None
    moved = _links_of(ctx.con, d.other_coin_id)
    for link in moved:
        ctx.move_as_operator(link, d.coin_id, merged_from=d.other_coin_id)
    return ctx.make_alias(d.other_coin_id, d.coin_id, moved), {d.coin_id}


def _apply_split(ctx: _Context) -> tuple[dict[str, Any], set[str]]:
    con, d = ctx.con, ctx.decision
    alias = _alias(con, d.coin_id)
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
        link = _link(con, source, asset)
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
    # Review rows the merge settled are open questions again.
    con.execute(
        """
        update resolution_review as r
        set status = 'pending', decided_by = null, decision_id = null, coin_id = m.coin_id
        from coin_source_ids as m
        where r.decision_id = ? and r.status = 'superseded'
            and m.source = r.source and m.source_asset_id = r.source_asset_id
        """,
        [alias.decision_id],
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


def reset_applied(con: duckdb.DuckDBPyConnection) -> int:
    """Mark every applied decision pending again (a rebuild re-applies them); refused ones stay
    refused. Returns how many."""
    rows = con.execute(
        """
        update resolution_decisions
        set outcome = 'pending', detail = '{}', applied_at = null, applied_by_run = null
        where outcome = 'applied'
        returning 1
        """
    ).fetchall()
    return len(rows)


def applied_since(con: duckdb.DuckDBPyConnection, moment: datetime | None) -> bool:
    """Whether any decision was applied after ``moment`` (None: since ever)."""
    rows = con.execute(
        "select count(*) from resolution_decisions where outcome = 'applied' "
        "and applied_at > coalesce(?, '-infinity'::timestamptz)",
        [moment],
    ).fetchall()
    return bool(rows[0][0])


# --- reads for the API and the command line ------------------------------------------------------


def review_queue(
    cur: duckdb.DuckDBPyConnection, *, limit: int, offset: int
) -> tuple[pl.DataFrame, int]:
    """Pending candidates, most confident first: source, source_asset_id, coin_id,
    candidate_coin_id, method, confidence, evidence (JSON text), proposed_by_run, proposed_at;
    and how many are pending."""
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
    (total,) = cur.execute(f"select count(*) from resolution_decisions {where}", params).fetchall()[
        0
    ]
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
        rows = cur.execute(
            """
            select a.coin_id
            from coin_aliases as a
            anti join coins as c on c.coin_id = a.alias_coin_id
            where a.alias_coin_id = ?
            """,
            [coin_id],
        ).fetchall()
    except duckdb.CatalogException:
        # A snapshot published before version 2 of the schema (the API was upgraded first)
        # has no aliases, and coins must still answer until the next run publishes one.
        return None
    return str(rows[0][0]) if rows else None


def operator_links(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    """(source, source_asset_id, coin_id, note) of every link an operator's decision set, the
    note naming the decision: what ``kasparro resolution export-overrides`` writes."""
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
