"""Reviewing and correcting entity resolution: the review queue, and operators' decisions.

The API serves a read-only snapshot and never opens the warehouse: a decision is checked against
the snapshot and written to the inbox (``<data dir>/decisions/inbox``), and the next ingest run
applies it (see :mod:`store.resolution`).
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Annotated, Any

import duckdb
import msgspec
from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED

from store.resolution import (
    Action,
    Decision,
    Outcome,
    check,
    decision_log,
    new_decision,
    review_queue,
    write_inbox,
)
from web.dependencies import MAX_LIMIT
from web.errors import NotFound
from web.schemas import (
    AcceptLink,
    DecisionPage,
    DecisionReceipt,
    DecisionRecord,
    DecisionRequest,
    MergeCoins,
    RejectLink,
    ReviewCandidate,
    ReviewPage,
)
from web.settings import WebSettings

SECURITY_SCHEME = "decisionsToken"
APPLIES = "on the next ingest run"


class Unauthorized(HTTPException):
    status_code = 401


class Forbidden(HTTPException):
    status_code = 403


class Conflict(HTTPException):
    """The snapshot's state forbids the decision (a coin already holds an asset of the source)."""

    status_code = 409


class Unprocessable(HTTPException):
    status_code = 422


_REFUSED: dict[str, type[HTTPException]] = {
    "not_found": NotFound,
    "conflict": Conflict,
    "invalid": Unprocessable,
}


def require_decisions_token(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """``Authorization: Bearer <KASPARRO_API_DECISIONS_TOKEN>``, compared in constant time."""
    settings: WebSettings = connection.app.state.web_settings
    if settings.decisions_token is None:
        raise Forbidden("decisions are disabled: set KASPARRO_API_DECISIONS_TOKEN")
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    expected = settings.decisions_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized(
            "missing or wrong token: send the header Authorization: Bearer <token>, the token "
            "being KASPARRO_API_DECISIONS_TOKEN"
        )


def _decision(data: DecisionRequest) -> Decision:
    fields: dict[str, Any] = {
        "coin_id": data.coin_id,
        "decided_by": data.decided_by,
        "note": data.note,
    }
    if isinstance(data, AcceptLink | RejectLink):
        fields |= {"source": data.source, "source_asset_id": data.source_asset_id}
    if isinstance(data, MergeCoins):
        fields["other_coin_id"] = data.other_coin_id
    action: Action = type(data).__struct_config__.tag  # type: ignore[assignment]
    return new_decision(action, **fields)


class ResolutionController(Controller):
    path = "/api/v1/resolution"
    tags = ("resolution",)

    @get(
        "/review",
        operation_id="listReviewCandidates",
        summary="Candidate links waiting for an operator, most confident first",
        description="Links too weak to merge on their own: the asset holds a coin of its own "
        "until an operator accepts the candidate (POST /api/v1/resolution/decisions) or "
        "rejects it. Each carries the evidence that proposed it.",
        sync_to_thread=True,
    )
    def list_review(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> ReviewPage:
        rows, total = review_queue(db, limit=limit, offset=offset)
        items = [
            ReviewCandidate(**{**row, "evidence": json.loads(row["evidence"])})
            for row in rows.to_dicts()
        ]
        return ReviewPage(items=items, total=total, limit=limit, offset=offset)

    @get(
        "/decisions",
        operation_id="listDecisions",
        summary="Operators' decisions, newest first, with what each did or why it was refused",
        description="As of the last published snapshot: a decision POSTed since appears once "
        "the next ingest run has applied it.",
        sync_to_thread=True,
    )
    def list_decisions(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        *,
        outcome: Annotated[
            Outcome | None, Parameter(description="Only decisions with this outcome.")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> DecisionPage:
        rows, total = decision_log(db, outcome=outcome, limit=limit, offset=offset)
        items = [
            DecisionRecord(**{**row, "detail": json.loads(row["detail"])})
            for row in rows.to_dicts()
        ]
        return DecisionPage(items=items, total=total, limit=limit, offset=offset)

    @post(
        "/decisions",
        operation_id="postDecision",
        summary="Accept or reject a link, merge two coins, or split a merged coin off again",
        description="Checked against the current snapshot, then queued: the next ingest run "
        "applies it in one transaction, after checking it again (the outcome is listed at "
        "GET /api/v1/resolution/decisions). Requires Authorization: Bearer "
        "<KASPARRO_API_DECISIONS_TOKEN>.",
        status_code=HTTP_202_ACCEPTED,
        guards=[require_decisions_token],
        security=[{SECURITY_SCHEME: []}],
        raises=[Unauthorized, Forbidden, NotFound, Conflict, Unprocessable],
        sync_to_thread=True,
    )
    def post_decision(
        self,
        db: NamedDependency[duckdb.DuckDBPyConnection],
        decisions_inbox: NamedDependency[Path],
        data: JSONBody[DecisionRequest],
    ) -> DecisionReceipt:
        decision = _decision(data)
        refusal = check(db, decision)
        if refusal is not None:
            raise _REFUSED[refusal.kind](refusal.reason, extra=refusal.facts)
        write_inbox(decisions_inbox, decision)
        return DecisionReceipt(
            **msgspec.structs.asdict(decision), outcome="pending", applies=APPLIES
        )
