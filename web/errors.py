"""The one place domain errors become HTTP responses (controllers never catch).

Every error body is JSON: ``{"status_code", "detail", "request_id", "extra"}``.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from store.errors import SnapshotNotFoundError, StoreError
from web.middleware import request_id_of
from web.schemas import ErrorBody

logger = logging.getLogger(__name__)


class BadRequest(HTTPException):
    """Input the schema accepts but the request cannot use (a bad cursor, start after end)."""

    status_code = 400


class NotFound(HTTPException):
    status_code = 404


def _body(
    request: Request[Any, Any, Any], status: int, detail: str, extra: Any = None
) -> Response[ErrorBody]:
    body = ErrorBody(
        status_code=status,
        detail=detail,
        request_id=request_id_of(request.scope),
        extra=extra if isinstance(extra, dict) else ({"errors": extra} if extra else None),
    )
    return Response(body, status_code=status)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    return _body(request, exc.status_code, exc.detail, exc.extra)


def snapshot_missing(
    request: Request[Any, Any, Any], exc: SnapshotNotFoundError
) -> Response[ErrorBody]:
    return _body(request, 503, str(exc))


def store_error(request: Request[Any, Any, Any], exc: StoreError) -> Response[ErrorBody]:
    logger.error("store error on %s: %s", request.url.path, exc)
    return _body(request, 503, str(exc))


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    logger.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return _body(
        request,
        500,
        "internal error; the request id identifies it in the server log",
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: http_error,
    SnapshotNotFoundError: snapshot_missing,
    StoreError: store_error,
    Exception: internal_error,
}
