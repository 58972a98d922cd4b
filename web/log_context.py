"""Puts the request id (set by web.middleware on the scope) in the log context, so that every
line logged while a request is handled carries it (kasparro.logs)."""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send

from kasparro import logs
from web.middleware import request_id_of


def request_log_context(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        with logs.context(logs.request_id, request_id_of(scope)):
            await app(scope, receive, send)

    return middleware
