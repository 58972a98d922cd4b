"""The one place errors become HTTP responses (controllers never catch): RFC 9457 problem details.

Every error, unknown routes and docs paths included, is ``application/problem+json``::

    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no coin 'x'; ...",
     "instance": "/api/v1/coins/x", "request_id": "..."}

with extension members: ``errors`` (the parameters that failed validation) and the facts of a
refused decision. Litestar's ProblemDetailsPlugin routes every exception here:

    HTTPException (litestar)          its status (400 validation, 404, 405 + Allow, 413, 429 +
     │                                Retry-After, ...)
     ├── BadRequest                   400: input the schema accepts but the request cannot use
     └── NotFound                     404
    StoreError (store.errors)         503: no snapshot, an unreadable or outdated one; says the fix
    duckdb.Error                      503: a query on the snapshot failed: a read error (it is
                                      damaged) or a missing table (it predates this code)
    Exception                         500: a bug; logged with its request id

Messages never carry the data directory's absolute path (see :func:`redact`).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import duckdb
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ExceptionHandlersMap

from store.errors import StoreError
from web.middleware import request_id_of
from web.snapshot import Snapshot

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RESERVED = frozenset(("type", "title", "status", "detail", "instance", "request_id", "errors"))


class BadRequest(HTTPException):
    """Input the schema accepts but the request cannot use (a bad cursor, start after end)."""

    status_code = 400


class NotFound(HTTPException):
    status_code = 404


def redact(text: str, request: Request[Any, Any, Any]) -> str:
    """``text`` with the served snapshot's absolute directory replaced by its public form."""
    snapshot: Snapshot | None = getattr(request.app.state, "snapshot", None)
    return text if snapshot is None else snapshot.redact(text)


class Problem(ProblemDetailsException):
    """A problem detail that names the request (path and id) and no absolute path."""

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        status = self.status_code
        detail = str(self.detail)
        if status == 413:
            limit = request.app.state.web_settings.max_body_bytes
            detail = f"the request body is larger than {limit} bytes (KASPARRO_API_MAX_BODY_BYTES)"
        body: dict[str, Any] = {
            "type": self.type_ or "about:blank",
            "title": self.title or HTTPStatus(status).phrase,
            "status": status,
            "detail": redact(detail, request),
            "instance": request.url.path,
            "request_id": request_id_of(request.scope),
        }
        if isinstance(self.extra, dict):
            body |= {k: v for k, v in self.extra.items() if k not in RESERVED}
        elif self.extra:
            body["errors"] = self.extra
        cause = self.__cause__
        if status >= 500 and cause is not None:
            if isinstance(cause, StoreError | duckdb.Error):
                logger.error("%s on %s: %s", status, request.url.path, body["detail"])
            else:
                logger.error("unhandled error on %s", request.url.path, exc_info=cause)
        return Response(body, status_code=status, headers=self.headers, media_type=PROBLEM_JSON)


def _problem(
    status: int,
    detail: str,
    *,
    extra: Any = None,
    headers: dict[str, str] | None = None,
    cause: BaseException | None = None,
) -> Problem:
    problem = Problem(
        detail=detail,
        status_code=status,
        headers=headers,
        extra=extra,
        type_="about:blank",
        title=HTTPStatus(status).phrase,
    )
    problem.__cause__ = cause
    return problem


def from_http(exc: HTTPException) -> Problem:
    headers = dict(exc.headers or {})
    if exc.status_code == 429 and not any(k.lower() == "retry-after" for k in headers):
        # Litestar's limiter says when its window resets; Retry-After is what clients obey.
        reset = next((v for k, v in headers.items() if k.lower() == "ratelimit-reset"), "1")
        headers["Retry-After"] = str(max(1, int(reset)))
    return _problem(exc.status_code, exc.detail, extra=exc.extra, headers=headers)


def from_store(exc: StoreError) -> Problem:
    return _problem(503, str(exc), cause=exc)


def snapshot_read_failed(
    request: Request[Any, Any, Any], exc: duckdb.Error
) -> Response[dict[str, Any]]:
    """A query on the snapshot failed: the file broke under it (a read error), or it predates
    this code (a missing table or column); converted as the store converts its errors."""
    snapshot: Snapshot = request.app.state.snapshot
    return from_store(snapshot.read_error(exc)).to_response(request)


def from_unexpected(exc: Exception) -> Problem:
    return _problem(
        500, "internal error; the request id identifies it in the server log", cause=exc
    )


PROBLEM_MAP: dict[type[Exception], Any] = {
    HTTPException: from_http,
    StoreError: from_store,
    Exception: from_unexpected,
}
"""What each exception becomes (Litestar picks the most specific class of the exception)."""

EXCEPTION_HANDLERS: ExceptionHandlersMap = {duckdb.Error: snapshot_read_failed}
"""Handlers that need the request to convert (the plugin's conversions see the exception only)."""
